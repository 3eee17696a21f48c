package proxy

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/tracing"
)

// Feedback is what the proxy tells the adaptive concurrency limit
// (qos/adaptive.Limit) about each platform answer.
type Feedback interface {
	// InFlight is the platform calls in flight as the limit counts them;
	// read when a call is sent, itself included.
	InFlight() int
	// OnThrottle: a concurrency throttle, reported while the throttled
	// call's slot is still held.
	OnThrottle()
	// OnSuccess: anything else the platform ran or refused, of function
	// fn, sent at sent with inFlight in flight, answered now; sent is zero
	// when the latency is not the function's run (202s, errors).
	OnSuccess(fn string, inFlight int, sent time.Time)
	// Hold: background work accepted (202) that runs about d.
	Hold(d time.Duration)
	// Limit is the limit now, for the throttle episodes' log.
	Limit() int
}

// RatePacer spaces the invocations of tenants a platform throttled for
// their rate (qos/adaptive.Rates).
type RatePacer interface {
	OnRateThrottle(tenant string, perMinute int)
	Delay(tenant string) time.Duration
}

// RetryConfig says when and how the proxy tries an invocation again.
type RetryConfig struct {
	// MaxAttempts bounds the attempts, the first included; 1 never
	// retries; 0 means 8.
	MaxAttempts int
	// BaseBackoff is the first wait (0 means 25ms), doubled each attempt
	// up to MaxBackoff (0 means 1s), with jitter. A platform Retry-After
	// lengthens it, up to MaxBackoff.
	BaseBackoff, MaxBackoff time.Duration
	// MaxElapsed is the retry budget of an invocation with no chain
	// deadline, from its arrival; 0 means 30s.
	MaxElapsed time.Duration
	// Idempotent treats every invocation as safe to repeat, as if each
	// carried an Idempotency-Key.
	Idempotent bool
	// BackgroundEstimate is how long a 202 (work the platform runs in
	// the background) occupies a slot; 0 means 2s.
	BackgroundEstimate time.Duration
	// EventMaxAge bounds how long sequoia keeps trying to deliver a Lambda
	// Event invocation; 0 means 6h, Lambda's own maximum.
	EventMaxAge time.Duration
	// MaxEvents bounds Event invocations accepted and not yet delivered;
	// 0 means 10000. EventMaxRetries and EventRetryDelay are the retries
	// after a function error and the wait before the first (0 means 1m).
	// All three apply to the default in-process queue only: a
	// Config.Events queue has its own.
	MaxEvents       int
	EventMaxRetries int
	EventRetryDelay time.Duration
	// ReservedQuiet, when positive on a Lambda platform, learns reserved-
	// concurrency throttles as per-function caps that grow back by one
	// every ReservedQuiet without such a throttle (reserved.go).
	ReservedQuiet time.Duration
}

func (c RetryConfig) withDefaults() RetryConfig {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 25 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = time.Second
	}
	c.MaxBackoff = max(c.MaxBackoff, c.BaseBackoff)
	if c.MaxElapsed <= 0 {
		c.MaxElapsed = 30 * time.Second
	}
	if c.BackgroundEstimate <= 0 {
		c.BackgroundEstimate = 2 * time.Second
	}
	if c.EventMaxAge <= 0 {
		c.EventMaxAge = 6 * time.Hour
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 10000
	}
	if c.EventRetryDelay <= 0 {
		c.EventRetryDelay = time.Minute
	}
	return c
}

// platformState is the proxy's retry, feedback and background-delivery
// state (retry.go, events.go).
type platformState struct {
	retry     RetryConfig
	feedback  Feedback
	rates     RatePacer
	iv        qos.Invoker   // the forwarder, reporting to feedback and rates
	planned   qos.Invoker   // iv, planning the retry loop's next attempt
	reserved  *reservedCaps // Lambda's reserved concurrency; nil: not learned
	episodes  *throttleEpisodes
	attempts  *attempts
	retries   *prometheus.CounterVec
	overflows *prometheus.CounterVec
	// overflowFailures counts invocations the overflow did not run
	// (overflow.go).
	overflowFailures *prometheus.CounterVec
	events           eventState // events.go
}

func (s *platformState) init(p *Proxy) {
	s.retry = p.cfg.Retry.withDefaults()
	s.feedback, s.rates = p.cfg.Feedback, p.cfg.Rates
	if s.retry.ReservedQuiet > 0 && p.cfg.Platform == invocation.Lambda {
		s.reserved = newReservedCaps(s.retry.ReservedQuiet, nil)
	}
	var limit func() int
	if s.feedback != nil {
		limit = s.feedback.Limit
	}
	s.episodes = newThrottleEpisodes(p.log, throttleQuiet, limit) // throttles.go
	s.attempts = newAttempts()
	var fwd qos.Invoker = p.fwd
	if p.cfg.Cluster != nil {
		fwd = ticketInvoker{next: fwd} // cluster.go
	}
	s.iv = &feedbackInvoker{fwd: fwd, kind: p.cfg.Platform, fb: s.feedback, rates: s.rates,
		estimate: s.retry.BackgroundEstimate, reserved: s.reserved, episodes: s.episodes, attempts: s.attempts}
	s.planned = &plannedInvoker{iv: s.iv, kind: p.cfg.Platform, s: s}
	s.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "retries_total",
		Help: "Invocations sent to the platform again, by why: throttled_concurrency, throttled_rate, throttled_function, unavailable, unreachable, timeout (Lambda Events: sequoia_events_retried_total).",
	}, []string{"reason"})
	s.overflows = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "overflow_total",
		Help: "Invocations sent to the overflow platform (SEQUOIA_OVERFLOW_URL), by why: queue_full, deadline, unreachable.",
	}, []string{"reason"})
	s.overflowFailures = newOverflowFailures()
	s.events.init(p)
	s.precreate() // overflow.go
	if p.m != nil {
		p.m.Registry().MustRegister(s.retries, s.overflows, s.overflowFailures, s.attempts.vec)
		if s.reserved != nil {
			p.m.Registry().MustRegister(s.reserved.collector())
		}
	}
}

// feedbackInvoker forwards an invocation, counts the attempt's answer and
// reports it to the adaptive limit, the rate pacer, the learned reserved
// caps and the throttle episodes, while the slot is still held.
type feedbackInvoker struct {
	fwd      qos.Invoker
	kind     invocation.Platform
	fb       Feedback  // may be nil
	rates    RatePacer // may be nil
	estimate time.Duration
	reserved *reservedCaps // may be nil
	episodes *throttleEpisodes
	attempts *attempts
}

// plannedInvoker is the retry loop's invoker: iv's attempt, then the plan
// of its retry (planRetry), made while the slot is still held, so that the
// scheduler books the attempt as what it will be (no step of its chain
// when it is sent again). The DAG runner and the Lambda Event deliveries,
// which retry on their own terms, use iv itself.
type plannedInvoker struct {
	iv   qos.Invoker
	kind invocation.Platform
	s    *platformState
}

func (p *plannedInvoker) Invoke(inv *invocation.Invocation) error {
	err := p.iv.Invoke(inv)
	p.s.planRetry(p.kind, inv, err)
	return err
}

func (f *feedbackInvoker) Invoke(inv *invocation.Invocation) error {
	var st *reservedFn
	if f.reserved != nil && inv.Function != metrics.OtherFunction {
		st = f.reserved.state(inv.Function)
		st.inFlight.Add(1)
		defer st.inFlight.Add(-1)
	}
	var sentFlight int
	var sent time.Time
	if f.fb != nil {
		sentFlight, sent = f.fb.InFlight(), time.Now()
	}
	if err := f.fwd.Invoke(inv); err != nil {
		f.attempts.failed(err)
		return err
	}
	v, _ := platform.Classify(f.kind, inv.Resp)
	f.attempts.answered(v)
	if v.Throttled() {
		f.episodes.throttled(v)
	}
	if v == platform.ThrottledFunction && st != nil {
		f.reserved.throttled(st)
	}
	if v == platform.ThrottledRate && f.rates != nil {
		f.rates.OnRateThrottle(inv.Tenant, platform.RateAllowed(inv.Resp))
	}
	if f.fb == nil {
		return nil
	}
	switch v {
	case platform.ThrottledConcurrency:
		f.fb.OnThrottle()
	case platform.ThrottledRate, platform.ThrottledFunction, platform.Unavailable:
		// None says how many may run at once in the account.
	case platform.Accepted:
		f.fb.Hold(f.estimate)
		f.fb.OnSuccess(inv.Function, sentFlight, time.Time{})
	case platform.Done:
		// The latency of a 2xx is the function's run; a 4xx's is not.
		if c := inv.Resp.StatusCode(); c < 200 || c >= 300 {
			sent = time.Time{}
		}
		f.fb.OnSuccess(inv.Function, sentFlight, sent)
	default:
		f.fb.OnSuccess(inv.Function, sentFlight, time.Time{})
	}
	return nil
}

// relayedThrottle reports whether inv's final answer, about to go to the
// client, is a platform throttle the retries did not absorb, and counts it
// in the throttle episode.
//
// Cost: one status read; a throttle's body is scanned.
func (s *platformState) relayedThrottle(kind invocation.Platform, inv *invocation.Invocation) bool {
	if c := inv.Resp.StatusCode(); c != 429 && c != 503 {
		return false
	}
	if v, _ := platform.Classify(kind, inv.Resp); !v.Throttled() {
		return false
	}
	s.episodes.relayed()
	return true
}

var (
	headerIdempotencyKey = []byte("Idempotency-Key")
	// headerOverflow marks an answer from the overflow platform with its
	// API's name.
	headerOverflow = []byte("X-Sequoia-Overflow")
)

// idempotent reports whether inv may run twice: not a POST, a POST with an
// Idempotency-Key, configured so, or declared so by the policy's decision.
func (s *platformState) idempotent(inv *invocation.Invocation) bool {
	return s.retry.Idempotent || inv.Idempotent || !inv.Req.Header.IsPost() ||
		len(inv.Req.Header.PeekBytes(headerIdempotencyKey)) > 0
}

// retryReason says whether an attempt that ended with err (and, when nil,
// inv.Resp) is tried again, and how long to wait first. Throttles are
// always safe: the platform refused before starting. A platform 503/504,
// an unreachable platform or a timeout may have run the function, so only
// idempotent invocations retry them. Function errors never retry.
func (s *platformState) retryReason(kind invocation.Platform, inv *invocation.Invocation, err error) (reason string, hint time.Duration) {
	switch {
	case err == nil:
		v, ra := platform.Classify(kind, inv.Resp)
		switch {
		case v.Throttled():
			return v.String(), ra
		case v == platform.Unavailable && s.idempotent(inv):
			return v.String(), ra
		}
		return "", 0
	case errors.Is(err, platform.ErrUnreachable) && s.idempotent(inv):
		return "unreachable", 0
	case errors.Is(err, platform.ErrTimeout) && s.idempotent(inv):
		return "timeout", 0
	}
	return "", 0
}

// backoff is the wait before attempt n+1 (n >= 0): exponential from
// BaseBackoff, capped at MaxBackoff, jittered to [d/2, d]. A platform
// Retry-After (capped at MaxBackoff) replaces it when longer, jittered
// upwards by up to a quarter: every call the platform throttled at once
// gets the same whole-second hint, and retrying them all together would
// only make the next wave of throttles.
func (s *platformState) backoff(n int, hint time.Duration) time.Duration {
	d := s.retry.BaseBackoff << min(n, 20)
	if d <= 0 || d > s.retry.MaxBackoff {
		d = s.retry.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	if hint = min(hint, s.retry.MaxBackoff); hint > d {
		d = hint + rand.N(hint/4+1)
	}
	return d
}

// invoke runs inv at the platform (invokeRetrying) and, when that could
// not be done and a second platform is configured, sends it there instead:
// when the scheduler refused it (the queue is full, or its chain could not
// finish in time at the primary's effective limit) or the primary could not
// be reached. The overflow platform's own limits are its own: the
// invocation takes no slot there. An overflow platform of another API is
// an platform.Translator; when it cannot help, overflowFailed says why in
// the answer (overflow.go).
func (p *Proxy) invoke(inv *invocation.Invocation, w qos.Watcher, span *tracing.Invocation) (time.Duration, error) {
	waited, err := p.invokeRetrying(inv, w, span)
	if p.cfg.Overflow == nil || err == nil {
		return waited, err
	}
	var reason string
	switch {
	case errors.Is(err, qos.ErrQueueFull):
		reason = "queue_full"
	case errors.Is(err, qos.ErrRefused):
		reason = "deadline"
	case errors.Is(err, platform.ErrUnreachable):
		reason = "unreachable"
	default:
		return waited, err
	}
	if oerr := p.sendOverflow(inv, reason); oerr != nil { // overflow.go
		return waited, p.overflowFailed(err, oerr)
	}
	if len(inv.Resp.Header.PeekBytes(headerOverflow)) == 0 {
		// A same-API overflow's answer passes as it is; say where it ran.
		inv.Resp.Header.SetBytesKV(headerOverflow, []byte(p.cfg.Platform.String()))
	}
	return waited, nil
}

// invokeRetrying runs inv through the scheduler and, while the platform throttles
// or (for idempotent invocations) is unavailable, again after a backoff:
// each retry goes back through the queues and waits for a slot like any
// other invocation, and none waits past the invocation's deadline (its
// chain's, else its arrival plus MaxElapsed).
func (p *Proxy) invokeRetrying(inv *invocation.Invocation, w qos.Watcher, span *tracing.Invocation) (time.Duration, error) {
	s := &p.plat
	var waited time.Duration
	policyCap := inv.FunctionCap
	for {
		if s.reserved != nil {
			inv.FunctionCap = effectiveCap(policyCap, s.reserved.capOf(inv.Function))
		}
		if s.rates != nil {
			// A tenant the platform throttled for its rate waits its
			// turn before taking a slot, unless that would break its
			// deadline (then the platform answers).
			if d := s.rates.Delay(inv.Tenant); d > 0 && !s.pastDeadline(inv, d) {
				if !pause(d, w) {
					p.giveUp(inv, qos.ErrClientGone) // a retry, if one was planned
					return waited, qos.ErrClientGone
				}
				waited += d
			}
		}
		var start time.Time
		if span != nil {
			start = time.Now()
		}
		wt, err := p.sched.Do(inv, w, s.planned)
		waited += wt
		if span != nil {
			span.Attempt(inv, start, wt, time.Now(), inv.Resp.StatusCode(), err)
		}
		delay, reason := inv.RetryIn, inv.RetryReason
		if delay <= 0 {
			return waited, err // planRetry made it final
		}
		span.Retry(reason, delay)
		if !pause(delay, w) {
			p.giveUp(inv, qos.ErrClientGone)
			return waited, qos.ErrClientGone
		}
		s.retries.WithLabelValues(reason).Inc()
		inv.Attempt++
		if err != nil {
			inv.Resp.Reset()
		}
	}
}

// planRetry decides, when an attempt of inv ends with err (and, when nil,
// inv.Resp), whether it is sent again and after how long (inv.RetryIn,
// inv.RetryReason; zero: the answer is final): while attempts are left,
// retryReason allows it and the wait ends before inv's deadline.
func (s *platformState) planRetry(kind invocation.Platform, inv *invocation.Invocation, err error) {
	inv.RetryIn, inv.RetryReason = 0, ""
	if inv.Attempt+1 >= s.retry.MaxAttempts {
		return
	}
	reason, hint := s.retryReason(kind, inv, err)
	if reason == "" {
		return
	}
	if delay := s.backoff(inv.Attempt, hint); !s.pastDeadline(inv, delay) {
		inv.RetryIn, inv.RetryReason = delay, reason
	}
}

// giveUp tells the scheduler that the retry inv's last attempt planned
// will not be made, because of err.
func (p *Proxy) giveUp(inv *invocation.Invocation, err error) {
	if g, ok := p.sched.(interface {
		GiveUp(*invocation.Invocation, error)
	}); ok {
		g.GiveUp(inv, err)
	}
	inv.RetryIn, inv.RetryReason = 0, ""
}

// pastDeadline reports whether waiting d from now ends past inv's
// deadline: its chain's, else its arrival plus MaxElapsed.
func (s *platformState) pastDeadline(inv *invocation.Invocation, d time.Duration) bool {
	deadline := inv.Deadline
	if deadline.IsZero() {
		deadline = inv.Arrival.Add(s.retry.MaxElapsed)
	}
	return time.Now().Add(d).After(deadline)
}

// pause waits d, or until the client goes away (false).
func pause(d time.Duration, w qos.Watcher) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var gone <-chan struct{}
	if w != nil {
		gone = w.WatchGone()
		defer w.StopWatch()
	}
	select {
	case <-t.C:
		return true
	case <-gone:
		return false
	}
}

// errBadInvocationType answers an unknown X-Amz-Invocation-Type, as Lambda
// does, with InvalidParameterValueException.
var errBadInvocationType = render(&apiError{fasthttp.StatusBadRequest, "bad_invocation_type",
	"sequoia: X-Amz-Invocation-Type must be RequestResponse, Event or DryRun", 0})
