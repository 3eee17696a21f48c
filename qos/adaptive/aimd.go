package adaptive

import (
	"fmt"
	"time"
)

// Config tunes the limit. Zero values take the defaults.
type Config struct {
	// Ceiling is the most the limit may reach, and where it starts
	// (SEQUOIA_MAX_CONCURRENCY). Required.
	Ceiling int
	// Floor is the least the limit may fall to; default 1.
	Floor int
	// Backoff multiplies the limit on a concurrency throttle; default 0.9.
	Backoff float64
	// Cooldown is the least time between two decreases: the throttles of
	// one overshoot arrive together and lower the limit once. Default
	// 100ms.
	Cooldown time.Duration
	// Quiet is how long after the last throttle the limit starts probing
	// back up. Default 1s.
	Quiet time.Duration
}

// Defaults.
const (
	DefaultBackoff  = 0.9
	DefaultCooldown = 100 * time.Millisecond
	DefaultQuiet    = time.Second
)

func (c Config) withDefaults() Config {
	if c.Floor <= 0 {
		c.Floor = 1
	}
	if c.Ceiling < c.Floor {
		c.Ceiling = c.Floor
	}
	if !(c.Backoff > 0 && c.Backoff < 1) {
		c.Backoff = DefaultBackoff
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.Quiet <= 0 {
		c.Quiet = DefaultQuiet
	}
	return c
}

// AIMD is the algorithm alone, driven by explicit times. Its zero value is
// not usable: make one with NewAIMD. Not safe for concurrent use: Limit
// wraps it for that.
type AIMD struct {
	cfg          Config
	limit        float64
	lastDecrease time.Time
	lastThrottle time.Time
	successes    int // in the current increase window

	Decreases, Increases int // how often the limit moved
}

// NewAIMD returns the algorithm at cfg.Ceiling.
func NewAIMD(cfg Config) AIMD {
	cfg = cfg.withDefaults()
	return AIMD{cfg: cfg, limit: float64(cfg.Ceiling)}
}

// Limit returns the current limit.
func (a *AIMD) Limit() int { return int(a.limit) }

// Throttle records a concurrency throttle at now and reports whether the
// limit changed.
func (a *AIMD) Throttle(now time.Time) bool {
	a.lastThrottle = now
	a.successes = 0
	if !a.lastDecrease.IsZero() && now.Sub(a.lastDecrease) < a.cfg.Cooldown {
		return false
	}
	before := a.Limit()
	a.limit = max(float64(a.cfg.Floor), a.limit*a.cfg.Backoff)
	if int(a.limit) == before && before > a.cfg.Floor {
		a.limit = float64(before - 1) // always a step down while above the floor
	}
	a.lastDecrease = now
	if a.Limit() != before {
		a.Decreases++
		return true
	}
	return false
}

// Success records an invocation the platform ran, answered at now while
// used slots (held and reserved) were in use, and reports whether the limit
// changed. The limit grows only when it is what holds the work back: at
// least 90% of it in use.
func (a *AIMD) Success(now time.Time, used int) bool {
	if a.limit >= float64(a.cfg.Ceiling) {
		return false
	}
	if !a.lastThrottle.IsZero() && now.Sub(a.lastThrottle) < a.cfg.Quiet {
		return false
	}
	if float64(used) < 0.9*a.limit {
		return false
	}
	a.successes++
	if a.successes < a.Limit() {
		return false
	}
	a.successes = 0
	a.limit = min(float64(a.cfg.Ceiling), float64(a.Limit()+1))
	a.Increases++
	return true
}

// String renders the state for tests and logs.
func (a *AIMD) String() string {
	return fmt.Sprintf("limit=%d decreases=%d increases=%d", a.Limit(), a.Decreases, a.Increases)
}
