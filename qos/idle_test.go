package qos

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

func TestTryAcquireIdle(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Minute})
	// Headroom: with 4 slots and headroom 2, two idle slots may be taken.
	for i := range 2 {
		if !s.TryAcquireIdle(2) {
			t.Fatalf("TryAcquireIdle(2) #%d failed with free slots beyond the headroom", i+1)
		}
	}
	if s.TryAcquireIdle(2) {
		t.Fatal("TryAcquireIdle(2) took a slot of the headroom")
	}
	s.ReleaseIdle()
	s.ReleaseIdle()
	if got := s.InFlight(); got != 0 {
		t.Fatalf("in flight after ReleaseIdle = %d, want 0", got)
	}

	// A saturated pool with a queued invocation: no idle slot, and a
	// freed slot goes to the waiter.
	release := holdSlots(t, s)
	done := make(chan error, 1)
	go func() {
		_, err := s.Acquire(&invocation.Invocation{}, nil)
		done <- err
	}()
	waitQueued(t, s, 1)
	if s.TryAcquireIdle(0) {
		t.Fatal("TryAcquireIdle took a slot while the pool was saturated")
	}
	s.Release(&invocation.Invocation{}) // one held slot comes back
	if err := <-done; err != nil {
		t.Fatalf("queued Acquire: %v", err)
	}
	if s.TryAcquireIdle(0) {
		t.Fatal("TryAcquireIdle took a slot the waiter should have got")
	}
	release()
}

// TestIdleNeverTakesAWaitersSlot races real invocations that queue against
// idle takers spinning on TryAcquireIdle: the limit holds and every real
// invocation is served.
func TestIdleNeverTakesAWaitersSlot(t *testing.T) {
	const limit, callers = 4, 200
	s := New(Config{Limit: limit, QueueCapacity: callers, QueueTimeout: time.Minute})
	var stop atomic.Bool
	var idleTaken, overLimit atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if s.TryAcquireIdle(0) {
					idleTaken.Add(1)
					s.ReleaseIdle()
				}
			}
		}()
	}
	var real sync.WaitGroup
	for range callers {
		real.Add(1)
		go func() {
			defer real.Done()
			_, err := s.Do(&invocation.Invocation{}, nil, invokerFunc(func() {
				if s.InFlight() > limit {
					overLimit.Add(1)
				}
			}))
			if err != nil {
				t.Errorf("Do: %v", err)
			}
		}()
	}
	real.Wait()
	stop.Store(true)
	wg.Wait()
	if n := overLimit.Load(); n != 0 {
		t.Errorf("limit exceeded %d times", n)
	}
	if s.InFlight() != 0 {
		t.Errorf("in flight after = %d, want 0", s.InFlight())
	}
	if idleTaken.Load() == 0 {
		t.Log("no idle slot was taken (the real callers kept the pool busy)")
	}
}
