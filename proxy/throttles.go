package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
)

// throttleQuiet is how long without a platform throttle ends an episode.
const throttleQuiet = 2 * time.Second

// throttleEpisodes logs the platform's throttles once per episode, not
// once per throttle: an episode starts with a throttle and ends after
// quiet without one; its line says how many throttles of each kind came,
// how many reached clients (the retries did not absorb them), and where
// the adaptive limit went.
//
// Cost: nothing while the platform does not throttle; a short lock per
// throttle.
type throttleEpisodes struct {
	log   *slog.Logger
	quiet time.Duration
	limit func() int // the adaptive limit; nil: none
	now   func() time.Time

	mu       sync.Mutex
	open     bool      // REQUIRES mu
	start    time.Time // REQUIRES mu
	last     time.Time // REQUIRES mu
	counts   episodeCounts
	fromLim  int // REQUIRES mu; the limit when it started
	minLim   int // REQUIRES mu; the least limit seen during it
	timer    *time.Timer
	episodes int // REQUIRES mu; how many were logged
}

// episodeCounts are one episode's counts.
type episodeCounts struct {
	Concurrency, Rate, Function int64 // throttles by kind
	Relayed                     int64 // throttles that reached clients
}

func newThrottleEpisodes(log *slog.Logger, quiet time.Duration, limit func() int) *throttleEpisodes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &throttleEpisodes{log: log, quiet: quiet, limit: limit, now: time.Now}
}

// throttled counts one throttled attempt of kind v.
func (e *throttleEpisodes) throttled(v platform.Verdict) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.touchLocked()
	switch v {
	case platform.ThrottledConcurrency:
		e.counts.Concurrency++
	case platform.ThrottledRate:
		e.counts.Rate++
	case platform.ThrottledFunction:
		e.counts.Function++
	}
}

// relayed counts one throttle answered to the client as it was.
func (e *throttleEpisodes) relayed() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.touchLocked()
	e.counts.Relayed++
}

// touchLocked opens an episode if none is open and notes the throttle's
// time and the limit.
//
// REQUIRES: e.mu held.
func (e *throttleEpisodes) touchLocked() {
	now := e.now()
	lim := 0
	if e.limit != nil {
		lim = e.limit()
	}
	e.last = now
	if !e.open {
		e.open, e.start, e.counts = true, now, episodeCounts{}
		e.fromLim, e.minLim = lim, lim
		e.timer = time.AfterFunc(e.quiet, e.check)
		return
	}
	e.minLim = min(e.minLim, lim)
}

// check ends the episode if it has been quiet long enough, else looks
// again when it would have.
func (e *throttleEpisodes) check() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.open {
		return
	}
	if left := e.quiet - e.now().Sub(e.last); left > 0 {
		e.timer.Reset(left)
		return
	}
	e.endLocked()
}

// endLocked logs the open episode and closes it.
//
// REQUIRES: e.mu held, an episode open.
func (e *throttleEpisodes) endLocked() {
	e.open = false
	e.episodes++
	c := e.counts
	args := []any{"concurrency", c.Concurrency, "rate", c.Rate, "function", c.Function,
		"relayed_to_clients", c.Relayed, "lasted", e.last.Sub(e.start).Round(time.Millisecond)}
	if e.limit != nil {
		args = append(args, "limit_before", e.fromLim, "limit_least", e.minLim, "limit_now", e.limit())
	}
	level := slog.LevelInfo
	if c.Relayed > 0 {
		level = slog.LevelWarn
	}
	e.log.Log(context.Background(), level, "platform throttle episode ended", args...)
}

// flush ends an open episode now (Shutdown), so its counts are logged.
func (e *throttleEpisodes) flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.open {
		e.timer.Stop()
		e.endLocked()
	}
}

// attempts counts every platform attempt by its result
// (sequoia_platform_attempts_total): unlike sequoia_platform_responses_total,
// which counts the answer each client got, it counts the retried ones too.
type attempts struct {
	vec     *prometheus.CounterVec
	verdict [numVerdicts]prometheus.Counter
	unreach prometheus.Counter
	timeout prometheus.Counter
	other   prometheus.Counter
}

// numVerdicts bounds platform.Verdict's values.
const numVerdicts = int(platform.ThrottledFunction) + 1

func newAttempts() *attempts {
	a := &attempts{vec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "platform_attempts_total",
		Help: "Every call sequoia made to the platform, retries included, by result: done, function_error, throttled_concurrency, throttled_rate, throttled_function, unavailable, accepted, unreachable, timeout, error (no answer for another reason). sequoia_platform_responses_total counts only the answer each client got.",
	}, []string{"result"})}
	for v := range numVerdicts {
		a.verdict[v] = a.vec.WithLabelValues(platform.Verdict(v).String())
	}
	a.unreach = a.vec.WithLabelValues("unreachable")
	a.timeout = a.vec.WithLabelValues("timeout")
	a.other = a.vec.WithLabelValues("error")
	return a
}

func (a *attempts) answered(v platform.Verdict) {
	if int(v) < numVerdicts {
		a.verdict[v].Inc()
	}
}

func (a *attempts) failed(err error) {
	switch {
	case errors.Is(err, platform.ErrTimeout):
		a.timeout.Inc()
	case errors.Is(err, platform.ErrUnreachable):
		a.unreach.Inc()
	default:
		a.other.Inc()
	}
}
