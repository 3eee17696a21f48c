package qos

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// TestContinuationTakesNoAdmissionLock: a continuation, and a step of a
// new chain of unknown length once admitted, run while every lock of the
// timeline is held elsewhere. Before, every request took admission's one
// lock up to three times.
func TestContinuationTakesNoAdmissionLock(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute})
	defer s.Close()
	nop := invokerFunc(func() {})
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c"}, nil, nop); err != nil {
		t.Fatal(err)
	}
	s.adm.est.lockAll()
	withoutLock(t, "a continuation", func() error {
		for i := range 3 {
			inv := &invocation.Invocation{Function: "g" + strconv.Itoa(i), Chain: "c"}
			if _, err := s.Do(inv, nil, nop); err != nil || !inv.Continuation {
				return fmt.Errorf("continuation %v, err %v; want a continuation", inv.Continuation, err)
			}
		}
		return nil
	})
	s.adm.est.unlockAll()
	if got := s.ChainStep("c"); got != 5 {
		t.Errorf("ChainStep = %d, want 5 after four requests", got)
	}
}

// TestConcurrentChainsAccounting: chains of three steps run concurrently,
// continuations interleaved, leave every reserved step settled (nothing
// outstanding), all of them completed, and the estimator fed.
func TestConcurrentChainsAccounting(t *testing.T) {
	ev := &countEvents{}
	s := New(Config{Limit: 3, QueueCapacity: 1000, QueueTimeout: time.Minute, Events: ev})
	defer s.Close()
	const chains, steps = 200, 3
	slow := invokerFunc(func() { time.Sleep(50 * time.Microsecond) })
	var wg sync.WaitGroup
	for i := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "chain-" + strconv.Itoa(i)
			for k := range steps {
				inv := &invocation.Invocation{Function: "f" + strconv.Itoa(k), Chain: id, Steps: steps, Budget: time.Hour}
				if _, err := s.Do(inv, nil, slow); err != nil {
					t.Errorf("%s step %d: %v", id, k, err)
					return
				}
				if inv.Continuation != (k > 0) {
					t.Errorf("%s step %d: continuation %v", id, k, inv.Continuation)
				}
			}
		}()
	}
	wg.Wait()
	if got := ev.completed.Load(); got != chains {
		t.Errorf("completed %d chains, want %d", got, chains)
	}
	if got := s.adm.est.outstanding.Load(); got != 0 {
		t.Errorf("outstanding steps = %d after every chain ended, want 0", got)
	}
	for k := range steps {
		if d := s.Estimate("f" + strconv.Itoa(k)); d < 50*time.Microsecond {
			t.Errorf("estimate of f%d = %v, want at least the 50µs each held its slot", k, d)
		}
	}
	if learned := s.adm.est.expectedSteps(s.fnFlight.GetString("f0"), 0); learned != steps {
		t.Errorf("learned chain length %d, want %d", learned, steps)
	}
}

// TestEWMAZeroSample: a sample of 0 is a value, not "no sample yet".
func TestEWMAZeroSample(t *testing.T) {
	var e ewma
	if _, ok := e.value(); ok {
		t.Fatal("a new average has a value")
	}
	e.add(0)
	if v, ok := e.value(); !ok || v != 0 {
		t.Fatalf("after a 0 sample: %v, %v; want 0, true", v, ok)
	}
	e.add(100)
	if v, _ := e.value(); v != 100*ewmaAlpha {
		t.Errorf("after 0 then 100: %v, want %v", v, 100*ewmaAlpha)
	}
}

// TestUnplannedStepsCountWhileRunning: a step beyond its chain's
// reservation counts in admission's projection while it holds its slot,
// and not once it has ended: it is never booked after the fact (before,
// the next new chain booked every unplanned step ever run at its own
// arrival, work long done).
func TestUnplannedStepsCountWhileRunning(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := invokerFunc(func() { mu.Lock(); now = now.Add(10 * time.Millisecond); mu.Unlock() })
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute, DefaultEstimate: 10 * time.Millisecond, Now: clock})
	defer s.Close()
	// A chain of unknown length: one step reserved, and three unplanned
	// ones, all ended.
	for i := range 4 {
		inv := &invocation.Invocation{Function: "f", Chain: "long"}
		if _, err := s.Do(inv, nil, advance); err != nil || inv.Continuation != (i > 0) {
			t.Fatalf("step %d: continuation %v, err %v", i, inv.Continuation, err)
		}
	}
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "new", Budget: 15 * time.Millisecond, Steps: 1}, nil, advance); err != nil {
		t.Errorf("after 3 unplanned steps that ended: a new chain that fits a free pool: err = %v, want admitted", err)
	}
	// One more unplanned step, held: the one slot is taken, and a new
	// chain that needs it for 10ms of a 15ms budget is refused until it
	// ends.
	hold, started := make(chan struct{}), make(chan struct{})
	go func() {
		inv := &invocation.Invocation{Function: "f", Chain: "long"}
		_, _ = s.Do(inv, nil, invokerFunc(func() { close(started); <-hold }))
	}()
	<-started
	if n := s.adm.est.unplanned.Load(); n != 1 {
		t.Errorf("unplanned steps running = %d, want 1", n)
	}
	_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "next", Budget: 15 * time.Millisecond, Steps: 1}, nil, advance)
	if !errors.Is(err, ErrRefused) {
		t.Errorf("behind a running unplanned step: err = %v, want refused", err)
	}
	close(hold)
	for s.InFlight() != 0 || s.adm.est.unplanned.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "next", Budget: 15 * time.Millisecond, Steps: 1}, nil, advance); err != nil {
		t.Errorf("once it ended: err = %v, want admitted", err)
	}
}

// TestLateEndTakesNoLock: a chain that ends after its booking on the
// timeline has nothing to give back, so ending it takes no lock (the
// passthrough case: a table forgets a chain long after its last step).
func TestLateEndTakesNoLock(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ev := &countEvents{}
	s := New(Config{Limit: 1, QueueCapacity: 1, QueueTimeout: time.Minute, DefaultEstimate: 10 * time.Millisecond, Now: clock, Events: ev})
	defer s.Close()
	late := invokerFunc(func() {
		mu.Lock()
		now = now.Add(50 * time.Millisecond) // past the 10ms projected
		mu.Unlock()
		s.adm.est.lockAll() // released once Do returns
	})
	withoutLock(t, "ending a late chain", func() error {
		_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Steps: 1}, nil, late)
		return err
	})
	s.adm.est.unlockAll()
	if ev.completed.Load() != 1 {
		t.Errorf("completed %d chains, want 1", ev.completed.Load())
	}
}

// withoutLock runs fn, which must finish while the test holds the
// timeline's locks: a minute without an answer is a deadlock (the
// minute detects one; it bounds no speed).
func withoutLock(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s waited for a lock of the timeline", what)
	}
}

// lockAll and unlockAll hold every line of the timeline, so that a test
// can tell that something does not wait for one.
func (e *estimator) lockAll() {
	for i := range e.lines {
		e.lines[i].mu.Lock()
	}
}

func (e *estimator) unlockAll() {
	for i := range e.lines {
		e.lines[i].mu.Unlock()
	}
}

// TestTimelineLines: a pool of 128 slots or more splits the timeline in
// lines. A chain that does not fit the line it tries first goes to
// another where it fits, and is refused only when it fits none, with the
// shortest wait over every line.
func TestTimelineLines(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 128, QueueCapacity: 1, QueueTimeout: time.Minute, DefaultEstimate: 10 * time.Millisecond,
		Now: func() time.Time { return now }})
	defer s.Close()
	if _, lines := timelineSlots(128); lines != 2 {
		t.Fatalf("lines = %d, want 2", lines)
	}
	busy := func(line int, until time.Duration) {
		ln := s.adm.est.lock(line, 128, now.UnixNano())
		for _, sl := range ln.slots {
			sl.free = now.Add(until).UnixNano()
		}
		ln.mu.Unlock()
	}
	busy(0, time.Hour)
	for i := range 20 { // whichever line each tries first, line 1 takes it
		inv := &invocation.Invocation{Function: "f", Chain: "c" + strconv.Itoa(i), Budget: time.Second, Steps: 1}
		if _, err := s.Do(inv, nil, invokerFunc(func() {})); err != nil {
			t.Fatalf("chain %d: %v; want it on the free line", i, err)
		}
	}
	busy(0, 2*time.Hour)
	busy(1, time.Hour)
	_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "late", Budget: time.Second, Steps: 1}, nil, invokerFunc(func() {}))
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.RetryAfter < time.Hour-time.Second || refused.RetryAfter > time.Hour+time.Second {
		t.Errorf("err = %v; want refused, retry after about 1h (the earlier line)", err)
	}
}
