package warmpool

import "time"

// Status is the pool's state for /sequoia/v1/status: per function, most
// recently seen first, at most the number asked for.
type Status struct {
	KeepAlive string `json:"platform_keepalive"`
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
}

// WarmupCounts are warm-ups by reason.
type WarmupCounts struct {
	KeepAlive int64 `json:"keepalive"`
	Burst     int64 `json:"burst"`
	Chain     int64 `json:"chain"`
}

// Status reports the pool's state, listing at most limit functions (most
// recently seen first). Cost: the pool's mutex for one pass over the
// functions listed.
func (p *Pool) Status(limit int) Status {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := p.fns.Keys() // oldest first
	st := Status{KeepAlive: p.cfg.KeepAlive.String(), Functions: len(keys)}
	n := min(max(limit, 0), len(keys))
	st.List = make([]FunctionStatus, 0, n)
	for i := len(keys) - 1; i >= len(keys)-n; i-- {
		f, _ := p.fns.Peek(keys[i])
		fs := FunctionStatus{
			Function:   f.name,
			Warm:       f.instancesLive(now, p.cfg.KeepAlive),
			Min:        p.wantLocked(f),
			Burst:      p.burstLocked(f) && !p.offLocked(f),
			Chain:      p.chainsLocked(f) && !p.offLocked(f),
			Warmups:    WarmupCounts{KeepAlive: f.sent[KeepAlive], Burst: f.sent[Burst], Chain: f.sent[Chain]},
			ColdStarts: f.cold,
			Failures:   f.fails,
		}
		if f.votes > 0 {
			fs.Next = f.next
		}
		if now.Before(f.retryAt) {
			t := f.retryAt.UTC()
			fs.BackoffUntil = &t
		}
		st.List = append(st.List, fs)
	}
	st.Shown = len(st.List)
	return st
}
