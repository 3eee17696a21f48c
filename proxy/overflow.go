package proxy

import (
	"errors"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// Overflow to a platform of another API (platform.Translator) can fail in
// ways the same-kind overflow cannot: the invocation cannot be expressed in
// the other API (a name the default mapping cannot carry, a web action, a
// body that is not JSON), or the other platform refuses it. The client then
// gets the answer the primary's refusal would have given (429 with
// Retry-After for a full queue or a chain that cannot finish in time, 502
// for an unreachable primary), in the primary's shape, with a message that
// says why overflow did not help; nothing ran, so nothing is lost by
// trying again. A refusal of the overflow platform other than a throttle
// (bad credentials, an unknown function) is sequoia's configuration at
// fault, not the client's: 502 overflow_failed, naming what the platform
// said.

// overflowReasons and overflowFailures are the label values of
// sequoia_overflow_total and sequoia_overflow_failures_total.
var (
	overflowReasons  = [...]string{"queue_full", "deadline", "unreachable"}
	overflowFailures = [...]string{"untranslatable", "throttled", "refused", "unreachable"}
)

func newOverflowFailures() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "overflow_failures_total",
		Help: "Invocations the overflow platform did not run, by why: untranslatable (no equivalent in its API, e.g. an unmapped name), throttled, refused (any other error answer), unreachable.",
	}, []string{"why"})
}

// overflowAnswer is an answer sequoia gives itself when overflow did not
// help; serve writes it in the platform's shape.
type overflowAnswer struct {
	e       *apiError
	outcome metrics.Outcome
	cause   error
}

func (a *overflowAnswer) Error() string { return a.e.message }
func (a *overflowAnswer) Unwrap() error { return a.cause }

// asOverflowAnswer returns err's overflowAnswer, or nil. A nil err
// returns before a is declared: errors.As makes a escape, so declaring it
// first cost every successful request an allocation.
func asOverflowAnswer(err error) *overflowAnswer {
	if err == nil {
		return nil
	}
	var a *overflowAnswer
	if !errors.As(err, &a) {
		return nil
	}
	return a
}

// overflowFailed turns err, the overflow's failure after the primary's
// refusal primary, into the answer the client gets. Errors of the
// overflow's transport are returned as they are: serve answers them as it
// answers the primary's.
func (p *Proxy) overflowFailed(primary, err error) error {
	base, outcome := errQueueFull, metrics.QueueFull
	retryAfter := base.retryAfter
	switch {
	case errors.Is(primary, qos.ErrRefused):
		base, outcome = errChainRefused, metrics.ChainRefused
		retryAfter = qos.RetryAfterSeconds(primary)
		if nf := neverFits(primary, "chain"); nf != nil {
			base, retryAfter = nf, 0
		}
	case errors.Is(primary, platform.ErrUnreachable):
		base, outcome = errUpstreamUnreachable, metrics.UpstreamError
		retryAfter = 0
	}
	e := &apiError{status: base.status, code: base.code, retryAfter: retryAfter}
	why, untranslatable, refused := p.overflowFailure(err)
	switch why {
	case "untranslatable":
		e.message = base.message + "; it cannot overflow to the " + untranslatable.To.String() + " platform: " + untranslatable.Why
		p.log.Warn("overflow not possible", "err", err)
	case "throttled":
		e.message = base.message + "; the overflow platform (" + refused.To.String() + ") is throttling too"
		if s := int(math.Ceil(refused.RetryAfter.Seconds())); s > e.retryAfter {
			e.retryAfter = s
		}
	case "refused":
		e = &apiError{status: fasthttp.StatusBadGateway, code: "overflow_failed",
			message: "sequoia: the primary could not take the invocation, and " + refused.Error()}
		outcome = metrics.UpstreamError
		p.log.Warn("overflow platform refused", "err", err)
	default:
		return err
	}
	return &overflowAnswer{e: e, outcome: outcome, cause: err}
}

// overflowFailure counts err, the overflow's failure, under why it did not
// run (a label of sequoia_overflow_failures_total), and returns why with
// err's upstream error when it has one.
func (p *Proxy) overflowFailure(err error) (why string, untranslatable *platform.UntranslatableError, refused *platform.OverflowError) {
	switch {
	case errors.As(err, &untranslatable):
		why = "untranslatable"
	case errors.As(err, &refused) && refused.Verdict.Throttled():
		why = "throttled"
	case refused != nil:
		why = "refused"
	default:
		why = "unreachable"
	}
	p.plat.overflowFailures.WithLabelValues(why).Inc()
	return why, untranslatable, refused
}

// sendOverflow sends inv, which the primary could not take for reason (a
// label of sequoia_overflow_total), to the overflow platform.
func (p *Proxy) sendOverflow(inv *invocation.Invocation, reason string) error {
	p.plat.overflows.WithLabelValues(reason).Inc()
	if reason == "unreachable" {
		inv.Attempt++ // the request was prepared for the primary
	}
	inv.Resp.Reset()
	return p.cfg.Overflow.Invoke(inv)
}

// overflowEvent sends a Lambda Event's attempt the primary cannot take now
// (its queue is full, the work admitted ahead cannot finish in time, or it
// is unreachable; reason is Deliver's) to the overflow platform, and
// reports whether it answered (inv.Resp). When the overflow cannot take it
// either, the event goes back to the store for another attempt at the
// primary. ev hears that the attempt goes out (events.Event.Sending).
func (p *Proxy) overflowEvent(inv *invocation.Invocation, reason string, ev *events.Event) bool {
	if p.cfg.Overflow == nil {
		return false
	}
	var why string
	switch reason {
	case "queued":
		why = "queue_full"
	case "refused":
		why = "deadline"
	case "unreachable":
		why = "unreachable"
	default:
		return false
	}
	attempt := inv.Attempt
	ev.Sending()
	err := p.sendOverflow(inv, why)
	inv.Attempt = attempt
	if err != nil {
		p.overflowFailure(err)
		p.log.Warn("event invocation could not overflow", "function", inv.Function, "err", err)
		inv.Resp.Reset()
		return false
	}
	return true
}

// precreate binds the label values known at start-up, so that every
// series exists, at zero, from the first scrape (a dashboard or an alert
// on rate() sees no gap before the first retry, overflow or event).
func (s *platformState) precreate() {
	for _, r := range [...]string{
		platform.ThrottledConcurrency.String(), platform.ThrottledRate.String(), platform.ThrottledFunction.String(),
		platform.Unavailable.String(), "unreachable", "timeout",
	} {
		s.retries.WithLabelValues(r)
	}
	for _, r := range overflowReasons {
		s.overflows.WithLabelValues(r)
	}
	for _, r := range overflowFailures {
		s.overflowFailures.WithLabelValues(r)
	}
}
