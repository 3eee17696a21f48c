package qos

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/queues"
)

// Errors that end a wait without a slot.
var (
	ErrQueueFull    = errors.New("qos: queue full")
	ErrQueueTimeout = errors.New("qos: timed out waiting for a worker slot")
	ErrClientGone   = errors.New("qos: client went away while queued")
)

// Invoker performs one admitted invocation at the platform.
type Invoker interface {
	Invoke(inv *invocation.Invocation) error
}

// Watcher tells a waiting invocation that its caller went away.
type Watcher interface {
	// WatchGone is called only when the invocation has to queue. The
	// returned channel closes if the caller goes away; nil means the
	// caller cannot be watched.
	WatchGone() <-chan struct{}
	// StopWatch ends the watch WatchGone started; it returns once the
	// watch has let go of whatever it watched.
	StopWatch()
}

// Config sizes a Scheduler.
type Config struct {
	Limit         int           // worker slots
	QueueCapacity int           // waiters beyond the slots
	QueueTimeout  time.Duration // longest wait for a slot
}

// Scheduler is the bounded worker pool and its queue.
type Scheduler struct {
	limit    atomic.Int64
	inflight atomic.Int64
	// waiting counts queued waiters plus arrivals deciding under mu whether
	// to queue; Release takes the lock only when it is non-zero.
	waiting atomic.Int64

	mu sync.Mutex
	q  queues.Queue // REQUIRES: mu

	timeout time.Duration
	waiters sync.Pool
}

type waiter struct {
	entry queues.Entry
	ready chan struct{} // receives the grant; capacity 1
	timer *time.Timer
}

// New returns a Scheduler with cfg's sizes.
func New(cfg Config) *Scheduler {
	s := &Scheduler{timeout: cfg.QueueTimeout}
	s.limit.Store(int64(cfg.Limit))
	s.q.SetCapacity(cfg.QueueCapacity)
	s.waiters.New = func() any {
		w := &waiter{ready: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
		w.entry.Owner = w
		return w
	}
	return s
}

// Do waits for a slot, runs iv with it and gives it back. It returns how
// long the invocation waited and the error that ended the wait or the
// invocation.
func (s *Scheduler) Do(inv *invocation.Invocation, w Watcher, iv Invoker) (time.Duration, error) {
	waited, err := s.Acquire(inv, w)
	if err != nil {
		return waited, err
	}
	defer s.Release()
	return waited, iv.Invoke(inv)
}

// Acquire takes a worker slot for inv, waiting in the queue if none is free.
// On success the caller must call Release exactly once.
//
// Hot-path cost with a free slot and nobody waiting: one atomic load and one
// compare-and-swap.
func (s *Scheduler) Acquire(inv *invocation.Invocation, w Watcher) (time.Duration, error) {
	if s.waiting.Load() == 0 && s.tryAcquire() {
		return 0, nil
	}
	return s.acquireSlow(inv, w)
}

func (s *Scheduler) tryAcquire() bool {
	for {
		n := s.inflight.Load()
		if n >= s.limit.Load() {
			return false
		}
		if s.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *Scheduler) acquireSlow(_ *invocation.Invocation, w Watcher) (time.Duration, error) {
	start := time.Now()
	wt := s.waiters.Get().(*waiter)
	s.mu.Lock()
	// Announce ourselves before looking at the slots: a Release that
	// misses this increment freed its slot before our look, so we see it.
	s.waiting.Add(1)
	if s.q.Len() == 0 && s.tryAcquire() {
		s.waiting.Add(-1)
		s.mu.Unlock()
		s.waiters.Put(wt)
		return time.Since(start), nil
	}
	if !s.q.Push(&wt.entry) {
		s.waiting.Add(-1)
		s.mu.Unlock()
		s.waiters.Put(wt)
		return 0, ErrQueueFull
	}
	s.mu.Unlock()

	var gone <-chan struct{}
	if w != nil {
		gone = w.WatchGone()
	}
	wt.timer.Reset(s.timeout)
	var err error
	select {
	case <-wt.ready:
	case <-wt.timer.C:
		err = ErrQueueTimeout
	case <-gone:
		err = ErrClientGone
	}
	wt.timer.Stop()
	if gone != nil {
		w.StopWatch()
	}
	if err != nil {
		s.mu.Lock()
		removed := s.q.Remove(&wt.entry)
		if removed {
			s.waiting.Add(-1)
		}
		s.mu.Unlock()
		if !removed {
			// A grant raced with the timeout or the departure: it is
			// already in ready. A timed-out waiter uses it; a departed
			// one passes it on.
			<-wt.ready
			if err == ErrClientGone {
				s.waiters.Put(wt)
				s.Release()
				return time.Since(start), err
			}
			err = nil
		}
	}
	s.waiters.Put(wt)
	return time.Since(start), err
}

// Release gives back a slot taken by Acquire and grants it to the first
// waiter, if any.
func (s *Scheduler) Release() {
	s.inflight.Add(-1)
	if s.waiting.Load() > 0 {
		s.dispatch()
	}
}

// dispatch grants free slots to waiters in queue order.
func (s *Scheduler) dispatch() {
	s.mu.Lock()
	s.dispatchLocked()
	s.mu.Unlock()
}

// REQUIRES: s.mu held.
func (s *Scheduler) dispatchLocked() {
	for s.q.Len() > 0 && s.tryAcquire() {
		e := s.q.Pop()
		s.waiting.Add(-1)
		e.Owner.(*waiter).ready <- struct{}{}
	}
}

// SetLimit changes the number of worker slots. Raising it grants waiters at
// once; lowering it lets in-flight invocations finish and admits no more
// until the count is under the new limit.
func (s *Scheduler) SetLimit(n int) {
	s.limit.Store(int64(n))
	s.dispatch()
}

// InFlight returns the number of slots held.
func (s *Scheduler) InFlight() int { return int(s.inflight.Load()) }

// Limit returns the number of worker slots.
func (s *Scheduler) Limit() int { return int(s.limit.Load()) }

// Queued returns the number of waiters.
func (s *Scheduler) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.Len()
}

// QueueCapacity returns the most waiters the queue holds.
func (s *Scheduler) QueueCapacity() int { return s.q.Capacity() }

// QueueTimeout returns the longest wait for a slot.
func (s *Scheduler) QueueTimeout() time.Duration { return s.timeout }
