package qos

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// assigned returns a new invocation of fn with an id from s's generator,
// as the proxy makes for a request that brings none.
func assigned(s *Scheduler, fn string) *invocation.Invocation {
	return &invocation.Invocation{Function: fn, Chain: string(s.ChainIDs().Next(nil)), ChainAssigned: true}
}

// TestChainIDsSeq: the generator recognises its own ids (and only ids it
// already assigned), never another generator's or a malformed one.
func TestChainIDsSeq(t *testing.T) {
	g, other := NewChainIDs(), NewChainIDs()
	for want := uint64(1); want <= 100; want++ {
		id := string(g.Next(nil))
		if got, ok := g.seq(id); !ok || got != want {
			t.Fatalf("seq(%q) = %d, %v; want %d, true", id, got, ok, want)
		}
		if _, ok := other.seq(id); ok {
			t.Fatalf("another generator took %q for its own", id)
		}
	}
	for _, id := range []string{"", g.prefix, g.prefix + "0", g.prefix + "01", g.prefix + "A", g.prefix + "z-", g.prefix + "zzzzzzzzzzzzzz",
		g.prefix + "2s" /* 100 */, g.prefix + "2t" /* 101: not assigned yet */, "given-1", strings.ToUpper(g.prefix) + "1"} {
		if n, ok := g.seq(id); ok && id != g.prefix+"2s" {
			t.Errorf("seq(%q) = %d, true; want false", id, n)
		}
	}
}

// FuzzChainIDsSeq: whatever the id, seq either refuses it or returns the
// counter whose id it is.
func FuzzChainIDsSeq(f *testing.F) {
	g := NewChainIDs()
	for range 1000 {
		g.Next(nil)
	}
	for _, s := range []string{"1", "rs", "0", "zzzzzzzzzzzzz", "3w5e11264sgsf", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, suffix string) {
		id := g.prefix + suffix
		n, ok := g.seq(id)
		if !ok {
			return
		}
		if want := g.prefix + strconv.FormatUint(n, 36); want != id || n == 0 || n > 1000 {
			t.Fatalf("seq(%q) = %d, but that counter's id is %q", id, n, want)
		}
	})
}

// TestAssignedChainsInRing: a chain whose id the scheduler's generator
// assigned is kept in the ring (not the table), found again by its id (a
// function passing it on, a retry), and forgotten with the rest.
func TestAssignedChainsInRing(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute})
	defer s.Close()
	nop := invokerFunc(func() {})
	first := assigned(s, "f")
	id := first.Chain
	if _, err := s.Do(first, nil, nop); err != nil || first.Continuation {
		t.Fatalf("first: continuation %v, err %v", first.Continuation, err)
	}
	if s.adm.table.Len() != 0 || s.adm.ring.live.Load() != 1 || s.ActiveChains() != 1 {
		t.Errorf("table %d, ring %d, active %d; want 0, 1, 1", s.adm.table.Len(), s.adm.ring.live.Load(), s.ActiveChains())
	}
	if got := s.ChainStep(id); got != 2 {
		t.Errorf("ChainStep = %d, want 2", got)
	}
	next := &invocation.Invocation{Function: "g", Chain: id}
	if _, err := s.Do(next, nil, nop); err != nil || !next.Continuation {
		t.Errorf("the id passed on: continuation %v, err %v; want a continuation", next.Continuation, err)
	}
	s.EndRun(id, false) // forgets it, wherever it is
	if s.ActiveChains() != 0 {
		t.Errorf("active %d after forgetting, want 0", s.ActiveChains())
	}
}

// TestRingWrapEndsOldest: past the ring's size a new assigned chain ends
// the one assigned a ring's length earlier; that old id, coming back, is
// a new chain kept in the table, and does not end the newer one.
func TestRingWrapEndsOldest(t *testing.T) {
	ev := &recordEvents{}
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute, MaxChains: 4, Events: ev})
	defer s.Close()
	nop := invokerFunc(func() {})
	var ids []string
	for range 5 {
		inv := assigned(s, "f")
		ids = append(ids, inv.Chain)
		if _, err := s.Do(inv, nil, nop); err != nil {
			t.Fatal(err)
		}
	}
	if got := ev.drain(); strings.Count(got, "chain completed") != 1 || strings.Count(got, "chain started") != 5 {
		t.Errorf("events:\n%s\nwant 5 starts and the oldest completed", got)
	}
	if s.ChainStep(ids[0]) != 1 || s.ChainStep(ids[4]) != 2 {
		t.Errorf("steps %d, %d; want the oldest forgotten (1), the newest known (2)", s.ChainStep(ids[0]), s.ChainStep(ids[4]))
	}
	old := &invocation.Invocation{Function: "f", Chain: ids[0]}
	if _, err := s.Do(old, nil, nop); err != nil || old.Continuation {
		t.Fatalf("old id back: continuation %v, err %v; want a new chain", old.Continuation, err)
	}
	if s.adm.table.Len() != 1 || s.ChainStep(ids[4]) != 2 || s.ChainStep(ids[0]) != 2 {
		t.Errorf("table %d, steps newest %d, old %d; want the old id's chain in the table and both known",
			s.adm.table.Len(), s.ChainStep(ids[4]), s.ChainStep(ids[0]))
	}
}

// TestRingExpiry: a chain in the ring is not found after the TTL, and the
// sweep ends it.
func TestRingExpiry(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ev := &recordEvents{}
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute, ChainTTL: time.Hour, Events: ev, Now: clock})
	defer s.Close()
	inv := assigned(s, "f")
	if _, err := s.Do(inv, nil, invokerFunc(func() {})); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(time.Hour + time.Second)
	mu.Unlock()
	if s.ChainStep(inv.Chain) != 1 {
		t.Error("a chain past its TTL is still found")
	}
	s.adm.ring.expire() // or the sweeper did: either way it ends once
	if got := ev.drain(); strings.Count(got, "chain completed") != 1 || s.ActiveChains() != 0 {
		t.Errorf("after the sweep: events %q, active %d; want it completed once and gone", got, s.ActiveChains())
	}
}

// TestRingConcurrent: chains with assigned ids started, continued and
// forgotten from many goroutines at once (run with -race) all end once.
func TestRingConcurrent(t *testing.T) {
	ev := &countEvents{}
	s := New(Config{Limit: 8, QueueCapacity: 1000, QueueTimeout: time.Minute, MaxChains: 64, Events: ev})
	nop := invokerFunc(func() {})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				inv := assigned(s, "f")
				inv.Steps = 2
				if _, err := s.Do(inv, nil, nop); err != nil {
					t.Error(err)
					return
				}
				next := &invocation.Invocation{Function: "g", Chain: inv.Chain}
				if _, err := s.Do(next, nil, nop); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	// A chain ends when its second step does, or earlier when the ring
	// wraps over it (64 ids assigned meanwhile): its second step then
	// starts a new chain. None ends twice.
	if st, c := ev.started.Load(), ev.completed.Load(); st < 4000 || st > 8000 || c > st || c < 3000 {
		t.Errorf("started %d (want 4000 and a few), completed %d", st, c)
	}
}
