package emulator

import "sync/atomic"

// Counters are what the emulator counts, account-wide and per function.
// Throttled requests are counted only as throttles; warm-ups only as warm-ups.
type Counters struct {
	// Invocations is the number of real (not warm-up) invocations started.
	Invocations int64 `json:"invocations"`
	// Completed is the number of real invocations that finished, failed or not.
	Completed int64 `json:"completed"`
	// ColdStarts is the number of real invocations that paid a cold start.
	ColdStarts int64 `json:"cold_starts"`
	// Warmups is the number of warm-up invocations started.
	Warmups int64 `json:"warmups"`
	// WarmupColdStarts is the number of warm-ups that paid a cold start.
	WarmupColdStarts int64 `json:"warmup_cold_starts"`
	// Throttles is the number of requests refused by the concurrency limit.
	Throttles int64 `json:"throttles"`
	// RateThrottles is the number of requests refused by the per-minute
	// namespace rate limit (OpenWhisk only).
	RateThrottles int64 `json:"rate_throttles"`
	// InFlight is the number of invocations running now, warm-ups and
	// background ones included.
	InFlight int64 `json:"in_flight"`
	// PeakConcurrency is the highest InFlight seen since start or reset.
	PeakConcurrency int64 `json:"peak_concurrency"`
	// Errors is the number of real invocations that failed.
	Errors int64 `json:"errors"`
	// WarmupErrors is the number of warm-ups failed by Config.FailWarmups.
	WarmupErrors int64 `json:"warmup_errors"`
	// Queued is the number of calls that waited for a slot (ModeQueue).
	Queued int64 `json:"queued"`
}

// Stats is a snapshot of the emulator's counters, served as JSON by
// GET /emulator/stats.
type Stats struct {
	Counters
	// Limit is the account-wide concurrency limit in force.
	Limit int `json:"limit"`
	// Mode is how calls over the limit are answered (account, refuse,
	// queue, serial); Waiting is how many wait for a slot now (queue).
	Mode    string `json:"mode"`
	Waiting int    `json:"waiting"`
	// Functions holds one entry per function identity seen since start.
	Functions map[string]FunctionStats `json:"functions"`
}

// FunctionStats are one function's counters and its warm instances.
type FunctionStats struct {
	Counters
	// WarmInstances is the number of idle instances not yet expired.
	WarmInstances int `json:"warm_instances"`
	// LiveInstances is WarmInstances plus the instances running an
	// invocation now, counted together: unlike WarmInstances+InFlight,
	// read from two places at two moments, it never misses an instance
	// passing from idle to busy or back.
	LiveInstances int `json:"live_instances"`
}

// counters is the live, atomic form of Counters.
type counters struct {
	invocations, completed, coldStarts, warmups, warmupColdStarts  atomic.Int64
	throttles, rateThrottles, inFlight, peak, errors, warmupErrors atomic.Int64
	queued                                                         atomic.Int64
}

// enter counts one more invocation in flight and raises the peak.
func (c *counters) enter() { c.raisePeak(c.inFlight.Add(1)) }

// raisePeak lifts the peak to n if n is higher.
func (c *counters) raisePeak(n int64) {
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (c *counters) snapshot() Counters {
	return Counters{
		Invocations:      c.invocations.Load(),
		Completed:        c.completed.Load(),
		ColdStarts:       c.coldStarts.Load(),
		Warmups:          c.warmups.Load(),
		WarmupColdStarts: c.warmupColdStarts.Load(),
		Throttles:        c.throttles.Load(),
		RateThrottles:    c.rateThrottles.Load(),
		InFlight:         c.inFlight.Load(),
		PeakConcurrency:  c.peak.Load(),
		Errors:           c.errors.Load(),
		WarmupErrors:     c.warmupErrors.Load(),
		Queued:           c.queued.Load(),
	}
}

// reset zeroes every counter but InFlight, which is live state; the peak
// restarts from what is in flight now.
func (c *counters) reset() {
	for _, v := range []*atomic.Int64{
		&c.invocations, &c.completed, &c.coldStarts, &c.warmups, &c.warmupColdStarts,
		&c.throttles, &c.rateThrottles, &c.errors, &c.warmupErrors, &c.queued,
	} {
		v.Store(0)
	}
	c.peak.Store(c.inFlight.Load())
}
