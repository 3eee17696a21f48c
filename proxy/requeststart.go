package proxy

import (
	"bytes"
	"math"
	"time"

	"github.com/valyala/fasthttp"
)

// requestStart is when a proxy in front of sequoia received the request
// of ctx, as it said in the header named h (Config.RequestStartHeader);
// zero when it did not say.
func requestStart(ctx *fasthttp.RequestCtx, h []byte) time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	t, _ := parseRequestStart(ctx.Request.Header.PeekBytes(h))
	return t
}

// parseRequestStart reads an X-Request-Start value: an optional "t=" and
// a Unix time in seconds with a fraction (nginx's `t=${msec}`), or whole
// seconds, milliseconds (HAProxy's `t=%[date(0,ms)]`), microseconds or
// nanoseconds, told apart by magnitude as the APM agents that read this
// header do. Anything else is not a time.
func parseRequestStart(v []byte) (time.Time, bool) {
	v = bytes.TrimSpace(v)
	v = bytes.TrimPrefix(v, []byte("t="))
	whole, frac, dotted := bytes.Cut(v, []byte("."))
	n, ok := digits(whole, 19)
	if !ok || n == 0 {
		return time.Time{}, false
	}
	if dotted {
		if n >= 1e11 {
			return time.Time{}, false // seconds with a fraction only
		}
		if _, ok := digits(frac, 18); !ok {
			return time.Time{}, false
		}
		frac = frac[:min(len(frac), 9)]
		ns, _ := digits(frac, 9)
		for range 9 - len(frac) {
			ns *= 10
		}
		return time.Unix(n, ns), true
	}
	switch {
	case n < 1e11:
		return time.Unix(n, 0), true
	case n < 1e14:
		return time.UnixMilli(n), true
	case n < 1e17:
		return time.UnixMicro(n), true
	default:
		return time.Unix(0, n), true
	}
}

// digits reads b, at most most decimal digits, as a number that fits an
// int64.
func digits(b []byte, most int) (int64, bool) {
	if len(b) == 0 || len(b) > most {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
