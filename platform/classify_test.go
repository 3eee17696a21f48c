package platform

import (
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		name    string
		kind    invocation.Platform
		status  int
		headers map[string]string
		body    string
		want    Verdict
		retry   time.Duration
	}{
		{"lambda ok", invocation.Lambda, 200, nil, `{}`, Done, 0},
		{"lambda function error", invocation.Lambda, 200, map[string]string{"X-Amz-Function-Error": "Unhandled"}, `{"errorMessage":"x"}`, FunctionError, 0},
		{"lambda concurrency", invocation.Lambda, 429, map[string]string{"Retry-After": "2"},
			`{"Reason":"ConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`, ThrottledConcurrency, 2 * time.Second},
		{"lambda reserved concurrency", invocation.Lambda, 429, nil,
			`{"Type":"User","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}`, ThrottledFunction, 0},
		{"lambda reserved rate", invocation.Lambda, 429, nil,
			`{"Type":"User","Reason":"ReservedFunctionInvocationRateLimitExceeded"}`, ThrottledRate, 0},
		{"lambda rate", invocation.Lambda, 429, map[string]string{"Retry-After": "1"},
			`{"message":"Rate Exceeded.","Reason":"FunctionInvocationRateLimitExceeded","Type":"User"}`, ThrottledRate, time.Second},
		{"lambda caller rate", invocation.Lambda, 429, nil, `{"Reason":"CallerRateLimitExceeded"}`, ThrottledRate, 0},
		{"lambda service 500", invocation.Lambda, 500, nil, `{}`, Done, 0},
		{"lambda 503", invocation.Lambda, 503, nil, `{}`, Unavailable, 0},
		{"lambda event", invocation.Lambda, 202, nil, ``, Accepted, 0},
		{"lambda runtime interface emulator busy", invocation.Lambda, 400, nil, ``, ThrottledConcurrency, 0},
		{"lambda bad request", invocation.Lambda, 400, nil, `{"Type":"User","message":"Could not parse request body into json"}`, Done, 0},
		{"http empty 400", invocation.HTTP, 400, nil, ``, Done, 0},
		{"of-watchdog max_inflight", invocation.HTTP, 429, nil, "Concurrent request limit exceeded. Max concurrent requests: 4\n", ThrottledConcurrency, 0},
		{"openwhisk concurrency", invocation.OpenWhisk, 429, nil,
			`{"error":"Too many concurrent requests in flight (count: 51, allowed: 50).","code":"x"}`, ThrottledConcurrency, 0},
		{"openwhisk rate", invocation.OpenWhisk, 429, nil,
			`{"error":"Too many requests in the last minute (count: 61, allowed: 60).","code":"x"}`, ThrottledRate, 0},
		{"openwhisk action error", invocation.OpenWhisk, 502, nil, `{"error":"boom"}`, FunctionError, 0},
		{"openwhisk activation", invocation.OpenWhisk, 202, nil, `{"activationId":"abc"}`, Accepted, 0},
		{"openwhisk 504", invocation.OpenWhisk, 504, nil, ``, Unavailable, 0},
		{"knative queue full", invocation.HTTP, 503, nil, "pending request queue full", ThrottledConcurrency, 0},
		{"knative other 503", invocation.HTTP, 503, map[string]string{"Retry-After": "bogus"}, "no healthy upstream", Unavailable, 0},
		{"http function 500", invocation.HTTP, 500, nil, "panic", FunctionError, 0},
		{"http 404", invocation.HTTP, 404, nil, "", Done, 0},
	} {
		var resp fasthttp.Response
		resp.SetStatusCode(tt.status)
		for k, v := range tt.headers {
			resp.Header.Set(k, v)
		}
		resp.SetBodyString(tt.body)
		got, retry := Classify(tt.kind, &resp)
		if got != tt.want || retry != tt.retry {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, retry, tt.want, tt.retry)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, tt := range []struct {
		name   string
		kind   invocation.Platform
		status int
		body   string
	}{
		{"ok", invocation.Lambda, 200, `{"result":1}`},
		{"lambda-throttle", invocation.Lambda, 429, `{"Reason":"ConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`},
		{"openwhisk-throttle", invocation.OpenWhisk, 429, `{"error":"Too many concurrent requests in flight (count: 51, allowed: 50).","code":"0123456789abcdef0123456789abcdef"}`},
	} {
		b.Run(tt.name, func(b *testing.B) {
			var resp fasthttp.Response
			resp.SetStatusCode(tt.status)
			resp.SetBodyString(tt.body)
			b.ReportAllocs()
			for b.Loop() {
				Classify(tt.kind, &resp)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	f.Add(uint8(2), 429, `{"Reason":"ConcurrentInvocationLimitExceeded"}`, "1")
	f.Add(uint8(1), 429, `{"error":"Too many requests in the last minute"}`, "")
	f.Add(uint8(0), 503, "pending request queue full", " 7 ")
	f.Fuzz(func(t *testing.T, kind uint8, status int, body, retryAfter string) {
		if status < 100 || status > 999 {
			return
		}
		var resp fasthttp.Response
		resp.SetStatusCode(status)
		resp.SetBodyString(body)
		resp.Header.Set("Retry-After", retryAfter)
		v, ra := Classify(invocation.Platform(kind%3), &resp)
		if ra < 0 || ra > time.Hour {
			t.Errorf("retry-after %v", ra)
		}
		if v.Throttled() && status != 429 && status != 503 {
			t.Errorf("status %d classified %v", status, v)
		}
	})
}

func TestRateAllowed(t *testing.T) {
	for body, want := range map[string]int{
		`{"error":"Too many requests in the last minute (count: 61, allowed: 60).","code":"x"}`: 60,
		`{"error":"Too many requests in the last minute (count: 7001, allowed: 7000)."}`:        7000,
		`{"error":"Too many concurrent requests in flight"}`:                                    0,
		`allowed: x`: 0,
	} {
		var resp fasthttp.Response
		resp.SetBodyString(body)
		if got := RateAllowed(&resp); got != want {
			t.Errorf("RateAllowed(%s) = %d, want %d", body, got, want)
		}
	}
}
