package config

import (
	"math"
	"time"
)

// Platforms configures how sequoia speaks to the platform: Lambda signing,
// retries, background work and Lambda Events, overflow to a second
// platform, and the adaptive concurrency limit.
type Platforms struct {
	// LambdaRegion is the AWS region `lambda` requests are signed for;
	// empty means the standard chain's (`AWS_REGION`, the shared config).
	// Credentials always come from the standard AWS chain (environment,
	// shared files, web identity, container or instance role); start-up
	// fails naming what is missing. SEQUOIA_BACKEND_URL is the endpoint
	// (`https://lambda.{region}.amazonaws.com`).
	LambdaRegion string `env:"LAMBDA_REGION" envDefault:""`

	// RetryMaxAttempts is the number of attempts at the platform per
	// invocation, the first included; 1 never retries.
	RetryMaxAttempts int `env:"RETRY_MAX_ATTEMPTS" envDefault:"8"`
	// RetryBaseBackoff is the first wait before a retry, doubled each
	// attempt, with jitter.
	RetryBaseBackoff time.Duration `env:"RETRY_BASE_BACKOFF" envDefault:"25ms"`
	// RetryMaxBackoff is the longest wait; a platform's `Retry-After` is
	// honoured up to this, plus up to 25% jitter.
	RetryMaxBackoff time.Duration `env:"RETRY_MAX_BACKOFF" envDefault:"1s"`
	// RetryMaxElapsed is the retry budget, from arrival, of an invocation
	// whose chain has no deadline (a chain's deadline always bounds
	// retries).
	RetryMaxElapsed time.Duration `env:"RETRY_MAX_ELAPSED" envDefault:"30s"`
	// Idempotent treats every function as safe to run twice: POSTs are
	// then retried after platform 503/504s, timeouts and connection
	// failures too, not only after throttles, as if each carried an
	// `Idempotency-Key` header.
	Idempotent bool `env:"IDEMPOTENT" envDefault:"false"`

	// BackgroundEstimate is how long a 202 (an OpenWhisk non-blocking
	// call, or a blocking one whose wait ran out) occupies a worker slot.
	BackgroundEstimate time.Duration `env:"BACKGROUND_ESTIMATE" envDefault:"2s"`
	// EventMaxAge is how long sequoia keeps trying to deliver a Lambda
	// `Event` invocation it accepted.
	EventMaxAge time.Duration `env:"EVENT_MAX_AGE" envDefault:"6h"`
	// MaxEvents is the most Lambda `Event` invocations accepted and not yet
	// delivered; beyond it, Events are answered 429.
	MaxEvents int `env:"MAX_EVENTS" envDefault:"10000"`

	// OverflowURL is a second platform that receives the invocations the
	// primary cannot take: the queue is full, a chain cannot finish within
	// its deadline at the primary's effective limit, or the primary is
	// unreachable. Empty means none.
	OverflowURL string `env:"OVERFLOW_URL" envDefault:""`
	// OverflowBackend is the overflow platform's API: `openwhisk`,
	// `lambda` or `http`; empty means SEQUOIA_BACKEND's. Of the same API,
	// the client's request goes on as it is; of another, sequoia
	// translates the request (function name, JSON body, invocation type,
	// its own credentials) and writes the answer back in the primary's
	// shape.
	OverflowBackend string `env:"OVERFLOW_BACKEND" envDefault:""`
	// OverflowFunctions maps the primary's function names to the overflow
	// platform's, for names the default mapping does not carry:
	// `primary=overflow` pairs, comma-separated (e.g.
	// `guest/img/resize=img-resizer:prod`, `resize=/guest/tools/resize`).
	// Only for an overflow platform of another API.
	OverflowFunctions string `env:"OVERFLOW_FUNCTIONS" envDefault:""`
	// OverflowOpenWhiskAuth is the OpenWhisk API key (`uuid:key`) sequoia
	// invokes an OpenWhisk overflow with. Required when the primary is not
	// OpenWhisk (the client's credentials belong to the primary); with an
	// OpenWhisk primary it replaces the client's. Never printed.
	OverflowOpenWhiskAuth string `env:"OVERFLOW_OPENWHISK_AUTH" envDefault:"" secret:"true"`
	// OverflowHTTPDomain, for an `http` overflow of another API, reaches
	// each service by Host `{service}.{domain}` (Knative, e.g.
	// `default.example.com`); empty reaches it by path `/{service}`.
	OverflowHTTPDomain string `env:"OVERFLOW_HTTP_DOMAIN" envDefault:""`

	// Adaptive learns the platform's real concurrency limit under
	// SEQUOIA_MAX_CONCURRENCY (the ceiling): down on throttles and on
	// latency rising with concurrency, back up when they stop.
	Adaptive bool `env:"ADAPTIVE" envDefault:"true"`
	// AdaptiveInitial is where the limit starts: it grows by one per
	// success while in use (doubling each round trip) until the platform
	// throttles, queues, or the ceiling is reached. 0 starts at the
	// ceiling.
	AdaptiveInitial int `env:"ADAPTIVE_INITIAL" envDefault:"10"`
	// AdaptiveBackoff multiplies the limit on a concurrency throttle, at
	// most once per cooldown; every throttle also lowers it to the calls
	// in flight when it came, less one.
	AdaptiveBackoff float64 `env:"ADAPTIVE_BACKOFF" envDefault:"0.9"`
	// AdaptiveCooldown is the least time between two multiplicative
	// decreases.
	AdaptiveCooldown time.Duration `env:"ADAPTIVE_COOLDOWN" envDefault:"100ms"`
	// AdaptiveQuiet is how long without a throttle or queueing cut before
	// the limit probes back up.
	AdaptiveQuiet time.Duration `env:"ADAPTIVE_QUIET" envDefault:"1s"`
	// AdaptiveTolerance is the latency ratio (a call's round trip over
	// its function's least recent one) from which a platform whose every
	// call slows down as more are in flight is taken to be queueing them
	// (Knative's queue-proxy): the limit is cut to what it runs at once.
	// 0 turns the latency signal off.
	AdaptiveTolerance float64 `env:"ADAPTIVE_TOLERANCE" envDefault:"1.5"`
}

// check reports the values that parse but make no sense; backend is
// SEQUOIA_BACKEND.
func (p Platforms) check(backend string, bad func(name string, v any, why string)) {
	if p.OverflowURL != "" {
		checkBaseURL("OVERFLOW_URL", p.OverflowURL, bad)
	}
	p.checkOverflow(backend, bad) // overflow.go
	if p.RetryMaxAttempts < 1 {
		bad("RETRY_MAX_ATTEMPTS", p.RetryMaxAttempts, "must be at least 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RETRY_BASE_BACKOFF", p.RetryBaseBackoff}, {"RETRY_MAX_BACKOFF", p.RetryMaxBackoff},
		{"RETRY_MAX_ELAPSED", p.RetryMaxElapsed}, {"BACKGROUND_ESTIMATE", p.BackgroundEstimate},
		{"EVENT_MAX_AGE", p.EventMaxAge}, {"ADAPTIVE_COOLDOWN", p.AdaptiveCooldown}, {"ADAPTIVE_QUIET", p.AdaptiveQuiet},
	} {
		if d.v <= 0 {
			bad(d.name, d.v, "must be positive")
		}
	}
	if p.RetryMaxBackoff < p.RetryBaseBackoff {
		bad("RETRY_MAX_BACKOFF", p.RetryMaxBackoff, "must not be less than SEQUOIA_RETRY_BASE_BACKOFF")
	}
	if p.MaxEvents <= 0 {
		bad("MAX_EVENTS", p.MaxEvents, "must be positive")
	}
	if p.AdaptiveInitial < 0 {
		bad("ADAPTIVE_INITIAL", p.AdaptiveInitial, "must not be negative (0 starts at SEQUOIA_MAX_CONCURRENCY)")
	}
	if p.AdaptiveTolerance != 0 && !(p.AdaptiveTolerance > 1 && p.AdaptiveTolerance <= 100) {
		bad("ADAPTIVE_TOLERANCE", p.AdaptiveTolerance, "must be 0 (off) or above 1 and at most 100")
	}
	if !(p.AdaptiveBackoff > 0 && p.AdaptiveBackoff < 1) || math.IsNaN(p.AdaptiveBackoff) {
		bad("ADAPTIVE_BACKOFF", p.AdaptiveBackoff, "must be between 0 and 1, exclusive")
	}
	for _, c := range p.LambdaRegion {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			bad("LAMBDA_REGION", p.LambdaRegion, "not a region name (like eu-west-1)")
			break
		}
	}
}
