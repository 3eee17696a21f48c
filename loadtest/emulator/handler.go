package emulator

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"
)

// Headers the emulator reads or writes.
const (
	HeaderChainID   = "X-Sequoia-Chain-Id"    // echoed back, and reported as chain_id
	HeaderWarmup    = "X-Sequoia-Warmup"      // "1" or "true" marks a warm-up
	HeaderColdStart = "X-Emulator-Cold-Start" // "1" when the invocation paid a cold start
)

// call is one invocation request as read from the wire. Its slices alias
// the request, so it must not outlive the handler.
type call struct {
	route
	payload
	blocking   bool   // the client waits for the result
	resultOnly bool   // OpenWhisk result=true: answer the result alone
	warmup     bool   // header or payload marks a warm-up
	chain      []byte // X-Sequoia-Chain-Id
	qualifier  []byte // Lambda ?Qualifier=
}

// handle is the request path: parse the shape, check the rate and the
// concurrency limit, then run the invocation inline (blocking) or in the
// background and answer in the shape's format.
func (e *Emulator) handle(ctx *fasthttp.RequestCtx) {
	r := parseRoute(ctx.Path(), ctx.Host())
	switch r.shape {
	case shapeAdmin:
		e.serveAdmin(ctx, r.name)
		return
	case shapeNone:
		writeError(ctx, fasthttp.StatusNotFound, "The requested resource does not exist.", r.isOpenWhisk())
		return
	}

	c := call{route: r, blocking: true}
	switch r.shape {
	case shapeOpenWhisk:
		if !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "The request method is not allowed.", true)
			return
		}
		args := ctx.QueryArgs()
		c.blocking = args.GetBool("blocking")
		c.resultOnly = args.GetBool("result")
	case shapeLambda:
		if !ctx.IsPost() {
			writeLambdaError(ctx, fasthttp.StatusMethodNotAllowed, "UnknownOperationException", "Unknown operation")
			return
		}
		switch t := ctx.Request.Header.Peek("X-Amz-Invocation-Type"); string(t) {
		case "", "RequestResponse":
		case "Event":
			c.blocking = false
		case "DryRun":
			ctx.SetStatusCode(fasthttp.StatusNoContent)
			return
		default:
			writeLambdaError(ctx, fasthttp.StatusBadRequest, "InvalidParameterValueException",
				"1 validation error detected: Value at 'invocationType' failed to satisfy constraint")
			return
		}
		c.qualifier = ctx.QueryArgs().Peek("Qualifier")
	}

	if c.chain = ctx.Request.Header.Peek(HeaderChainID); len(c.chain) > 0 {
		ctx.Response.Header.SetBytesV(HeaderChainID, c.chain)
	}
	c.payload = parsePayload(ctx.PostBody())
	c.warmup = c.payload.warmup || isTrue(ctx.Request.Header.Peek(HeaderWarmup))

	var kb [128]byte
	fn := e.function(r.appendKey(kb[:0]))

	if r.isOpenWhisk() {
		if count, limit, ok := e.allowRate(r.ns); !ok {
			e.c.rateThrottles.Add(1)
			fn.c.rateThrottles.Add(1)
			writeRateThrottle(ctx, count, limit)
			return
		}
	}
	// A function with reserved concurrency (SetReserved) runs at most that
	// many at once, whatever room the account has.
	reserved := fn.reserved.Load() > 0
	if reserved && !fn.enterReserved() {
		e.c.throttles.Add(1)
		fn.c.throttles.Add(1)
		writeReservedThrottle(ctx, &c)
		return
	}
	var inFlight int64
	var ok, aborted bool
	if e.mode == ModeQueue {
		inFlight, ok, aborted = e.acquireQueued()
	} else {
		inFlight, ok = e.acquire()
	}
	if !ok {
		if reserved {
			fn.c.inFlight.Add(-1)
		}
		if aborted {
			writeError(ctx, fasthttp.StatusServiceUnavailable, "emulator shutting down", c.isOpenWhisk())
			return
		}
		e.c.throttles.Add(1)
		fn.c.throttles.Add(1)
		e.writeRefusal(ctx, &c, inFlight) // mode.go
		return
	}
	if !reserved {
		fn.c.enter()
	}

	exec := time.Duration(e.execTime.Load())
	if c.hasExec {
		exec = c.exec
	}
	if c.warmup {
		exec = c.hold
		if e.ignoreHold {
			exec = 0
		}
	}
	if !c.blocking {
		fail, warmup := c.fail, c.warmup
		if !e.background(func() { e.run(fn, exec, fail, warmup) }) {
			e.release(fn)
			writeError(ctx, fasthttp.StatusServiceUnavailable, "emulator shutting down", c.isOpenWhisk())
			return
		}
		writeAccepted(ctx, &c)
		return
	}
	o := e.run(fn, exec, c.fail, c.warmup)
	writeOutcome(ctx, &c, fn.name, o)
}

func isTrue(v []byte) bool {
	return string(v) == "1" || bytes.EqualFold(v, []byte("true"))
}
