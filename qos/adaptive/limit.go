package adaptive

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limit is the adaptive concurrency limit shared by every worker. It sets
// the scheduler's limit to the algorithm's limit, capped by SetCap (a
// cluster lease), minus the slots held by background work (at least 1).
type Limit struct {
	set      func(int)
	inFlight func() int
	now      func() time.Time
	log      *slog.Logger

	mu   sync.Mutex
	aimd AIMD // REQUIRES: mu

	applyMu sync.Mutex // orders calls of set

	limit     atomic.Int64 // the algorithm's limit, for readers
	cap       atomic.Int64 // SetCap's; 0: none
	held      atomic.Int64 // slots taken by background work
	throttles atomic.Int64
	cuts      atomic.Int64
	reverted  atomic.Int64
	bound     atomic.Int64
	slow      atomic.Bool
	verifying atomic.Bool
}

// New returns a Limit at cfg.Initial. set applies a new limit to the
// scheduler; inFlight reads how many slots the scheduler has handed out.
// log (may be nil) hears each queueing cut and each cut undone.
func New(cfg Config, set func(int), inFlight func() int, log *slog.Logger) *Limit {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Limit{set: set, inFlight: inFlight, now: time.Now, log: log, aimd: NewAIMD(cfg)}
	l.limit.Store(int64(l.aimd.Limit()))
	l.slow.Store(l.aimd.SlowStart())
	l.apply()
	return l
}

// InFlight returns the platform calls in flight now as the limit counts
// them: the scheduler's slots handed out plus the background holds. A
// sender reads it to report Sample.InFlight.
//
// Cost: two atomic loads.
func (l *Limit) InFlight() int { return l.inFlight() + int(l.held.Load()) }

// OnThrottle records a concurrency throttle from the platform, while the
// throttled call's slot is still held: the calls in flight now, less it,
// bound the platform's real limit.
//
// Cost: one lock, one clock read, two atomic loads.
func (l *Limit) OnThrottle() {
	l.throttles.Add(1)
	n := l.InFlight()
	l.mu.Lock()
	changed := l.aimd.Throttle(l.now(), n)
	l.publishLocked()
	l.mu.Unlock()
	if changed {
		l.apply()
	}
}

// OnSuccess records an invocation the platform ran (its function may have
// failed: that says nothing about concurrency): of function fn, sent at
// sent when inFlight calls were in flight (InFlight then, itself
// included), answered now. A zero sent gives no latency sample: for
// answers whose latency is not the function's run (202s, function
// errors).
//
// Cost: one lock, one clock read (the answer's time, which the round trip
// shares), two atomic loads; with a latency sample, one map lookup.
func (l *Limit) OnSuccess(fn string, inFlight int, sent time.Time) {
	used := l.InFlight()
	now := l.now()
	var rtt time.Duration
	if !sent.IsZero() {
		rtt = max(now.Sub(sent), 1)
	}
	l.mu.Lock()
	cuts, reverted, unproven := l.aimd.Cuts, l.aimd.Reverted, l.aimd.Unproven
	before := l.aimd.Limit()
	changed := l.aimd.Success(now, used, Sample{Function: fn, RTT: rtt, InFlight: inFlight})
	after := l.aimd.Limit()
	cut, undone := l.aimd.Cuts != cuts, l.aimd.Reverted != reverted
	unprovenNow := l.aimd.Unproven != unproven
	ratio := l.aimd.cutRatio
	l.publishLocked()
	l.mu.Unlock()
	if changed {
		l.apply()
	}
	switch {
	case cut:
		l.log.Info("platform is queueing: adaptive limit cut", "from", before, "to", after,
			"latency_ratio", round2(ratio), "function", fn)
	case undone && unprovenNow:
		l.log.Info("no calls at the cut limit soon after it: queueing unproven; queueing cut undone",
			"limit", after, "function", fn)
	case undone:
		l.log.Info("latency did not fall with concurrency: not queueing; queueing cut undone",
			"limit", after, "function", fn)
	}
}

// publishLocked copies the algorithm's state for lock-free readers.
//
// REQUIRES: l.mu held.
func (l *Limit) publishLocked() {
	l.limit.Store(int64(l.aimd.Limit()))
	l.cuts.Store(int64(l.aimd.Cuts))
	l.reverted.Store(int64(l.aimd.Reverted))
	l.bound.Store(int64(l.aimd.Bound))
	l.slow.Store(l.aimd.SlowStart())
	l.verifying.Store(l.aimd.Verifying())
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

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

// SetCap caps the scheduler's limit at n whatever the algorithm learns
// (n <= 0: no cap): a share of a budget other replicas use too (a cluster
// lease). The algorithm goes on learning under its own Ceiling; Limit
// stays what it learned, Effective is what applies.
func (l *Limit) SetCap(n int) {
	l.cap.Store(int64(max(n, 0)))
	l.apply()
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

// Cap returns SetCap's cap; 0 when none.
func (l *Limit) Cap() int { return int(l.cap.Load()) }

// Effective returns the scheduler's limit: Limit, capped by Cap, less the
// held slots, at least 1.
func (l *Limit) Effective() int {
	n := l.Limit()
	if c := l.Cap(); c > 0 && c < n {
		n = c
	}
	return max(1, n-int(l.held.Load()))
}

// Held returns the slots taken by background work.
func (l *Limit) Held() int { return int(l.held.Load()) }

// Throttles returns the concurrency throttles seen.
func (l *Limit) Throttles() int64 { return l.throttles.Load() }

// Status is the limit's state for /sequoia/v1/status.
type Status struct {
	Limit     int `json:"limit"`
	Effective int `json:"effective_limit"`
	// Cap is a cluster lease's cap; 0: none.
	Cap  int `json:"cap"`
	Held int `json:"background_held"`
	// SlowStart: still growing from SEQUOIA_ADAPTIVE_INITIAL, no sign of
	// the platform's limit yet.
	SlowStart bool  `json:"slow_start"`
	Throttles int64 `json:"throttles"`
	// Bound is the least throttle bound seen: the platform ran at most
	// this many of sequoia's calls when it refused one. 0: none.
	Bound int `json:"throttle_bound"`
	// QueueingCuts are cuts on latency rising with concurrency;
	// CutsUndone, those undone because latency did not fall with it.
	QueueingCuts int64 `json:"queueing_cuts"`
	CutsUndone   int64 `json:"queueing_cuts_undone"`
	// Verifying: the last queueing cut waits for the calls sent after it
	// to show that latency followed concurrency down (else it is undone).
	Verifying bool `json:"verifying_cut"`
}

// Status reads the limit's state. No lock.
func (l *Limit) Status() Status {
	return Status{
		Limit: l.Limit(), Effective: l.Effective(), Cap: l.Cap(), Held: l.Held(),
		SlowStart: l.slow.Load(), Throttles: l.Throttles(), Bound: int(l.bound.Load()),
		QueueingCuts: l.cuts.Load(), CutsUndone: l.reverted.Load(), Verifying: l.verifying.Load(),
	}
}

// Collectors returns gauges and counters that read l at scrape time.
func (l *Limit) Collectors(namespace string) []prometheus.Collector {
	g := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, f)
	}
	c := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		g("adaptive_limit", "The adaptive concurrency limit (before a cluster cap and background holds).",
			func() float64 { return float64(l.Limit()) }),
		g("effective_concurrency_limit", "The limit applied to the worker pool: the adaptive limit, capped by a cluster lease, less background holds.",
			func() float64 { return float64(l.Effective()) }),
		g("background_held_slots", "Slots held for background work running at the platform (OpenWhisk 202s).",
			func() float64 { return float64(l.Held()) }),
		c("platform_concurrency_throttles_total", "Concurrency throttles the platform answered (429/503 queue full), retried or not.",
			func() float64 { return float64(l.Throttles()) }),
		c("adaptive_queueing_cuts_total", "Cuts of the adaptive limit because the platform's latency rose with concurrency (it queues calls instead of refusing them).",
			func() float64 { return float64(l.cuts.Load()) }),
		c("adaptive_queueing_cuts_undone_total", "Queueing cuts undone because latency did not fall with concurrency (a slower function, cold instances).",
			func() float64 { return float64(l.reverted.Load()) }),
	}
}
