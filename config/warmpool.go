package config

import (
	"math"
	"strconv"
	"time"
)

// WarmPool configures pre-warming (package warmpool): which functions are
// kept warm, how many instances, and what the platform's keep-alive is.
type WarmPool struct {
	// Prewarm switches the warm pool on; off, sequoia sends no warm-ups.
	Prewarm bool `env:"PREWARM" envDefault:"false"`
	// PrewarmMin is the number of warm instances kept for every recently
	// seen function (keep-alive), like provisioned concurrency; at most
	// SEQUOIA_MAX_CONCURRENCY. 0 keeps none warm by keep-alive (burst and
	// chain pre-warm still act).
	PrewarmMin int `env:"PREWARM_MIN" envDefault:"0"`
	// PrewarmFunctions sets the warm count of named functions, overriding
	// SEQUOIA_PREWARM_MIN, e.g. `guest/checkout=3,resize=1`; each at most
	// SEQUOIA_MAX_CONCURRENCY. `fn=0` switches every pre-warm off for `fn`
	// unless a policy's `prewarm` asks. Names are the platform's
	// (OpenWhisk `ns/[pkg/]action`, the Lambda function name, the HTTP
	// service).
	PrewarmFunctions map[string]int `env:"PREWARM_FUNCTIONS" envDefault:"" envKeyValSeparator:"="`
	// PrewarmBurst switches burst pre-warm on: warm-ups ahead of demand
	// that outgrew the idle instances.
	PrewarmBurst bool `env:"PREWARM_BURST" envDefault:"true"`
	// PrewarmChains switches chain pre-warm on: warm the function history
	// says comes next in a chain when a step starts.
	PrewarmChains bool `env:"PREWARM_CHAINS" envDefault:"true"`
	// PrewarmBurstFunctions switches burst pre-warm per function,
	// overriding SEQUOIA_PREWARM_BURST, e.g.
	// `guest/checkout=false,resize=true`; a policy's `prewarm` hint
	// switches it on.
	PrewarmBurstFunctions map[string]bool `env:"PREWARM_BURST_FUNCTIONS" envDefault:"" envKeyValSeparator:"="`
	// PrewarmChainsFunctions switches chain pre-warm per function (the
	// function that would be warmed, the next step's), overriding
	// SEQUOIA_PREWARM_CHAINS; a policy's `prewarm` hint switches it on.
	PrewarmChainsFunctions map[string]bool `env:"PREWARM_CHAINS_FUNCTIONS" envDefault:"" envKeyValSeparator:"="`
	// PlatformKeepAlive is how long the platform keeps an idle instance
	// (OpenWhisk's default is 10 minutes; Lambda's is not documented and
	// varies); it drives the warm estimate and keep-alive rounds.
	PlatformKeepAlive time.Duration `env:"PLATFORM_KEEPALIVE" envDefault:"10m"`
	// PrewarmMaxFunctions is the number of functions the warm pool
	// remembers; the least recently seen is forgotten first.
	PrewarmMaxFunctions int `env:"PREWARM_MAX_FUNCTIONS" envDefault:"1000"`
	// PrewarmHeadroom is the fraction of the concurrency limit (at least
	// one slot) that warm-ups always leave free for arriving invocations.
	PrewarmHeadroom float64 `env:"PREWARM_HEADROOM" envDefault:"0.1"`
	// PrewarmHold is how long a warm-up first asks the function to hold
	// its instance (payload `sequoia_warmup_hold_ms`), so that concurrent
	// warm-ups land on distinct instances. The pool then adapts it per
	// function from each round's round trips, between
	// SEQUOIA_PREWARM_HOLD_MIN and SEQUOIA_PREWARM_HOLD_MAX; with all three
	// equal the hold is fixed.
	PrewarmHold time.Duration `env:"PREWARM_HOLD" envDefault:"25ms"`
	// PrewarmHoldMin is the lowest hold the pool may adapt a function's
	// warm-ups to: a floor against spikes no round has shown yet.
	PrewarmHoldMin time.Duration `env:"PREWARM_HOLD_MIN" envDefault:"1ms"`
	// PrewarmHoldMax is the highest adaptive hold, bounding what a slow or
	// jittery network may cost; at least SEQUOIA_PREWARM_HOLD and below
	// SEQUOIA_PLATFORM_KEEPALIVE.
	PrewarmHoldMax time.Duration `env:"PREWARM_HOLD_MAX" envDefault:"250ms"`
	// PrewarmBackoff is the pause in warming a function after a failed
	// warm-up, doubled on each further failure.
	PrewarmBackoff time.Duration `env:"PREWARM_BACKOFF" envDefault:"1s"`
	// PrewarmMaxBackoff is the longest such pause.
	PrewarmMaxBackoff time.Duration `env:"PREWARM_MAX_BACKOFF" envDefault:"5m"`
}

// check reports the values that parse but make no sense; limit is
// SEQUOIA_MAX_CONCURRENCY, which no warm count may exceed.
func (w WarmPool) check(limit int, bad func(name string, v any, why string)) {
	if w.PrewarmMin < 0 {
		bad("PREWARM_MIN", w.PrewarmMin, "must not be negative")
	} else if w.PrewarmMin > limit {
		bad("PREWARM_MIN", w.PrewarmMin, "must not exceed SEQUOIA_MAX_CONCURRENCY")
	}
	for fn, n := range w.PrewarmFunctions {
		switch {
		case fn == "":
			bad("PREWARM_FUNCTIONS", w.PrewarmFunctions, "an entry has no function name")
		case n < 0:
			bad("PREWARM_FUNCTIONS", fn+"="+strconv.Itoa(n), "a warm count must not be negative")
		case n > limit:
			bad("PREWARM_FUNCTIONS", fn+"="+strconv.Itoa(n), "a warm count must not exceed SEQUOIA_MAX_CONCURRENCY")
		}
	}
	if _, ok := w.PrewarmBurstFunctions[""]; ok {
		bad("PREWARM_BURST_FUNCTIONS", w.PrewarmBurstFunctions, "an entry has no function name")
	}
	if _, ok := w.PrewarmChainsFunctions[""]; ok {
		bad("PREWARM_CHAINS_FUNCTIONS", w.PrewarmChainsFunctions, "an entry has no function name")
	}
	if w.PlatformKeepAlive <= 0 {
		bad("PLATFORM_KEEPALIVE", w.PlatformKeepAlive, "must be positive")
	}
	if w.PrewarmMaxFunctions <= 0 {
		bad("PREWARM_MAX_FUNCTIONS", w.PrewarmMaxFunctions, "must be positive")
	}
	if !(w.PrewarmHeadroom >= 0 && w.PrewarmHeadroom < 1) || math.IsNaN(w.PrewarmHeadroom) {
		bad("PREWARM_HEADROOM", w.PrewarmHeadroom, "must be at least 0 and less than 1")
	}
	w.checkHold(bad)
	if w.PrewarmBackoff <= 0 {
		bad("PREWARM_BACKOFF", w.PrewarmBackoff, "must be positive")
	}
	if w.PrewarmMaxBackoff < w.PrewarmBackoff {
		bad("PREWARM_MAX_BACKOFF", w.PrewarmMaxBackoff, "must not be less than SEQUOIA_PREWARM_BACKOFF")
	}
}

// checkHold reports the warm-up hold's bad values: each not negative and
// below the keep-alive, the minimum at most the maximum, the starting hold
// between them.
func (w WarmPool) checkHold(bad func(name string, v any, why string)) {
	ok := true
	for _, h := range []struct {
		name string
		v    time.Duration
	}{{"PREWARM_HOLD", w.PrewarmHold}, {"PREWARM_HOLD_MIN", w.PrewarmHoldMin}, {"PREWARM_HOLD_MAX", w.PrewarmHoldMax}} {
		if h.v < 0 || h.v >= w.PlatformKeepAlive && w.PlatformKeepAlive > 0 {
			bad(h.name, h.v, "must not be negative nor reach SEQUOIA_PLATFORM_KEEPALIVE")
			ok = false
		}
	}
	switch {
	case !ok:
	case w.PrewarmHoldMin > w.PrewarmHoldMax:
		bad("PREWARM_HOLD_MIN", w.PrewarmHoldMin, "must not exceed SEQUOIA_PREWARM_HOLD_MAX ("+w.PrewarmHoldMax.String()+")")
	case w.PrewarmHold < w.PrewarmHoldMin || w.PrewarmHold > w.PrewarmHoldMax:
		bad("PREWARM_HOLD", w.PrewarmHold, "must lie between SEQUOIA_PREWARM_HOLD_MIN ("+w.PrewarmHoldMin.String()+
			") and SEQUOIA_PREWARM_HOLD_MAX ("+w.PrewarmHoldMax.String()+"); for a fixed hold, set all three equal")
	}
}
