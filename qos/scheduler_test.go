package qos

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// countingInvoker records the peak concurrency it sees.
type countingInvoker struct {
	cur, peak, calls atomic.Int64
	hold             chan struct{} // when non-nil, each call blocks until it is closed or fed
}

func (c *countingInvoker) Invoke(*invocation.Invocation) error {
	n := c.cur.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	c.calls.Add(1)
	if c.hold != nil {
		<-c.hold
	}
	c.cur.Add(-1)
	return nil
}

func TestLimitNeverExceeded(t *testing.T) {
	const limit, callers = 7, 300
	s := New(Config{Limit: limit, QueueCapacity: callers, QueueTimeout: time.Minute})
	inv := &countingInvoker{hold: make(chan struct{})}
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Do(&invocation.Invocation{}, nil, inv)
			errs <- err
		}()
	}
	// Let invocations through one at a time, so that waiters pile up.
	go func() {
		for range callers {
			inv.hold <- struct{}{}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Do: %v", err)
		}
	}
	if got := inv.calls.Load(); got != callers {
		t.Errorf("calls = %d, want %d", got, callers)
	}
	if got := inv.peak.Load(); got > limit {
		t.Errorf("peak concurrency = %d, want <= %d", got, limit)
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Errorf("after: in flight %d, queued %d; want 0, 0", s.InFlight(), s.Queued())
	}
}

// holdSlots takes every slot of s and returns a func that gives them back.
func holdSlots(t *testing.T, s *Scheduler) func() {
	t.Helper()
	n := s.Limit()
	for range n {
		if _, err := s.Acquire(&invocation.Invocation{}, nil); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
	}
	return func() {
		for range n {
			s.Release(&invocation.Invocation{})
		}
	}
}

// waitQueued waits until n invocations are queued.
func waitQueued(t *testing.T, s *Scheduler, n int) {
	t.Helper()
	for s.Queued() != n {
		time.Sleep(time.Millisecond)
	}
}

func TestQueueFull(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 2, QueueTimeout: time.Minute})
	release := holdSlots(t, s)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := s.Acquire(&invocation.Invocation{}, nil)
			results <- err
		}()
	}
	waitQueued(t, s, 2)
	if _, err := s.Acquire(&invocation.Invocation{}, nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third waiter: err = %v, want ErrQueueFull", err)
	}
	release()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("queued waiter: %v", err)
		}
		s.Release(&invocation.Invocation{})
	}
	if s.InFlight() != 0 {
		t.Errorf("in flight = %d, want 0", s.InFlight())
	}
}

func TestQueueTimeout(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: 5 * time.Millisecond})
	release := holdSlots(t, s)
	defer release()
	if _, err := s.Acquire(&invocation.Invocation{}, nil); !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("err = %v, want ErrQueueTimeout", err)
	}
	if s.Queued() != 0 {
		t.Errorf("queued = %d after timeout, want 0", s.Queued())
	}
}

// fakeWatcher is a Watcher whose caller leaves when gone is closed.
type fakeWatcher struct {
	gone    chan struct{}
	watched atomic.Bool
	stopped atomic.Bool
}

func (w *fakeWatcher) WatchGone() <-chan struct{} { w.watched.Store(true); return w.gone }
func (w *fakeWatcher) StopWatch()                 { w.stopped.Store(true) }

func TestClientGoneIsNeverInvoked(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute})
	release := holdSlots(t, s)
	inv := &countingInvoker{}
	w := &fakeWatcher{gone: make(chan struct{})}
	done := make(chan error)
	go func() {
		_, err := s.Do(&invocation.Invocation{}, w, inv)
		done <- err
	}()
	waitQueued(t, s, 1)
	close(w.gone)
	if err := <-done; !errors.Is(err, ErrClientGone) {
		t.Fatalf("err = %v, want ErrClientGone", err)
	}
	if inv.calls.Load() != 0 {
		t.Fatal("a departed client was invoked")
	}
	if !w.watched.Load() || !w.stopped.Load() {
		t.Error("watch not started and stopped")
	}
	release()
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Errorf("in flight %d, queued %d; want 0, 0", s.InFlight(), s.Queued())
	}
}

func TestGrantsInArrivalOrder(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute})
	release := holdSlots(t, s)
	order := make(chan int, 5)
	for i := range 5 {
		go func() {
			if _, err := s.Acquire(&invocation.Invocation{}, nil); err != nil {
				t.Error(err)
				return
			}
			order <- i
			s.Release(&invocation.Invocation{})
		}()
		waitQueued(t, s, i+1)
	}
	release()
	for want := range 5 {
		if got := <-order; got != want {
			t.Fatalf("grant %d went to waiter %d", want, got)
		}
	}
}

func TestSetLimitGrantsWaiters(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute})
	release := holdSlots(t, s)
	defer release()
	got := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := s.Acquire(&invocation.Invocation{}, nil)
			got <- err
		}()
	}
	waitQueued(t, s, 3)
	s.SetLimit(4)
	for range 3 {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	if s.InFlight() != 4 {
		t.Errorf("in flight = %d, want 4", s.InFlight())
	}
	for range 3 {
		s.Release(&invocation.Invocation{})
	}
}

// TestRaceTimeoutsAndGrants churns waiters whose timeouts race with grants
// and departures; it checks (under -race) that no slot leaks.
func TestRaceTimeoutsAndGrants(t *testing.T) {
	s := New(Config{Limit: 3, QueueCapacity: 50, QueueTimeout: 200 * time.Microsecond})
	var wg sync.WaitGroup
	var ok, timedOut, gone, full atomic.Int64
	for i := range 400 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w Watcher
			if i%3 == 0 {
				fw := &fakeWatcher{gone: make(chan struct{})}
				go func() { time.Sleep(100 * time.Microsecond); close(fw.gone) }()
				w = fw
			}
			_, err := s.Do(&invocation.Invocation{}, w, invokerFunc(func() { time.Sleep(50 * time.Microsecond) }))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrQueueTimeout):
				timedOut.Add(1)
			case errors.Is(err, ErrClientGone):
				gone.Add(1)
			case errors.Is(err, ErrQueueFull):
				full.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Fatalf("leak: in flight %d, queued %d (ok %d, timed out %d, gone %d, full %d)",
			s.InFlight(), s.Queued(), ok.Load(), timedOut.Load(), gone.Load(), full.Load())
	}
	if ok.Load() == 0 {
		t.Error("no invocation succeeded")
	}
}

type invokerFunc func()

func (f invokerFunc) Invoke(*invocation.Invocation) error { f(); return nil }

// BenchmarkAcquireRelease measures the hot path: a free slot, nobody waiting.
func BenchmarkAcquireRelease(b *testing.B) {
	s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second})
	inv := &invocation.Invocation{}
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Acquire(inv, nil); err != nil {
				b.Fatal(err)
			}
			s.Release(&invocation.Invocation{})
		}
	})
	for _, p := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("parallel-%d", p), func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(p)
			b.RunParallel(func(pb *testing.PB) {
				inv := &invocation.Invocation{}
				for pb.Next() {
					if _, err := s.Acquire(inv, nil); err != nil {
						b.Fatal(err)
					}
					s.Release(&invocation.Invocation{})
				}
			})
		})
	}
}

// BenchmarkContended measures the slow path: more callers than slots, so
// most invocations queue and are granted a slot by a release.
func BenchmarkContended(b *testing.B) {
	for _, p := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("parallel-%d", p), func(b *testing.B) {
			s := New(Config{Limit: 4, QueueCapacity: 1 << 20, QueueTimeout: time.Minute})
			b.ReportAllocs()
			b.SetParallelism(p)
			b.RunParallel(func(pb *testing.PB) {
				inv := &invocation.Invocation{}
				for pb.Next() {
					if _, err := s.Acquire(inv, nil); err != nil {
						b.Fatal(err)
					}
					s.Release(&invocation.Invocation{})
				}
			})
		})
	}
}
