package emulator

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

const contentJSON = "application/json"

// bufs holds scratch buffers for response bodies, so that a response costs
// one copy into fasthttp's body buffer and no allocation.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func setBody(ctx *fasthttp.RequestCtx, status int, contentType string, build func([]byte) []byte) {
	bp := bufs.Get().(*[]byte)
	b := build((*bp)[:0])
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentType)
	ctx.SetBody(b)
	*bp = b
	bufs.Put(bp)
}

// writeOutcome answers a blocking invocation in its shape's format.
func writeOutcome(ctx *fasthttp.RequestCtx, c *call, name string, o outcome) {
	if o.aborted {
		writeError(ctx, fasthttp.StatusServiceUnavailable, "emulator shutting down", c.isOpenWhisk())
		return
	}
	if o.cold {
		ctx.Response.Header.Set(HeaderColdStart, "1")
	}
	switch c.shape {
	case shapeOpenWhisk:
		var idb [32]byte
		id := appendHexID(idb[:0])
		ctx.Response.Header.SetBytesV("X-Openwhisk-Activation-Id", id)
		status := fasthttp.StatusOK
		if o.failed {
			status = fasthttp.StatusBadGateway
		}
		setBody(ctx, status, contentJSON, func(b []byte) []byte {
			if c.resultOnly {
				return appendResult(b, c, name, o)
			}
			return appendActivation(b, c, id, o, name)
		})
	case shapeWeb:
		status := fasthttp.StatusOK
		if o.failed {
			status = fasthttp.StatusBadGateway
		}
		setBody(ctx, status, contentJSON, func(b []byte) []byte { return appendResult(b, c, name, o) })
	case shapeLambda:
		if o.failed {
			ctx.Response.Header.Set("X-Amz-Function-Error", "Unhandled")
			setBody(ctx, fasthttp.StatusOK, contentJSON, func(b []byte) []byte {
				b = append(b, `{"errorMessage":`...)
				b = appendJSONString(b, failure(c, name, o))
				return append(b, `,"errorType":"Error"}`...)
			})
			return
		}
		ctx.Response.Header.SetBytesV("X-Amz-Executed-Version", executedVersion(c.qualifier))
		setBody(ctx, fasthttp.StatusOK, contentJSON, func(b []byte) []byte { return appendResult(b, c, name, o) })
	default:
		status := fasthttp.StatusOK
		if o.failed {
			status = fasthttp.StatusInternalServerError
		}
		setBody(ctx, status, contentJSON, func(b []byte) []byte { return appendResult(b, c, name, o) })
	}
}

// executedVersion is what Lambda reports as run: a numeric qualifier names a
// version; an alias or none is reported as $LATEST (the emulator has no
// aliases to resolve).
func executedVersion(q []byte) []byte {
	if len(q) == 0 {
		return []byte("$LATEST")
	}
	for _, ch := range q {
		if ch < '0' || ch > '9' {
			return []byte("$LATEST")
		}
	}
	return q
}

// appendResult appends the function's result object, or {"error":...} when
// it failed.
func appendResult(b []byte, c *call, name string, o outcome) []byte {
	if o.failed {
		b = append(b, `{"error":`...)
		b = appendJSONString(b, failure(c, name, o))
		return append(b, '}')
	}
	b = append(b, `{"function":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"instance":`...)
	b = strconv.AppendInt(b, o.instance, 10)
	b = append(b, `,"cold":`...)
	b = strconv.AppendBool(b, o.cold)
	b = append(b, `,"chain_id":`...)
	b = appendJSONString(b, c.chain)
	b = append(b, `,"input":`...)
	if c.input != nil {
		b = append(b, c.input...)
	} else {
		b = append(b, "null"...)
	}
	if c.warmup {
		b = append(b, `,"warmup":true`...)
	}
	return append(b, '}')
}

func failure(c *call, name string, o outcome) string {
	if c.warmup {
		return "warm-up of " + name + " failed (emulator FailWarmups)"
	}
	return "function " + name + " failed on instance " + strconv.FormatInt(o.instance, 10) + " (payload fail)"
}

// appendActivation appends an OpenWhisk activation record.
func appendActivation(b []byte, c *call, id []byte, o outcome, name string) []byte {
	start, end := o.start, o.end
	if start.IsZero() {
		start = time.Now()
		end = start
	}
	b = append(b, `{"activationId":"`...)
	b = append(b, id...)
	b = append(b, `","namespace":`...)
	if len(c.pkg) > 0 {
		b = append(b, '"')
		b = appendJSONInner(b, c.ns)
		b = append(b, '/')
		b = appendJSONInner(b, c.pkg)
		b = append(b, '"')
	} else {
		b = appendJSONString(b, c.ns)
	}
	b = append(b, `,"name":`...)
	b = appendJSONString(b, c.name)
	b = append(b, `,"version":"0.0.1","subject":`...)
	b = appendJSONString(b, c.ns)
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, start.UnixMilli(), 10)
	b = append(b, `,"end":`...)
	b = strconv.AppendInt(b, end.UnixMilli(), 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, end.Sub(start).Milliseconds(), 10)
	if o.failed {
		b = append(b, `,"response":{"status":"application error","statusCode":1,"success":false,"result":`...)
	} else {
		b = append(b, `,"response":{"status":"success","statusCode":0,"success":true,"result":`...)
	}
	b = appendResult(b, c, name, o)
	b = append(b, `},"logs":[],"annotations":[`...)
	if o.cold {
		b = append(b, `{"key":"initTime","value":`...)
		b = strconv.AppendInt(b, o.init.Milliseconds(), 10)
		b = append(b, '}')
	}
	return append(b, `],"publish":false}`...)
}

// writeAccepted answers a non-blocking OpenWhisk call or a Lambda Event.
func writeAccepted(ctx *fasthttp.RequestCtx, c *call) {
	if c.shape == shapeLambda {
		ctx.SetStatusCode(fasthttp.StatusAccepted)
		return
	}
	setBody(ctx, fasthttp.StatusAccepted, contentJSON, func(b []byte) []byte {
		b = append(b, `{"activationId":"`...)
		b = appendHexID(b)
		return append(b, `"}`...)
	})
}

// writeThrottle refuses a call over the concurrency limit the way its
// platform does.
func writeThrottle(ctx *fasthttp.RequestCtx, c *call, inFlight, limit int64) {
	switch {
	case c.isOpenWhisk():
		setBody(ctx, fasthttp.StatusTooManyRequests, contentJSON, func(b []byte) []byte {
			b = append(b, `{"error":"Too many concurrent requests in flight (count: `...)
			b = strconv.AppendInt(b, inFlight, 10)
			b = append(b, `, allowed: `...)
			b = strconv.AppendInt(b, limit, 10)
			b = append(b, `).","code":"`...)
			b = appendHexID(b)
			return append(b, `"}`...)
		})
	case c.shape == shapeLambda:
		writeLambdaThrottle(ctx, "ConcurrentInvocationLimitExceeded")
	default:
		setBody(ctx, fasthttp.StatusServiceUnavailable, "text/plain; charset=utf-8", func(b []byte) []byte {
			return append(b, "pending request queue full"...)
		})
	}
}

// writeReservedThrottle refuses a call over its function's reserved
// concurrency: Lambda's TooManyRequestsException with the reserved reason;
// the other shapes answer their usual throttle.
func writeReservedThrottle(ctx *fasthttp.RequestCtx, c *call) {
	if c.shape != shapeLambda {
		writeThrottle(ctx, c, 0, 0)
		return
	}
	writeLambdaThrottle(ctx, "ReservedFunctionConcurrentInvocationLimitExceeded")
}

// writeLambdaThrottle answers Lambda's TooManyRequestsException for
// reason.
func writeLambdaThrottle(ctx *fasthttp.RequestCtx, reason string) {
	ctx.Response.Header.Set("X-Amzn-ErrorType", "TooManyRequestsException")
	ctx.Response.Header.Set("Retry-After", "1")
	setBody(ctx, fasthttp.StatusTooManyRequests, contentJSON, func(b []byte) []byte {
		b = append(b, `{"Reason":"`...)
		b = append(b, reason...)
		return append(b, `","Type":"User","message":"Rate Exceeded."}`...)
	})
}

// writeRateThrottle refuses an OpenWhisk call over the namespace's
// per-minute budget.
func writeRateThrottle(ctx *fasthttp.RequestCtx, count, limit int64) {
	setBody(ctx, fasthttp.StatusTooManyRequests, contentJSON, func(b []byte) []byte {
		b = append(b, `{"error":"Too many requests in the last minute (count: `...)
		b = strconv.AppendInt(b, count, 10)
		b = append(b, `, allowed: `...)
		b = strconv.AppendInt(b, limit, 10)
		b = append(b, `).","code":"`...)
		b = appendHexID(b)
		return append(b, `"}`...)
	})
}

// writeError answers {"error":msg}, with an OpenWhisk transaction code when
// the caller spoke OpenWhisk.
func writeError(ctx *fasthttp.RequestCtx, status int, msg string, openWhisk bool) {
	setBody(ctx, status, contentJSON, func(b []byte) []byte {
		b = append(b, `{"error":`...)
		b = appendJSONString(b, msg)
		if openWhisk {
			b = append(b, `,"code":"`...)
			b = appendHexID(b)
			b = append(b, '"')
		}
		return append(b, '}')
	})
}

// writeRequestError answers a request fasthttp could not read: a body over
// MaxBodyBytes gets 413 in the platform's shape (Lambda's
// RequestTooLargeException), anything else 400.
func writeRequestError(ctx *fasthttp.RequestCtx, err error) {
	r := parseRoute(ctx.Path(), ctx.Host())
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		msg := "Request must be smaller than " + strconv.Itoa(MaxBodyBytes) + " bytes for the InvokeFunction operation"
		if r.shape == shapeLambda {
			writeLambdaError(ctx, fasthttp.StatusRequestEntityTooLarge, "RequestTooLargeException", msg)
			return
		}
		writeError(ctx, fasthttp.StatusRequestEntityTooLarge, msg, r.isOpenWhisk())
		return
	}
	writeError(ctx, fasthttp.StatusBadRequest, "malformed request: "+err.Error(), r.isOpenWhisk())
}

// writeLambdaError answers a Lambda service error that the AWS SDK decodes
// by its X-Amzn-ErrorType.
func writeLambdaError(ctx *fasthttp.RequestCtx, status int, typ, msg string) {
	ctx.Response.Header.Set("X-Amzn-ErrorType", typ)
	setBody(ctx, status, contentJSON, func(b []byte) []byte {
		b = append(b, `{"Type":"User","message":`...)
		b = appendJSONString(b, msg)
		return append(b, '}')
	})
}

// appendHexID appends 32 random lowercase hex digits, the form of OpenWhisk
// activation ids and transaction codes.
func appendHexID(b []byte) []byte {
	const hex = "0123456789abcdef"
	for range 2 {
		v := rand.Uint64()
		for i := 60; i >= 0; i -= 4 {
			b = append(b, hex[(v>>uint(i))&0xf])
		}
	}
	return b
}

// appendJSONString appends s as a quoted JSON string.
func appendJSONString[S ~string | ~[]byte](b []byte, s S) []byte {
	b = append(b, '"')
	b = appendJSONInner(b, s)
	return append(b, '"')
}

// appendJSONInner appends s escaped for a JSON string, without quotes.
// Invalid UTF-8 becomes U+FFFD, so the output is always valid JSON.
func appendJSONInner[S ~string | ~[]byte](b []byte, s S) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		ch := s[i]
		if ch < utf8.RuneSelf {
			if ch >= 0x20 && ch != '"' && ch != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch ch {
			case '"', '\\':
				b = append(b, '\\', ch)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
