package qos

import (
	"iter"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// holdingInvoker blocks each invocation until its function's channel is
// closed.
type holdingInvoker map[string]chan struct{}

func (h holdingInvoker) Invoke(inv *invocation.Invocation) error {
	<-h[inv.Function]
	return nil
}

func TestInFlightByFunctionTenantAndClass(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Minute})
	hold := holdingInvoker{"f": make(chan struct{}), "g": make(chan struct{})}
	var wg sync.WaitGroup
	for _, inv := range []invocation.Invocation{
		{Function: "f", Tenant: "a"},
		{Function: "f", Tenant: "b"},
		{Function: "g", Tenant: "a", Class: Batch},
	} {
		wg.Go(func() {
			if _, err := s.Do(&inv, nil, hold); err != nil {
				t.Error(err)
			}
		})
	}
	for s.InFlight() != 3 {
		time.Sleep(time.Millisecond)
	}
	check := func(when string, fns, tenants map[string]int, interactive, batch int) {
		t.Helper()
		// Do counts its slot just after taking it: wait for the counts to
		// settle at the scheduler's.
		for total(s.FunctionsInFlight) != s.InFlight() {
			time.Sleep(time.Millisecond)
		}
		if got := maps.Collect(s.FunctionsInFlight()); !maps.Equal(got, fns) {
			t.Errorf("%s: functions %v, want %v", when, got, fns)
		}
		if got := maps.Collect(s.TenantsInFlight()); !maps.Equal(got, tenants) {
			t.Errorf("%s: tenants %v, want %v", when, got, tenants)
		}
		if i, b := s.ClassInFlight(Interactive), s.ClassInFlight(Batch); i != interactive || b != batch {
			t.Errorf("%s: classes %d interactive, %d batch; want %d, %d", when, i, b, interactive, batch)
		}
	}
	check("all running", map[string]int{"f": 2, "g": 1}, map[string]int{"a": 2, "b": 1}, 2, 1)
	close(hold["g"])
	for s.InFlight() != 2 {
		time.Sleep(time.Millisecond)
	}
	check("g done", map[string]int{"f": 2}, map[string]int{"a": 1, "b": 1}, 2, 0)
	close(hold["f"])
	wg.Wait()
	check("all done", map[string]int{}, map[string]int{}, 0, 0)
	if got, want := maps.Collect(s.FunctionsFinished()), map[string]int64{"f": 2, "g": 1}; !maps.Equal(got, want) {
		t.Errorf("finished %v, want %v", got, want)
	}
}

func total(seq func() iter.Seq2[string, int]) int {
	n := 0
	for _, c := range seq() {
		n += c
	}
	return n
}

// Counting a known name takes no allocation: it is on every Do.
func TestFlightTableKnownNameDoesNotAllocate(t *testing.T) {
	ft := newFlightTable()
	ft.GetString("f").held.Add(1)
	name := string([]byte("f")) // not the constant's backing array
	if n := testing.AllocsPerRun(100, func() { ft.GetString(name).held.Add(0) }); n != 0 {
		t.Errorf("counter of a known name: %v allocs, want 0", n)
	}
}

// BenchmarkDo measures Do with a free slot and nobody waiting, the
// per-function, per-tenant and per-class counts included.
func BenchmarkDo(b *testing.B) {
	s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		inv := &invocation.Invocation{Function: "shop/checkout", Tenant: "shop"}
		for pb.Next() {
			if _, err := s.Do(inv, nil, nopInvoker{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

type nopInvoker struct{}

func (nopInvoker) Invoke(*invocation.Invocation) error { return nil }
