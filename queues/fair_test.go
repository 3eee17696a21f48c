package queues

import (
	"strings"
	"testing"
)

func names(pop func() *Entry) string {
	var out []string
	for e := pop(); e != nil; e = pop() {
		out = append(out, e.Owner.(string))
	}
	return strings.Join(out, " ")
}

func TestFairTakesTurnsAcrossTenants(t *testing.T) {
	var f Fair
	// Tenant a floods first; b and c arrive later with one each.
	for _, n := range []string{"a1", "a2", "a3", "a4"} {
		f.Push(&Entry{Tenant: "a", Owner: n})
	}
	f.Push(&Entry{Tenant: "b", Owner: "b1"})
	f.Push(&Entry{Tenant: "c", Owner: "c1"})
	f.Push(&Entry{Tenant: "b", Owner: "b2"})
	if got, want := names(f.Pop), "a1 b1 c1 a2 b2 a3 a4"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
	if f.Len() != 0 {
		t.Errorf("Len = %d after draining", f.Len())
	}
}

func TestFairEarliestKeyInsideTenant(t *testing.T) {
	var f Fair
	f.Push(&Entry{Tenant: "a", Key: 30, Owner: "late"})
	f.Push(&Entry{Tenant: "a", Key: 10, Owner: "early"})
	f.Push(&Entry{Tenant: "a", Key: 20, Owner: "mid"})
	f.Push(&Entry{Tenant: "a", Key: 10, Owner: "early2"})
	if got, want := names(f.Pop), "early early2 mid late"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestFairIdleTenantEarnsNoCredit(t *testing.T) {
	var f Fair
	f.Push(&Entry{Tenant: "b", Owner: "b0"})
	f.Pop()
	for _, n := range []string{"a1", "a2", "a3"} {
		f.Push(&Entry{Tenant: "a", Owner: n})
	}
	f.Pop() // a1
	f.Pop() // a2
	// b idled while a was served: it joins at the current turn, not
	// ahead of everything a is owed.
	f.Push(&Entry{Tenant: "b", Owner: "b1"})
	f.Push(&Entry{Tenant: "b", Owner: "b2"})
	if got, want := names(f.Pop), "a3 b1 b2"; got != want && got != "b1 a3 b2" {
		t.Errorf("order = %q, want %q or b1 a3 b2", got, want)
	}
}

func TestFairRemove(t *testing.T) {
	var f Fair
	es := []*Entry{{Tenant: "a", Owner: "a1"}, {Tenant: "a", Owner: "a2"}, {Tenant: "b", Owner: "b1"}}
	for _, e := range es {
		f.Push(e)
	}
	if !f.Remove(es[0]) || f.Remove(es[0]) {
		t.Fatal("Remove: want true once, then false")
	}
	var other Fair
	if other.Remove(es[1]) {
		t.Fatal("Remove from another Fair succeeded")
	}
	if got, want := names(f.Pop), "a2 b1"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestSetSharesTurnsBetweenClasses(t *testing.T) {
	s := NewSet(0.75, 0.25)
	for range 8 {
		s.Push(&Entry{Class: 0, Owner: "i"})
		s.Push(&Entry{Class: 1, Owner: "b"})
	}
	var first8 strings.Builder
	for range 8 {
		first8.WriteString(s.Pop().Owner.(string))
	}
	if got, want := first8.String(), "ibiiibii"; got != want {
		t.Errorf("first 8 turns = %q, want %q (3:1)", got, want)
	}
	if s.Len() != 8 || s.ClassLen(0)+s.ClassLen(1) != 8 {
		t.Errorf("Len = %d, classes %d+%d; want 8", s.Len(), s.ClassLen(0), s.ClassLen(1))
	}
}

func TestSetLoneClassTakesEveryTurn(t *testing.T) {
	s := NewSet(0.9, 0.1)
	for range 3 {
		s.Push(&Entry{Class: 1, Owner: "b"})
	}
	if got := names(s.Pop); got != "b b b" {
		t.Errorf("order = %q, want b b b", got)
	}
	// The batch turns it took while alone do not count against it later
	// beyond one stride: interactive arriving now is served first.
	s.Push(&Entry{Class: 1, Owner: "b"})
	s.Push(&Entry{Class: 0, Owner: "i"})
	if got := s.Pop().Owner; got != "i" {
		t.Errorf("first after mix = %v, want i", got)
	}
}

// TestPriorityAcrossTenants: a tenant whose head has a higher priority goes
// before tenants served less; with equal priorities they take turns, the
// one served out of turn last.
func TestPriorityAcrossTenants(t *testing.T) {
	var f Fair
	f.Push(&Entry{Tenant: "a", Key: 1, Owner: "a1"})
	f.Push(&Entry{Tenant: "a", Key: 2, Owner: "a2"})
	f.Push(&Entry{Tenant: "b", Key: 3, Priority: 5, Owner: "b-urgent1"})
	f.Push(&Entry{Tenant: "b", Key: 4, Priority: 5, Owner: "b-urgent2"})
	f.Push(&Entry{Tenant: "b", Key: 5, Owner: "b3"})
	f.Push(&Entry{Tenant: "c", Key: 6, Priority: -3, Owner: "c-penalised"})
	// b's urgent ones first although b is then served twice; a catches up
	// (a1, a2) before b's next; c's penalised one comes last.
	if got, want := names(f.Pop), "b-urgent1 b-urgent2 a1 a2 b3 c-penalised"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}

func TestPriorityBeforeKey(t *testing.T) {
	var f Fair
	f.Push(&Entry{Tenant: "a", Key: 1, Owner: "urgent"})
	f.Push(&Entry{Tenant: "a", Key: 9, Priority: 2, Owner: "important"})
	f.Push(&Entry{Tenant: "a", Key: 5, Priority: -1, Owner: "background"})
	if got, want := names(f.Pop), "important urgent background"; got != want {
		t.Errorf("order = %q, want %q", got, want)
	}
}
