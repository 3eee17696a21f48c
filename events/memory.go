package events

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Memory keeps accepted events in this process only, each delivered by a
// goroutine of its own: they are lost when the process exits. It is the
// baseline the store's cost is measured against (sequoia bench events),
// and the proxy's default when it is given no store (tests, library use).
type Memory struct {
	cfg      Config
	m        *Metrics
	d        Deliverer
	pending  atomic.Int64
	lost     atomic.Int64
	wg       sync.WaitGroup
	stopping chan struct{}
	stopOnce sync.Once
}

// NewMemory returns an in-process queue with cfg's bounds (MaxEvents,
// MaxAge, MaxRetries, RetryDelay) that delivers with d. m may be nil.
func NewMemory(cfg Config, m *Metrics, d Deliverer) *Memory {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Memory{cfg: cfg.withDefaults(), m: m, d: d, stopping: make(chan struct{})}
}

// Metrics returns the queue's collectors.
func (q *Memory) Metrics() *Metrics { return q.m }

// Pending returns the events accepted and not yet delivered or given up.
func (q *Memory) Pending() int { return int(q.pending.Load()) }

// Accept copies ev and starts its delivery. It never reports duplicates.
func (q *Memory) Accept(ev *Event) (bool, error) {
	if q.pending.Add(1) > int64(q.cfg.MaxEvents) {
		q.pending.Add(-1)
		q.m.count("refused")
		return false, ErrFull
	}
	c := *ev
	c.Request = append([]byte(nil), ev.Request...)
	q.m.count("accepted")
	q.m.pending.Store(q.pending.Load())
	q.wg.Add(1)
	go q.deliver(&c)
	return false, nil
}

// deliver tries ev until it runs, fails for good or expires.
func (q *Memory) deliver(ev *Event) {
	defer func() {
		q.m.pending.Store(q.pending.Add(-1))
		q.wg.Done()
	}()
	for ev.Delivery = 1; ; ev.Delivery++ {
		q.m.delivering.Add(1)
		res := q.d.Deliver(ev, q.stopping)
		q.m.delivering.Add(-1)
		var delay time.Duration
		reason := res.Reason
		switch res.Verdict {
		case Delivered:
			q.m.count("delivered")
			return
		case Stopped:
			q.lost.Add(1)
			return
		case Rejected:
			q.m.deadLetter(reasonRejected)
			return
		case FunctionError:
			if ev.FunctionErrors++; ev.FunctionErrors > q.cfg.MaxRetries {
				q.m.deadLetter(reasonRetries)
				return
			}
			reason, delay = "function_error", q.cfg.RetryDelay<<(ev.FunctionErrors-1)
		case Retry:
			delay = res.Delay
		}
		if time.Since(ev.Arrival)+delay > q.cfg.MaxAge {
			q.m.deadLetter(reasonAge)
			return
		}
		q.m.retry(reason)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-q.stopping:
			t.Stop()
			q.lost.Add(1)
			return
		}
	}
}

// Stop stops the deliveries: events waiting for a slot or a retry are
// dropped, and Stop waits, until ctx ends, for those at the platform. It
// returns how many events it lost: all those not delivered.
func (q *Memory) Stop(ctx context.Context) (lost int) {
	q.stopOnce.Do(func() { close(q.stopping) })
	q.Wait(ctx.Done())
	return int(q.lost.Load()) + q.Pending()
}

// Wait waits until every accepted event is delivered or given up, or until
// done closes; it reports whether none is left.
func (q *Memory) Wait(done <-chan struct{}) bool {
	all := make(chan struct{})
	go func() { q.wg.Wait(); close(all) }()
	select {
	case <-all:
		return true
	case <-done:
		return false
	}
}
