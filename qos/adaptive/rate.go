package adaptive

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Rates paces tenants that a platform throttled for their invocation rate
// (OpenWhisk's per-namespace "Too many requests in the last minute",
// which says how many it allows). After such a throttle the tenant's
// invocations are spaced at the allowed rate, starting with no burst (the
// platform's window is spent), instead of being retried into the same
// refusal; after Quiet without another one, pacing ends.
type Rates struct {
	quiet time.Duration
	max   int
	now   func() time.Time

	n  atomic.Int64 // tenants paced; 0 makes Delay one atomic load
	mu sync.Mutex
	m  map[string]*paced // REQUIRES: mu
}

type paced struct {
	lim          *rate.Limiter
	lastThrottle time.Time
}

// NewRates returns pacing for at most maxTenants tenants at once, each
// ended after quiet without a rate throttle.
func NewRates(maxTenants int, quiet time.Duration) *Rates {
	return &Rates{quiet: quiet, max: maxTenants, now: time.Now, m: map[string]*paced{}}
}

// OnRateThrottle paces tenant at perMinute invocations a minute from now
// on (perMinute <= 0: the platform did not say; nothing changes).
func (r *Rates) OnRateThrottle(tenant string, perMinute int) {
	if perMinute <= 0 {
		return
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.m[tenant]
	if p == nil {
		if len(r.m) >= r.max {
			return
		}
		// One token a period, none banked: the platform's window is
		// spent, so the first paced call waits a period too.
		lim := rate.NewLimiter(rate.Limit(float64(perMinute)/60), 1)
		lim.ReserveN(now, 1)
		p = &paced{lim: lim}
		r.m[tenant] = p
		r.n.Add(1)
	} else if want := rate.Limit(float64(perMinute) / 60); p.lim.Limit() != want {
		p.lim.SetLimitAt(now, want)
	}
	p.lastThrottle = now
}

// Delay reserves tenant's next turn and returns how long to wait for it;
// 0 when the tenant is not paced.
//
// Cost when no tenant is paced: one atomic load.
func (r *Rates) Delay(tenant string) time.Duration {
	if r.n.Load() == 0 {
		return 0
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.m[tenant]
	if p == nil {
		return 0
	}
	if now.Sub(p.lastThrottle) > r.quiet {
		delete(r.m, tenant)
		r.n.Add(-1)
		return 0
	}
	return p.lim.ReserveN(now, 1).DelayFrom(now)
}

// Paced returns how many tenants are paced.
func (r *Rates) Paced() int { return int(r.n.Load()) }
