package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"sync"
	"time"

	"github.com/valyala/bytebufferpool"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// Lambda's X-Amz-Invocation-Type decides what sequoia does with an invoke:
//
//   - RequestResponse (or none): queued and forwarded; the answer returns.
//   - DryRun: Lambda only checks the call, runs nothing: forwarded at once
//     like a control call.
//   - Event: stored (Config.Events: the durable store under serve), then
//     answered 202; from then on sequoia owns the delivery, as Lambda's own
//     asynchronous queue would. Package events pulls it back and calls
//     Deliver for each attempt: the invocation waits in the batch class,
//     runs synchronously at the platform (so it holds its slot for as long
//     as the function runs, which an Event forwarded as such would not),
//     and is retried on throttles and platform errors until
//     SEQUOIA_EVENT_MAX_AGE, and up to SEQUOIA_EVENT_MAX_RETRIES times
//     after function errors.
//   - anything else: 400 InvalidParameterValueException, as Lambda answers.

// EventQueue is where the proxy puts the Event invocations it answers 202
// for: *events.Store (durable), or *events.Memory.
type EventQueue interface {
	Accept(ev *events.Event) (duplicate bool, err error)
}

var (
	headerInvocationType = []byte("X-Amz-Invocation-Type")
	requestResponse      = []byte("RequestResponse")
	// headerSDKInvocationID is the id the AWS SDKs give one call and keep
	// across its retries.
	headerSDKInvocationID = []byte("Amz-Sdk-Invocation-Id")
)

var (
	errEventsFull = render(&apiError{fasthttp.StatusTooManyRequests, "events_full",
		"sequoia: too many Event invocations wait for delivery (SEQUOIA_MAX_EVENTS, SEQUOIA_EVENT_MAX_BYTES), retry later", 1})
	errEventTooLarge = render(&apiError{fasthttp.StatusRequestEntityTooLarge, "event_too_large",
		"sequoia: the Event invocation is larger than the event store takes (NATS max_payload)", 0})
	errEventsUnavailable = render(&apiError{fasthttp.StatusServiceUnavailable, "events_unavailable",
		"sequoia: the event store did not confirm the Event invocation; retry with the same request (it is not enqueued twice)", 1})
)

// lambdaShortcut handles the invocation types that do not take the
// synchronous path, and reports whether it answered the request. function
// is the name in the request.
func (p *Proxy) lambdaShortcut(ctx *fasthttp.RequestCtx, inv *invocation.Invocation, function []byte) bool {
	if p.cfg.Platform != invocation.Lambda {
		return false
	}
	switch t := ctx.Request.Header.PeekBytes(headerInvocationType); string(t) {
	case "", "RequestResponse":
		return false
	case "DryRun":
		p.control(ctx)
	case "Event":
		p.acceptEvent(ctx, inv, function)
	default:
		p.reject(ctx, metrics.BadRequest, errBadInvocationType)
	}
	ctx.Response.Header.Set("X-Sequoia-Chain-Id", inv.Chain)
	return true
}

// eventState is the proxy's side of Event invocations: the queue and the
// pooled buffers of deliveries.
type eventState struct {
	q      EventQueue
	memory *events.Memory // the default queue, when Config.Events is nil
	pool   sync.Pool      // *delivery
}

// delivery is one attempt's request, response and invocation.
type delivery struct {
	inv  invocation.Invocation
	req  fasthttp.Request
	resp fasthttp.Response
	rd   bytes.Reader
	br   *bufio.Reader
	send sendingInvoker
}

// sendingInvoker tells the event store that an attempt is about to reach
// the platform (events.Event.Sending), then sends it.
type sendingInvoker struct {
	iv qos.Invoker
	ev *events.Event
}

func (s *sendingInvoker) Invoke(inv *invocation.Invocation) error {
	s.ev.Sending()
	return s.iv.Invoke(inv)
}

func (e *eventState) init(p *Proxy) {
	e.pool.New = func() any {
		d := new(delivery)
		d.br = bufio.NewReaderSize(&d.rd, 4096)
		return d
	}
	e.q = p.cfg.Events
	if e.q == nil {
		r := p.plat.retry
		var m *events.Metrics
		if p.m != nil {
			m = events.NewMetrics(p.m.Registry())
		}
		e.memory = events.NewMemory(events.Config{MaxEvents: r.MaxEvents, MaxAge: r.EventMaxAge,
			MaxRetries: r.EventMaxRetries, RetryDelay: r.EventRetryDelay}, m, p)
		e.q = e.memory
	}
}

// MemoryEvents returns the in-process queue the proxy uses when it was
// given no Config.Events, nil otherwise.
func (p *Proxy) MemoryEvents() *events.Memory { return p.plat.events.memory }

// acceptEvent stores the request as an event and answers 202; or 429 when
// too many wait, 413 when too large, 503 when the store did not answer.
func (p *Proxy) acceptEvent(ctx *fasthttp.RequestCtx, inv *invocation.Invocation, function []byte) {
	req := &ctx.Request
	key := req.Header.PeekBytes(headerIdempotencyKey)
	if len(key) == 0 {
		key = req.Header.PeekBytes(headerSDKInvocationID)
	}
	// Delivered as a synchronous call: the attempt's answer says whether
	// the function ran.
	req.Header.SetBytesKV(headerInvocationType, requestResponse)
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if _, err := req.WriteTo(buf); err != nil {
		p.reject(ctx, metrics.BadRequest, &apiError{fasthttp.StatusBadRequest, "bad_request", "sequoia: " + err.Error(), 0})
		return
	}
	ev := events.Event{Function: string(function), Qualifier: inv.Qualifier, Tenant: inv.Tenant, Chain: inv.Chain,
		Priority: inv.Priority, FunctionCap: inv.FunctionCap, Idempotent: inv.Idempotent,
		Arrival: inv.Arrival, Key: string(key), Request: buf.B}
	_, err := p.plat.events.q.Accept(&ev)
	switch {
	case errors.Is(err, events.ErrFull):
		p.writeError(ctx, errEventsFull)
		return
	case errors.Is(err, events.ErrTooLarge):
		p.writeError(ctx, errEventTooLarge)
		return
	case err != nil:
		p.writeError(ctx, errEventsUnavailable)
		return
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusAccepted)
}

// Deliver makes one attempt at an event (events.Deliverer): through the
// scheduler in the batch class, held to the learned reserved concurrency
// as a call is, seen by the warm pool, sent to the overflow platform when
// the primary cannot take it now. It calls ev.Sending just before the
// request goes to a platform.
func (p *Proxy) Deliver(ev *events.Event, stop <-chan struct{}) events.Result {
	s := &p.plat
	d := s.events.pool.Get().(*delivery)
	defer func() {
		d.req.Reset()
		d.resp.Reset()
		d.inv = invocation.Invocation{}
		d.send = sendingInvoker{}
		s.events.pool.Put(d)
	}()
	d.rd.Reset(ev.Request)
	d.br.Reset(&d.rd)
	if err := d.req.Read(d.br); err != nil {
		return events.Result{Verdict: events.Rejected, Error: "sequoia: the stored request cannot be read: " + err.Error()}
	}
	inv := &d.inv
	*inv = invocation.Invocation{
		Function:    p.m.FunctionNamed(ev.Function).Name,
		Qualifier:   internQualifier([]byte(ev.Qualifier)),
		Platform:    p.cfg.Platform,
		Arrival:     time.Now(),
		Class:       qos.Batch,
		Priority:    ev.Priority,
		FunctionCap: ev.FunctionCap,
		Idempotent:  ev.Idempotent,
		Attempt:     ev.Delivery - 1,
		Req:         &d.req,
		Resp:        &d.resp,
	}
	if ev.Tenant != "" {
		inv.Tenant = p.tenants.Get([]byte(ev.Tenant))
	}
	if s.reserved != nil {
		inv.FunctionCap = effectiveCap(ev.FunctionCap, s.reserved.capOf(inv.Function))
	}
	start, obs := time.Now(), p.cfg.Observer // the warm pool sees Events too
	if obs != nil {
		obs.Arrived(inv)
	}
	d.send = sendingInvoker{iv: s.iv, ev: ev}
	waited, err := p.sched.Do(inv, stopWatcher(stop), &d.send)
	if obs != nil {
		obs.Finished(inv, time.Since(start)-waited, err)
	}
	var reason string
	var hint time.Duration
	var refused *qos.RefusedError
	switch {
	case err == nil:
		return p.eventAnswer(&d.resp, inv)
	case errors.Is(err, qos.ErrClientGone):
		return events.Result{Verdict: events.Stopped}
	case errors.As(err, &refused):
		reason, hint = "refused", refused.RetryAfter
	case errors.Is(err, qos.ErrQueueFull), errors.Is(err, qos.ErrQueueTimeout), errors.Is(err, qos.ErrDeadline):
		reason = "queued"
	case errors.Is(err, platform.ErrTimeout) && !s.idempotent(inv):
		// It may have run: a failure of the function, as Lambda counts
		// a timeout, retried as one.
		return events.Result{Verdict: events.FunctionError, Error: "sequoia: the platform did not answer within SEQUOIA_BACKEND_TIMEOUT"}
	case errors.Is(err, platform.ErrTimeout):
		reason = "timeout"
	default:
		reason = "unreachable"
	}
	if p.overflowEvent(inv, reason, ev) { // overflow.go
		return p.eventAnswer(&d.resp, inv)
	}
	return events.Result{Verdict: events.Retry, Reason: reason, Delay: s.backoff(inv.Attempt, hint), Error: err.Error()}
}

// eventAnswer reads the platform's answer to an event's attempt.
func (p *Proxy) eventAnswer(resp *fasthttp.Response, inv *invocation.Invocation) events.Result {
	status := resp.StatusCode()
	res := events.Result{Status: status}
	v, hint := platform.Classify(p.cfg.Platform, resp)
	switch {
	case v.Throttled() || v == platform.Unavailable:
		// Refused before it ran (or a 503/504, which Lambda retries
		// for its asynchronous invocations too).
		res.Verdict, res.Reason, res.Delay = events.Retry, v.String(), p.plat.backoff(inv.Attempt, hint)
		res.Error = string(resp.Body())
	case v == platform.FunctionError:
		res.Verdict, res.Error = events.FunctionError, string(resp.Body())
		res.FunctionError = string(resp.Header.Peek("X-Amz-Function-Error"))
	case status < 300:
		res.Verdict = events.Delivered
	case status >= 500:
		// The platform's own failure (Lambda's ServiceException):
		// retried with backoff, as Lambda retries its own errors.
		res.Verdict, res.Reason, res.Delay = events.Retry, "unavailable", p.plat.backoff(inv.Attempt, 0)
		res.Error = string(resp.Body())
	default:
		// Refused for the event's own fault (an unknown function, bad
		// credentials, too large): trying again would not help.
		res.Verdict, res.Error = events.Rejected, string(resp.Body())
	}
	return res
}

// stopWatcher is a qos.Watcher over a channel: an event waiting for a slot
// leaves its queue when sequoia stops delivering.
type stopWatcher <-chan struct{}

func (w stopWatcher) WatchGone() <-chan struct{} { return w }
func (w stopWatcher) StopWatch()                 {}
