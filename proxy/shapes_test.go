package proxy

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// TestShapedErrors: sequoia's own answers carry each platform's error shape.
func TestShapedErrors(t *testing.T) {
	for _, tt := range []struct {
		platform   invocation.Platform
		err        *apiError
		status     int
		errorType  string
		retryAfter string
		fields     map[string]string
	}{
		{invocation.Lambda, errQueueFull, 429, "TooManyRequestsException", "1",
			map[string]string{"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User", "message": errQueueFull.message}},
		{invocation.Lambda, errQueueTimeout, 503, "ServiceException", "1",
			map[string]string{"Type": "Service", "message": errQueueTimeout.message}},
		{invocation.Lambda, errUpstreamTimeout, 504, "ServiceException", "",
			map[string]string{"Type": "Service"}},
		{invocation.Lambda, errBadInvocationType, 400, "InvalidParameterValueException", "",
			map[string]string{"Type": "User"}},
		{invocation.Lambda, notFoundErrors[invocation.Lambda], 404, "UnknownOperationException", "", nil},
		{invocation.Lambda, &apiError{413, "body_too_large", "too big", 0}, 413, "RequestTooLargeException", "",
			map[string]string{"message": "too big"}},
		{invocation.OpenWhisk, errQueueFull, 429, "", "1",
			map[string]string{"error": errQueueFull.message, "code": "queue_full"}},
		{invocation.OpenWhisk, errChainDeadline, 504, "", "",
			map[string]string{"code": "chain_deadline"}},
		{invocation.HTTP, errQueueTimeout, 503, "", "1",
			map[string]string{"code": "queue_timeout"}},
	} {
		p := &Proxy{cfg: Config{Platform: tt.platform}}
		var ctx fasthttp.RequestCtx
		p.writeError(&ctx, tt.err)
		name := tt.platform.String() + " " + tt.err.code
		if got := ctx.Response.StatusCode(); got != tt.status {
			t.Errorf("%s: status %d, want %d", name, got, tt.status)
		}
		if got := string(ctx.Response.Header.Peek("X-Amzn-ErrorType")); got != tt.errorType {
			t.Errorf("%s: X-Amzn-ErrorType %q, want %q", name, got, tt.errorType)
		}
		if got := string(ctx.Response.Header.Peek("Retry-After")); got != tt.retryAfter {
			t.Errorf("%s: Retry-After %q, want %q", name, got, tt.retryAfter)
		}
		var body map[string]string
		if err := json.Unmarshal(ctx.Response.Body(), &body); err != nil {
			t.Errorf("%s: body %q: %v", name, ctx.Response.Body(), err)
			continue
		}
		for k, want := range tt.fields {
			if body[k] != want {
				t.Errorf("%s: %s = %q, want %q", name, k, body[k], want)
			}
		}
	}
}

// TestErrorBodiesAreJSON: a message with control characters, a byte that
// is not UTF-8 and HTML's specials (an overflow platform's own message may
// carry any of them) renders as valid JSON in every platform's shape, and
// decodes back to the message (the stray byte as U+FFFD).
func TestErrorBodiesAreJSON(t *testing.T) {
	msg := "overflow said: \x01bad\x7f \xff <b>&</b> ünïcode \"quoted\"\n"
	e := &apiError{fasthttp.StatusBadGateway, "overflow_failed", msg, 0}
	for p := range invocation.Platform(numPlatforms) {
		body := shaped(p, e).body
		if !json.Valid(body) {
			t.Fatalf("%v: body is not JSON: %s", p, body)
		}
		var doc map[string]any
		_ = json.Unmarshal(body, &doc)
		got, _ := doc["error"].(string)
		if p == invocation.Lambda {
			got, _ = doc["message"].(string)
		}
		if want := strings.ToValidUTF8(msg, "\uFFFD"); got != want {
			t.Errorf("%v: message %q, want %q", p, got, want)
		}
	}
}
