package qos

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// fakeClock is a settable admission clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Unix(1000, 0).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestQuietRingChain: a chain whose id sequoia assigned (in the ring)
// ends once its caller has gone quiet, found by the ring's sweep: it
// completes as of its last step and teaches its length.
func TestQuietRingChain(t *testing.T) {
	clk := newFakeClock()
	ev := &recordEvents{}
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute, ChainTTL: time.Hour,
		DefaultEstimate: 10 * time.Millisecond, Events: ev, Now: clk.now, sweepEvery: -1})
	defer s.Close()
	step := invokerFunc(func() { clk.advance(10 * time.Millisecond) })
	first := assigned(s, "f")
	for i := range 3 {
		inv := &invocation.Invocation{Function: "f", Chain: first.Chain}
		if i == 0 {
			inv = first
		}
		if _, err := s.Do(inv, nil, step); err != nil {
			t.Fatal(err)
		}
	}
	clk.advance(quietFloor / 2)
	s.adm.ring.expire()
	if s.ActiveChains() != 1 {
		t.Fatalf("active %d half a quiet bound after its last step, want 1", s.ActiveChains())
	}
	clk.advance(quietFloor)
	s.adm.ring.expire()
	if got := ev.drain(); !strings.Contains(got, "chain completed (interactive): predicted 10ms, took 30ms") {
		t.Errorf("events:\n%s\nwant it completed as of its last step", got)
	}
	if s.ActiveChains() != 0 {
		t.Errorf("active %d, want 0", s.ActiveChains())
	}
	if got := s.adm.est.expectedSteps(s.fnFlight.GetString("f"), 0); got != 3 {
		t.Errorf("learned length %d, want 3", got)
	}
}

// TestQuietSweepConcurrent: chains of unknown length from many goroutines
// (run with -race) while the idle list is swept over and over; once all
// have gone quiet, every chain has ended exactly once and nothing of them
// is left in admission's books.
func TestQuietSweepConcurrent(t *testing.T) {
	clk := newFakeClock()
	ev := &countEvents{}
	// The sweeper moves the fake clock 50 ms a turn as fast as it can
	// spin: a TTL of an hour passes within a second of a fast machine's
	// time, and would forget (and restart) chains between their steps.
	// Ten years do not.
	s := New(Config{Limit: 8, QueueCapacity: 1000, QueueTimeout: time.Minute, ChainTTL: 10 * 365 * 24 * time.Hour,
		Events: ev, Now: clk.now, sweepEvery: -1})
	defer s.Close()
	nop := invokerFunc(func() {})
	const workers, chains = 8, 200
	var stop atomic.Bool
	var sweeps sync.WaitGroup
	sweeps.Go(func() {
		for !stop.Load() {
			clk.advance(50 * time.Millisecond)
			s.adm.sweepIdle()
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range chains {
				id := "c-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				for range 1 + i%3 {
					if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: id}, nil, nop); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	sweeps.Wait()
	// The sweeps ran the clock fast, so callers seemed to pause long and
	// the quiet bound grew: wait it out.
	clk.advance(s.adm.quietAfter() + time.Second)
	s.adm.sweepIdle()
	if started, ended := ev.started.Load(), ev.ended.Load(); started != workers*chains || ended != started {
		t.Errorf("started %d, ended %d; want %d each", started, ended, workers*chains)
	}
	// A chain that went quiet too early, and came back, ends once
	// whatever the continuation: none is counted twice.
	if s.ActiveChains() != 0 || s.adm.est.outstanding.Load() != 0 || s.adm.est.unplanned.Load() != 0 || s.adm.idle.head.Load() != nil {
		t.Errorf("active %d, outstanding %d, unplanned %d, idle list empty %v; want 0, 0, 0, true",
			s.ActiveChains(), s.adm.est.outstanding.Load(), s.adm.est.unplanned.Load(), s.adm.idle.head.Load() == nil)
	}
}
