package proxy

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/tracing"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "vendor=opaque"
	xray        = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
)

// TestTracing: with a Tracer, an invocation's trace headers reach the
// platform untouched, and its spans (a child of the caller's traceparent)
// show each wait for a slot, each platform call with its status, and the
// retry between them.
func TestTracing(t *testing.T) {
	var (
		calls atomic.Int64
		mu    sync.Mutex
		got   []map[string]string
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		mu.Lock()
		got = append(got, map[string]string{"traceparent": string(ctx.Request.Header.Peek("traceparent")),
			"tracestate": string(ctx.Request.Header.Peek("tracestate")), "X-Amzn-Trace-Id": string(ctx.Request.Header.Peek("X-Amzn-Trace-Id"))})
		mu.Unlock()
		if calls.Add(1) == 1 {
			ctx.SetStatusCode(429)
			ctx.SetBodyString(`{"error":"Too many concurrent requests in flight (count: 2, allowed: 1).","code":"x"}`)
			return
		}
		ctx.SetBodyString(`{"ok":true}`)
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	s := qos.New(qos.Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Minute})
	up, err := platform.New(platform.Config{URL: "http://" + ln.Addr().String(), Kind: invocation.OpenWhisk, Timeout: 10 * time.Second, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	p := New(Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1 << 20, Tracer: tracing.New(tp),
		Retry: RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}},
		s, up, metrics.New(100), slog.New(slog.NewTextHandler(io.Discard, nil)))

	var ctx fasthttp.RequestCtx
	ctx.Request.SetRequestURI("/api/v1/namespaces/guest/actions/hello?blocking=true")
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.Set("traceparent", traceparent)
	ctx.Request.Header.Set("tracestate", tracestate)
	ctx.Request.Header.Set("X-Amzn-Trace-Id", xray)
	ctx.Request.SetBodyString(`{}`)
	p.Handler()(&ctx)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}

	mu.Lock()
	for i, h := range got {
		if h["traceparent"] != traceparent || h["tracestate"] != tracestate || h["X-Amzn-Trace-Id"] != xray {
			t.Errorf("call %d reached the platform with %v, want the client's trace headers untouched", i+1, h)
		}
	}
	if len(got) != 2 {
		t.Errorf("%d platform calls, want 2 (a throttle, then a retry)", len(got))
	}
	mu.Unlock()

	spans := exp.GetSpans()
	byName := map[string][]tracetest.SpanStub{}
	for _, sp := range spans {
		byName[sp.Name] = append(byName[sp.Name], sp)
	}
	roots := byName["sequoia invoke guest/hello"]
	if len(roots) != 1 {
		t.Fatalf("spans %v, want one sequoia invoke guest/hello", names(spans))
	}
	root := roots[0]
	if root.SpanKind != trace.SpanKindServer || root.Parent.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" ||
		root.Parent.SpanID().String() != "00f067aa0ba902b7" || !root.Parent.IsRemote() {
		t.Errorf("root span kind %v, parent %v: want a server span, child of the caller's traceparent", root.SpanKind, root.Parent)
	}
	attrs := map[string]string{}
	for _, a := range root.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	for k, v := range map[string]string{"faas.invoked_name": "guest/hello", "sequoia.admission": "admitted", "sequoia.attempts": "2",
		"http.response.status_code": "200", "aws.xray.trace_header": xray, "sequoia.tenant": "guest"} {
		if attrs[k] != v {
			t.Errorf("root %s = %q, want %q", k, attrs[k], v)
		}
	}
	retried := false
	for _, e := range root.Events {
		if e.Name == "retry" {
			for _, a := range e.Attributes {
				retried = retried || a.Key == "sequoia.retry.reason" && a.Value.AsString() == "throttled_concurrency"
			}
		}
	}
	if !retried {
		t.Errorf("root events %v lack a retry for throttled_concurrency", root.Events)
	}
	queues, calls2 := byName["sequoia queue"], byName["sequoia platform call"]
	if len(queues) != 2 || len(calls2) != 2 {
		t.Fatalf("spans %v, want two queue waits and two platform calls", names(spans))
	}
	var statuses []string
	for _, c := range calls2 {
		if c.Parent.SpanID() != root.SpanContext.SpanID() || c.SpanKind != trace.SpanKindClient {
			t.Errorf("platform call %v is not a client child of the root", c.Name)
		}
		for _, a := range c.Attributes {
			if a.Key == "http.response.status_code" {
				statuses = append(statuses, a.Value.String())
			}
		}
		if c.StartTime.Before(root.StartTime) || c.EndTime.After(root.EndTime) {
			t.Errorf("platform call %v..%v outside its root %v..%v", c.StartTime, c.EndTime, root.StartTime, root.EndTime)
		}
	}
	if len(statuses) != 2 || statuses[0] != "429" || statuses[1] != "200" {
		t.Errorf("platform call statuses %v, want [429 200]", statuses)
	}
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}
