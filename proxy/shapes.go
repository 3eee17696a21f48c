package proxy

import (
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Sequoia's own answers are written in the error shape of the platform the
// client speaks, so that an unchanged official client decodes them as it
// would the platform's own:
//
//   - Lambda: the AWS SDKs pick the error type from X-Amzn-ErrorType and
//     read {"Type":..,"message":..} (plus "Reason" for
//     TooManyRequestsException, whose Retry-After header becomes
//     RetryAfterSeconds).
//   - OpenWhisk: {"error": message, "code": ...}, which the JavaScript client
//     turns into the message of the error it throws.
//   - http (Knative and plain functions): the same JSON, which generic
//     clients read.

// numPlatforms sizes per-platform tables.
const numPlatforms = int(invocation.Lambda) + 1

// shapedError is an error rendered once per platform, indexed by
// invocation.Platform.
type shapedError [numPlatforms]renderedError

// shapedErrors holds the declared errors' renderings. It is written only
// while the package's variables are initialised (render) and read-only
// afterwards.
var shapedErrors = map[*apiError]*shapedError{}

var headerAmznErrorType = []byte("X-Amzn-ErrorType")

// lambdaType is the Lambda error type (and Reason, for throttles) that
// stands for one of sequoia's answers.
func lambdaType(e *apiError) (typ, reason string) {
	switch e.code {
	case "queue_full":
		return "TooManyRequestsException", "ConcurrentInvocationLimitExceeded"
	case "chain_refused":
		return "TooManyRequestsException", "CallerRateLimitExceeded"
	case "bad_invocation_type":
		return "InvalidParameterValueException", ""
	}
	switch {
	case e.status == fasthttp.StatusTooManyRequests:
		return "TooManyRequestsException", "ConcurrentInvocationLimitExceeded"
	case e.status == fasthttp.StatusNotFound:
		return "UnknownOperationException", ""
	case e.status == fasthttp.StatusRequestEntityTooLarge:
		return "RequestTooLargeException", ""
	case e.status >= 500:
		return "ServiceException", ""
	}
	return "InvalidParameterValueException", ""
}

// shape renders e for every platform.
func shape(e *apiError) *shapedError {
	var s shapedError
	var retry []byte
	if e.retryAfter > 0 {
		retry = []byte(strconv.Itoa(e.retryAfter))
	}
	generic := e.body()
	s[invocation.HTTP] = renderedError{status: e.status, body: generic, retryAfter: retry}
	s[invocation.OpenWhisk] = renderedError{status: e.status, body: generic, retryAfter: retry}

	typ, reason := lambdaType(e)
	kind := "User"
	if e.status >= 500 {
		kind = "Service"
	}
	b := []byte(`{`)
	if reason != "" {
		b = append(b, `"Reason":`+jsonString(reason)+`,`...)
	}
	b = append(b, `"Type":`+jsonString(kind)+`,"message":`+jsonString(e.message)+`}`...)
	s[invocation.Lambda] = renderedError{status: e.status, body: b, retryAfter: retry, errorType: []byte(typ)}
	return &s
}

// shaped returns e as the platform p answers it.
func shaped(p invocation.Platform, e *apiError) *renderedError {
	s, ok := shapedErrors[e]
	if !ok {
		s = shape(e)
	}
	if int(p) >= numPlatforms {
		p = invocation.HTTP
	}
	return &s[p]
}
