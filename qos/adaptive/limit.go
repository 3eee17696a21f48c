package adaptive

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limit is the adaptive concurrency limit shared by every worker. It sets
// the scheduler's limit to the algorithm's limit minus the slots held by
// background work (at least 1).
type Limit struct {
	set      func(int)
	inFlight func() int
	now      func() time.Time

	mu   sync.Mutex
	aimd AIMD // REQUIRES: mu

	applyMu sync.Mutex // orders calls of set

	limit     atomic.Int64 // the algorithm's limit, for readers
	held      atomic.Int64 // slots taken by background work
	throttles atomic.Int64
}

// New returns a Limit at cfg.Ceiling. set applies a new limit to the
// scheduler; inFlight reads how many slots the scheduler has handed out.
func New(cfg Config, set func(int), inFlight func() int) *Limit {
	l := &Limit{set: set, inFlight: inFlight, now: time.Now, aimd: NewAIMD(cfg)}
	l.limit.Store(int64(l.aimd.Limit()))
	return l
}

// OnThrottle records a concurrency throttle from the platform.
//
// Cost: one lock, one clock read.
func (l *Limit) OnThrottle() {
	l.throttles.Add(1)
	l.mu.Lock()
	changed := l.aimd.Throttle(l.now())
	n := l.aimd.Limit()
	l.mu.Unlock()
	if changed {
		l.limit.Store(int64(n))
		l.apply()
	}
}

// OnSuccess records an invocation the platform ran (its function may have
// failed: that says nothing about concurrency).
//
// Cost: one lock, one clock read, one atomic load.
func (l *Limit) OnSuccess() {
	used := l.inFlight() + int(l.held.Load())
	l.mu.Lock()
	changed := l.aimd.Success(l.now(), used)
	n := l.aimd.Limit()
	l.mu.Unlock()
	if changed {
		l.limit.Store(int64(n))
		l.apply()
	}
}

// Hold takes one slot away from the scheduler for d: background work the
// platform runs after answering.
func (l *Limit) Hold(d time.Duration) {
	if d <= 0 {
		return
	}
	l.held.Add(1)
	l.apply()
	time.AfterFunc(d, func() {
		l.held.Add(-1)
		l.apply()
	})
}

// apply sets the scheduler's limit. Each call reads the values under
// applyMu, so the last one to set reads the latest.
func (l *Limit) apply() {
	l.applyMu.Lock()
	l.set(l.Effective())
	l.applyMu.Unlock()
}

// Limit returns the algorithm's current limit.
func (l *Limit) Limit() int { return int(l.limit.Load()) }

// Effective returns the scheduler's limit: Limit less the held slots, at
// least 1.
func (l *Limit) Effective() int { return max(1, l.Limit()-int(l.held.Load())) }

// Held returns the slots taken by background work.
func (l *Limit) Held() int { return int(l.held.Load()) }

// Throttles returns the concurrency throttles seen.
func (l *Limit) Throttles() int64 { return l.throttles.Load() }

// Collectors returns gauges and counters that read l at scrape time.
func (l *Limit) Collectors(namespace string) []prometheus.Collector {
	g := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		g("adaptive_limit", "The adaptive concurrency limit (before background holds).",
			func() float64 { return float64(l.Limit()) }),
		g("effective_concurrency_limit", "The limit applied to the worker pool: the adaptive limit less background holds.",
			func() float64 { return float64(l.Effective()) }),
		g("background_held_slots", "Slots held for background work running at the platform (OpenWhisk 202s).",
			func() float64 { return float64(l.Held()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: "platform_concurrency_throttles_total",
			Help: "Concurrency throttles the platform answered (429/503 queue full), retried or not."},
			func() float64 { return float64(l.Throttles()) }),
	}
}
