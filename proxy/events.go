package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

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
//   - Event: answered 202 at once; from then on sequoia owns the delivery,
//     as Lambda's own asynchronous queue would: the invocation waits in the
//     batch class, runs synchronously at the platform (so it holds its
//     slot for as long as the function runs, which an Event forwarded as
//     such would not), and is retried on throttles and platform errors
//     until SEQUOIA_EVENT_MAX_AGE. A function error is not retried.
//   - anything else: 400 InvalidParameterValueException, as Lambda answers.

var (
	headerInvocationType = []byte("X-Amz-Invocation-Type")
	requestResponse      = []byte("RequestResponse")
)

// lambdaShortcut handles the invocation types that do not take the
// synchronous path, and reports whether it answered the request.
func (p *Proxy) lambdaShortcut(ctx *fasthttp.RequestCtx, inv *invocation.Invocation) bool {
	if p.cfg.Platform != invocation.Lambda {
		return false
	}
	switch t := ctx.Request.Header.PeekBytes(headerInvocationType); string(t) {
	case "", "RequestResponse":
		return false
	case "DryRun":
		p.control(ctx)
	case "Event":
		p.plat.events.accept(ctx, inv)
	default:
		p.reject(ctx, metrics.BadRequest, errBadInvocationType)
	}
	ctx.Response.Header.Set("X-Sequoia-Chain-Id", inv.Chain)
	return true
}

// event is one Event invocation sequoia delivers.
type event struct {
	inv  invocation.Invocation
	req  fasthttp.Request
	resp fasthttp.Response
}

// events delivers Lambda Event invocations in the background.
type events struct {
	p       *Proxy
	pending atomic.Int64
	wg      sync.WaitGroup
	pool    sync.Pool
	outcome *prometheus.CounterVec
}

func (e *events) init(p *Proxy) {
	e.p = p
	e.pool.New = func() any { return new(event) }
	e.outcome = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "events_total",
		Help: "Lambda Event invocations by outcome: accepted, refused (too many pending), delivered, function_error, expired (past SEQUOIA_EVENT_MAX_AGE), failed.",
	}, []string{"outcome"})
}

func (e *events) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.outcome, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Name: "events_pending",
		Help: "Lambda Event invocations accepted and not yet delivered.",
	}, func() float64 { return float64(e.pending.Load()) })}
}

// Pending returns the Event invocations accepted and not yet delivered.
func (p *Proxy) PendingEvents() int { return int(p.plat.events.pending.Load()) }

// WaitEvents waits until every accepted Event invocation is delivered or
// given up, or until done closes.
func (p *Proxy) WaitEvents(done <-chan struct{}) bool {
	all := make(chan struct{})
	go func() { p.plat.events.wg.Wait(); close(all) }()
	select {
	case <-all:
		return true
	case <-done:
		return false
	}
}

// accept answers 202 and starts the delivery of a copy of the request.
func (e *events) accept(ctx *fasthttp.RequestCtx, inv *invocation.Invocation) {
	s := &e.p.plat
	if e.pending.Add(1) > int64(s.retry.MaxEvents) {
		e.pending.Add(-1)
		e.outcome.WithLabelValues("refused").Inc()
		e.p.writeError(ctx, errQueueFull)
		return
	}
	ev := e.pool.Get().(*event)
	ctx.Request.CopyTo(&ev.req)
	ev.req.Header.SetBytesKV(headerInvocationType, requestResponse)
	ev.inv = *inv
	ev.inv.Class = qos.Batch
	ev.inv.Req, ev.inv.Resp = &ev.req, &ev.resp
	e.outcome.WithLabelValues("accepted").Inc()
	e.wg.Add(1)
	go e.deliver(ev)

	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusAccepted)
}

// deliver runs ev until it is done, fails for good or expires.
func (e *events) deliver(ev *event) {
	defer func() {
		ev.req.Reset()
		ev.resp.Reset()
		ev.inv = invocation.Invocation{}
		e.pool.Put(ev)
		e.pending.Add(-1)
		e.wg.Done()
	}()
	s := &e.p.plat
	expires := ev.inv.Arrival.Add(s.retry.EventMaxAge)
	policyCap := ev.inv.FunctionCap
	for {
		if s.reserved != nil {
			// Held to the learned reserved concurrency, as a call is.
			ev.inv.FunctionCap = effectiveCap(policyCap, s.reserved.capOf(ev.inv.Function))
		}
		start, obs := time.Now(), e.p.cfg.Observer // the warm pool sees Events too
		if obs != nil {
			obs.Arrived(&ev.inv)
		}
		waited, err := e.p.sched.Do(&ev.inv, nil, s.iv)
		if obs != nil {
			obs.Finished(&ev.inv, time.Since(start)-waited, err)
		}
		reason, hint := s.retryReason(e.p.cfg.Platform, &ev.inv, err, true)
		var refused *qos.RefusedError
		switch {
		case reason != "":
		case errors.As(err, &refused):
			reason, hint = "refused", refused.RetryAfter
		case errors.Is(err, qos.ErrQueueFull), errors.Is(err, qos.ErrQueueTimeout), errors.Is(err, qos.ErrDeadline):
			reason = "queued"
		case err != nil:
			e.outcome.WithLabelValues("failed").Inc()
			e.p.log.Warn("event invocation failed", "function", ev.inv.Function, "err", err)
			return
		default:
			e.delivered(&ev.resp)
			return
		}
		if e.p.overflowEvent(ev, reason) { // overflow.go
			return
		}
		delay := s.backoff(ev.inv.Attempt, hint)
		if time.Now().Add(delay).After(expires) {
			e.outcome.WithLabelValues("expired").Inc()
			e.p.log.Warn("event invocation expired", "function", ev.inv.Function, "attempts", ev.inv.Attempt+1)
			return
		}
		time.Sleep(delay)
		s.retries.WithLabelValues(reason).Inc()
		ev.inv.Attempt++
		// A new attempt is a new step for admission; the chain's
		// deadline no longer binds work sequoia has already accepted.
		ev.inv.Deadline = time.Time{}
	}
}

// delivered counts an Event the platform (or the overflow platform) ran:
// delivered, or function_error when the function failed.
func (e *events) delivered(resp *fasthttp.Response) {
	if v, _ := platform.Classify(e.p.cfg.Platform, resp); v == platform.FunctionError {
		e.outcome.WithLabelValues("function_error").Inc()
	} else {
		e.outcome.WithLabelValues("delivered").Inc()
	}
}
