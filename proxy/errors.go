package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// apiError is an answer sequoia gives itself. Its body is rendered once,
// when the error is declared, so writing it allocates nothing.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter int // seconds; 0 for none
}

func (e *apiError) Error() string { return e.message }

// body renders the error as JSON in the shape OpenWhisk uses for its own
// errors ({"error": message, "code": ...}), which generic clients read too.
func (e *apiError) body() []byte {
	return []byte(`{"error":` + jsonString(e.message) + `,"code":` + jsonString(e.code) + `}`)
}

// jsonString quotes s as a JSON string. strconv.Quote is not one: it
// writes \x01 or \xff for a control character or a byte that is not
// UTF-8, which JSON parsers refuse, and an overflow platform's own message
// may carry either. <, > and & stay as they are.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

type renderedError struct {
	status     int
	body       []byte
	retryAfter []byte
	errorType  []byte // X-Amzn-ErrorType (Lambda); nil for none
}

// render declares e: its answers in each platform's shape are built now,
// once, so that writing it allocates nothing.
func render(e *apiError) *apiError {
	shapedErrors[e] = shape(e)
	return e
}

var (
	errQueueFull = render(&apiError{fasthttp.StatusTooManyRequests, "queue_full",
		"sequoia: the invocation queue is full, retry later", 1})
	errChainRefused = render(&apiError{fasthttp.StatusTooManyRequests, "chain_refused",
		"sequoia: this chain cannot finish within its deadline given the work admitted ahead of it; retry after Retry-After seconds", 1})
	errChainDeadline = render(&apiError{fasthttp.StatusGatewayTimeout, "chain_deadline",
		"sequoia: the chain's deadline (X-Sequoia-Deadline-Ms) passed while this invocation waited for a worker slot", 0})
	errQueueTimeout = render(&apiError{fasthttp.StatusServiceUnavailable, "queue_timeout",
		"sequoia: no worker slot became free within SEQUOIA_QUEUE_TIMEOUT, retry later", 1})
	errUpstreamTimeout = render(&apiError{fasthttp.StatusGatewayTimeout, "platform_timeout",
		"sequoia: the platform did not answer within SEQUOIA_BACKEND_TIMEOUT", 0})
	errUpstreamUnreachable = render(&apiError{fasthttp.StatusBadGateway, "platform_unreachable",
		"sequoia: the platform could not be reached (no connection could be made)", 0})
	errUpstreamClosed = render(&apiError{fasthttp.StatusBadGateway, "platform_closed",
		"sequoia: the platform closed the connection before its answer was complete; the function may have run", 0})
	errUpstreamSendFailed = render(&apiError{fasthttp.StatusBadGateway, "platform_refused_request",
		"sequoia: the platform closed the connection while the request was being sent, before reading it all; it may refuse a body this large", 0})
	errShuttingDown = render(&apiError{fasthttp.StatusServiceUnavailable, "shutting_down",
		"sequoia: shutting down; the invocation was not sent to the platform, retry after Retry-After seconds", 1})
	errAbandonedInFlight = render(&apiError{fasthttp.StatusBadGateway, "shutdown_abandoned",
		"sequoia: shut down before the platform answered (SEQUOIA_SHUTDOWN_TIMEOUT); the function may have run", 0})
	errBadTarget = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: only origin-form request targets (/path) are accepted; sequoia forwards only to its configured backend", 0})
	errVersion = render(&apiError{fasthttp.StatusHTTPVersionNotSupported, "http_version_not_supported",
		"sequoia: only HTTP/1.1 and HTTP/1.0 are accepted", 0})
	errNoAPI = render(&apiError{fasthttp.StatusNotFound, "not_found",
		"sequoia: no such sequoia API endpoint", 0})
	notFoundErrors = map[invocation.Platform]*apiError{
		invocation.OpenWhisk: render(&apiError{fasthttp.StatusNotFound, "not_found",
			"sequoia: not an OpenWhisk invoke path; accepted: POST /api/v1/namespaces/{ns}/actions/[{pkg}/]{action}, /api/v1/web/{ns}/{pkg}/{action}[.ext], other /api/v1/ calls are passed through", 0}),
		invocation.Lambda: render(&apiError{fasthttp.StatusNotFound, "not_found",
			"sequoia: not a Lambda invoke path; accepted: POST /2015-03-31/functions/{name-or-arn}/invocations, other /YYYY-MM-DD/ API calls are passed through", 0}),
		invocation.HTTP: render(&apiError{fasthttp.StatusNotFound, "not_found",
			"sequoia: no function named; accepted: Host {service}.{namespace}.{domain} or path /{function}/...", 0}),
	}
)

// neverFits is the answer to a chain (or DAG run, what) that admission
// refused as never fitting (a *qos.RefusedError that is Never): 422 with
// no Retry-After, since no retry can succeed, and what it needs against
// what its deadline allows. It is nil for any other error.
func neverFits(err error, what string) *apiError {
	var r *qos.RefusedError
	if !errors.As(err, &r) || !r.Never {
		return nil
	}
	return &apiError{status: fasthttp.StatusUnprocessableEntity, code: "deadline_too_short",
		message: fmt.Sprintf("sequoia: this %s can never finish within its deadline: its steps alone take about %v at the durations observed, "+
			"over the %v its deadline allows (X-Sequoia-Deadline-Ms less SEQUOIA_ADMISSION_HEADROOM); retrying cannot help, give it a longer deadline",
			what, r.Needs.Round(time.Millisecond), r.Allowed.Round(time.Millisecond))}
}

var (
	contentTypeJSON = []byte("application/json")
	headerRetry     = []byte(fasthttp.HeaderRetryAfter)
)

// writeError replaces the response with e.
func (p *Proxy) writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	r := shaped(p.cfg.Platform, e) // the platform's own error shape: shapes.go
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(r.status)
	ctx.Response.Header.SetContentTypeBytes(contentTypeJSON)
	if r.retryAfter != nil {
		ctx.Response.Header.SetCanonical(headerRetry, r.retryAfter)
	}
	if r.errorType != nil {
		ctx.Response.Header.SetBytesKV(headerAmznErrorType, r.errorType)
	}
	ctx.Response.SetBody(r.body)
}
