package platform

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Verdict is what a platform's answer means to sequoia's retry and
// concurrency-limit logic.
type Verdict uint8

// Verdicts.
const (
	// Done: the platform ran the invocation (or refused it for the
	// client's own fault); the answer goes back as it is.
	Done Verdict = iota
	// FunctionError: the function ran and failed (Lambda's 200 with
	// X-Amz-Function-Error, OpenWhisk's 502, a plain function's 5xx other
	// than a platform 503/504). Never retried.
	FunctionError
	// ThrottledConcurrency: the platform refused the call before starting
	// it because too many are running (Lambda's concurrency
	// TooManyRequestsException, OpenWhisk's "Too many concurrent requests
	// in flight", Knative's 503 "pending request queue full", OpenFaaS's
	// of-watchdog's 429 "Concurrent request limit exceeded", the Lambda
	// Runtime Interface Emulator's empty 400 to a second call while one
	// runs). Safe to retry, and a signal for the concurrency limit.
	ThrottledConcurrency
	// ThrottledRate: refused before starting because of a rate limit
	// (Lambda's invocation-rate reasons, OpenWhisk's "Too many requests in
	// the last minute"). Safe to retry; not a concurrency signal.
	ThrottledRate
	// Unavailable: a platform-side 503 or 504. The function may have
	// started, so only idempotent requests are retried.
	Unavailable
	// Accepted: 202, work the platform runs in the background (OpenWhisk
	// non-blocking calls and blocking calls whose wait ran out).
	Accepted
	// ThrottledFunction: refused before starting because one function is
	// at its own reserved concurrency (Lambda's
	// ReservedFunctionConcurrentInvocationLimitExceeded). Safe to retry;
	// not a signal about the account's limit, which other functions
	// still have room under.
	ThrottledFunction
)

var verdictNames = [...]string{"done", "function_error", "throttled_concurrency", "throttled_rate", "unavailable", "accepted", "throttled_function"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown"
}

// Throttled reports whether the platform refused the call before it
// started: a retry cannot run the function twice.
func (v Verdict) Throttled() bool {
	return v == ThrottledConcurrency || v == ThrottledRate || v == ThrottledFunction
}

var (
	headerFunctionError = []byte("X-Amz-Function-Error")
	headerRetryAfter    = []byte(fasthttp.HeaderRetryAfter)
	owLastMinute        = []byte("in the last minute")
	knativeQueueFull    = []byte("pending request queue full")
	lambdaReasonKey     = []byte(`"Reason"`)
	lambdaRateReason    = []byte("RateLimitExceeded")
	lambdaReserved      = []byte("ReservedFunctionConcurrent")
)

// Classify reads a platform's answer. retryAfter is the platform's
// Retry-After (seconds; 0 when absent).
//
// Cost: a status switch; throttles and 503s also scan their short body.
func Classify(kind invocation.Platform, resp *fasthttp.Response) (v Verdict, retryAfter time.Duration) {
	status := resp.StatusCode()
	switch {
	case status == fasthttp.StatusTooManyRequests:
		v = ThrottledConcurrency
		body := resp.Body()
		switch kind {
		case invocation.OpenWhisk:
			if bytes.Contains(body, owLastMinute) {
				v = ThrottledRate
			}
		case invocation.Lambda:
			// Reasons: ConcurrentInvocationLimitExceeded is the
			// account's concurrency;
			// ReservedFunctionConcurrentInvocationLimitExceeded one
			// function's; FunctionInvocationRateLimitExceeded,
			// ReservedFunctionInvocationRateLimitExceeded and
			// CallerRateLimitExceeded are rates.
			if i := bytes.Index(body, lambdaReasonKey); i >= 0 {
				rest := body[i+len(lambdaReasonKey):]
				if j := bytes.IndexByte(rest, ','); j >= 0 {
					rest = rest[:j]
				} else if j := bytes.IndexByte(rest, '}'); j >= 0 {
					rest = rest[:j]
				}
				switch {
				case bytes.Contains(rest, lambdaRateReason):
					v = ThrottledRate
				case bytes.Contains(rest, lambdaReserved):
					v = ThrottledFunction
				}
			}
		}
		return v, parseRetryAfter(resp.Header.PeekBytes(headerRetryAfter))
	case status == fasthttp.StatusAccepted:
		return Accepted, 0
	case status == fasthttp.StatusServiceUnavailable:
		if bytes.Contains(resp.Body(), knativeQueueFull) {
			return ThrottledConcurrency, parseRetryAfter(resp.Header.PeekBytes(headerRetryAfter))
		}
		return Unavailable, parseRetryAfter(resp.Header.PeekBytes(headerRetryAfter))
	case status == fasthttp.StatusGatewayTimeout:
		return Unavailable, 0
	case status == fasthttp.StatusBadRequest && kind == invocation.Lambda && len(resp.Body()) == 0:
		// Lambda's own 400s always say what was wrong in a JSON body; the
		// Runtime Interface Emulator answers a call that arrives while
		// it runs one ("ReserveFailed: AlreadyReserved") with an empty
		// 400, before running it.
		return ThrottledConcurrency, 0
	}
	switch kind {
	case invocation.Lambda:
		if status == fasthttp.StatusOK && len(resp.Header.PeekBytes(headerFunctionError)) > 0 {
			return FunctionError, 0
		}
	case invocation.OpenWhisk:
		if status == fasthttp.StatusBadGateway {
			return FunctionError, 0
		}
	default:
		if status >= 500 {
			return FunctionError, 0
		}
	}
	return Done, 0
}

// parseRetryAfter reads Retry-After in seconds (the HTTP-date form is not
// used by the platforms sequoia fronts).
func parseRetryAfter(v []byte) time.Duration {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || len(v) > 6 {
		return 0
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return time.Duration(min(n, 3600)) * time.Second
}

var owAllowed = []byte("allowed: ")

// RateAllowed reads how many invocations a minute an OpenWhisk rate
// throttle says the namespace is allowed ("Too many requests in the last
// minute (count: 61, allowed: 60)."); 0 when it does not say.
func RateAllowed(resp *fasthttp.Response) int {
	body := resp.Body()
	i := bytes.Index(body, owAllowed)
	if i < 0 {
		return 0
	}
	n := 0
	for _, c := range body[i+len(owAllowed):] {
		if c < '0' || c > '9' || n > 1e8 {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}
