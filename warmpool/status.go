package warmpool

import (
	"cmp"
	"slices"
	"time"
)

// Status is the pool's state for /sequoia/v1/status: per function, most
// recently seen first, at most the number asked for.
type Status struct {
	KeepAlive string `json:"platform_keepalive"`
	// Hold is the warm-up hold's configuration: where each function's
	// starts, and the bounds it adapts within (fixed when they are equal).
	Hold HoldRange `json:"warmup_hold"`
	// Functions is how many functions the pool remembers (at most
	// SEQUOIA_PREWARM_MAX_FUNCTIONS); Shown of them are listed.
	Functions int              `json:"functions"`
	Shown     int              `json:"shown"`
	List      []FunctionStatus `json:"by_function"`
}

// FunctionStatus is what the pool believes and did for one function.
type FunctionStatus struct {
	Function string `json:"function"`
	// Warm is the believed-warm estimate: running, warming, or idle within
	// the platform's keep-alive. Min is the warm count keep-alive keeps
	// (configuration or the policy's hint; 0: none).
	Warm int `json:"warm"`
	Min  int `json:"min"`
	// Burst and Chain say whether burst and chain pre-warm are on for it.
	Burst bool `json:"burst"`
	Chain bool `json:"chain"`
	// Next is the function history says follows it in a chain.
	Next string `json:"next,omitempty"`
	// Warmups are those sent since the pool first saw it, by reason.
	Warmups WarmupCounts `json:"warmups"`
	// ColdStarts are those its real invocations paid, as detected.
	ColdStarts int64 `json:"cold_starts"`
	// Failures counts consecutive failed warm-ups; while BackoffUntil is
	// set, no warm-up of it is sent before then.
	Failures     int        `json:"failures"`
	BackoffUntil *time.Time `json:"backoff_until,omitempty"`
	// HoldMs is the hold its warm-ups ask for now, in milliseconds.
	// NeedMs is what its rounds of warm-ups showed they needed (the
	// spread of the sends plus the worst round trip, smoothed: the hold
	// is twice that, within the bounds), absent before a round was
	// checked.
	HoldMs int64    `json:"warmup_hold_ms"`
	NeedMs *float64 `json:"warmup_need_ms,omitempty"`
	// Rounds counts its rounds of warm-ups checked: verified when their
	// answers prove they held distinct instances, unverified when they
	// may have shared some (the hold was too short for the round trips,
	// or the function did not hold).
	Rounds RoundCounts `json:"rounds"`
	// IgnoresHold: its warm-ups came back sooner than their hold in
	// several checked rounds in a row, none verified: the function does
	// not honour sequoia_warmup_hold_ms, so its warm-ups land on one
	// instance and only one stays warm whatever Min says.
	IgnoresHold bool `json:"ignores_hold"`
}

// HoldRange is the warm-up hold's configuration.
type HoldRange struct {
	Start    string `json:"start"`
	Min      string `json:"min"`
	Max      string `json:"max"`
	Adaptive bool   `json:"adaptive"`
}

// RoundCounts are rounds of warm-ups checked, by verdict.
type RoundCounts struct {
	Verified   int64 `json:"verified"`
	Unverified int64 `json:"unverified"`
	// Early are the unverified rounds in which a warm-up came back
	// sooner than its hold.
	Early int64 `json:"answered_before_hold"`
}

// WarmupCounts are warm-ups by reason.
type WarmupCounts struct {
	KeepAlive int64 `json:"keepalive"`
	Burst     int64 `json:"burst"`
	Chain     int64 `json:"chain"`
}

// Status reports the pool's state, listing at most limit functions (most
// recently seen first). Cost: every shard's mutex, one at a time, to list
// the functions, and the mutex of each function listed.
func (p *Pool) Status(limit int) Status {
	now := p.cfg.Now()
	fns := p.fns.values() // shard by shard, each least recently used first
	slices.Reverse(fns)
	// Across shards, by the time each was last seen, ties in the LRU's
	// order; one shard lists exactly as its LRU.
	seen := make([]int64, len(fns))
	for i, f := range fns {
		seen[i] = f.seen.Load()
	}
	idx := make([]int, len(fns))
	for i := range idx {
		idx[i] = i
	}
	if len(p.fns.s) > 1 {
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(seen[b], seen[a]) })
	}
	st := Status{KeepAlive: p.cfg.KeepAlive.String(), Functions: len(fns), Hold: HoldRange{
		Start: p.cfg.Hold.String(), Min: p.cfg.HoldMin.String(), Max: p.cfg.HoldMax.String(),
		Adaptive: p.cfg.HoldMin < p.cfg.HoldMax,
	}}
	n := min(max(limit, 0), len(fns))
	st.List = make([]FunctionStatus, 0, n)
	for _, i := range idx[:n] {
		st.List = append(st.List, p.functionStatus(fns[i], now))
	}
	st.Shown = len(st.List)
	return st
}

// functionStatus is f's entry in Status.
func (p *Pool) functionStatus(f *function, now time.Time) FunctionStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := FunctionStatus{
		Function:    f.name,
		Warm:        f.instancesLive(now, p.cfg.KeepAlive),
		Min:         p.wantLocked(f),
		Burst:       switched(f, p.cfg.BurstFunctions, p.cfg.Burst) && !p.offLocked(f),
		Chain:       switched(f, p.cfg.ChainFunctions, p.cfg.Chains) && !p.offLocked(f),
		Warmups:     WarmupCounts{KeepAlive: f.sent[KeepAlive], Burst: f.sent[Burst], Chain: f.sent[Chain]},
		ColdStarts:  f.cold,
		Failures:    f.fails,
		HoldMs:      f.hold.Milliseconds(),
		Rounds:      RoundCounts{Unverified: f.rounds[0], Verified: f.rounds[1], Early: f.early},
		IgnoresHold: f.ignoresHoldLocked(),
	}
	if f.rounds != [2]int64{} { // need measured
		ms := float64(f.need.Microseconds()) / 1000
		fs.NeedMs = &ms
	}
	if f.votes > 0 {
		fs.Next = f.next
	}
	if now.Before(f.retryAt) {
		t := f.retryAt.UTC()
		fs.BackoffUntil = &t
	}
	return fs
}
