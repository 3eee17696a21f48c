package serve

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes what the
// exporter posts to /v1/traces.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	res   []string // service.name of each resource
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want protobuf on /v1/traces", http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(req.Body)
	var msg coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.ResourceSpans {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				r.res = append(r.res, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.ScopeSpans {
			r.spans = append(r.spans, ss.Spans...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// TestTracesOverOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, sequoia serve
// exports each invocation's spans over OTLP/HTTP to the receiver, as a
// child of the caller's traceparent, and flushes them when it stops.
func TestTracesOverOTLP(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	t.Cleanup(collector.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "sequoia-test")
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}

	_, addr := startEmulator(t, emulator.Config{Limit: 4, ExecTime: time.Millisecond})
	cfg, err := config.LoadFrom([]string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
		"SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	req, _ := http.NewRequest("POST", "http://"+s.DataAddr()+"/api/v1/namespaces/guest/actions/traced?blocking=true&result=true", strings.NewReader("{}"))
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	recv.mu.Lock()
	defer recv.mu.Unlock()
	byName := map[string]*tracepb.Span{}
	for _, sp := range recv.spans {
		byName[sp.Name] = sp
	}
	root := byName["sequoia invoke guest/traced"]
	if root == nil || byName["sequoia queue"] == nil || byName["sequoia platform call"] == nil {
		t.Fatalf("received %d spans, want the invocation, its queue wait and its platform call", len(recv.spans))
	}
	if got := root.TraceId; len(got) != 16 || got[0] != 0x4b || got[15] != 0x36 {
		t.Errorf("trace id %x, want the caller's 4bf92f35...4736", got)
	}
	if root.Kind != tracepb.Span_SPAN_KIND_SERVER || root.EndTimeUnixNano < root.StartTimeUnixNano {
		t.Errorf("root kind %v, %d..%d", root.Kind, root.StartTimeUnixNano, root.EndTimeUnixNano)
	}
	if call := byName["sequoia platform call"]; string(call.ParentSpanId) != string(root.SpanId) {
		t.Error("the platform call is not a child of the invocation's span")
	}
	if len(recv.res) == 0 || recv.res[0] != "sequoia-test" {
		t.Errorf("service.name %v, want OTEL_SERVICE_NAME's", recv.res)
	}
}

// TestLambdaTraceHeadersUntouched: Lambda requests are re-signed, and
// their X-Amzn-Trace-Id, traceparent and tracestate reach the platform as
// the client sent them, with tracing on or off.
func TestLambdaTraceHeadersUntouched(t *testing.T) {
	var mu sync.Mutex
	var got []http.Header
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Clone())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(platform.Close)
	collector := httptest.NewServer(&otlpReceiver{})
	t.Cleanup(collector.Close)
	const xray = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tracing := range []bool{false, true} {
		if tracing {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
		}
		s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL="+platform.URL)
		req, _ := http.NewRequest("POST", "http://"+s.DataAddr()+"/2015-03-31/functions/hello/invocations", strings.NewReader("{}"))
		req.Header.Set("X-Amzn-Trace-Id", xray)
		req.Header.Set("traceparent", tp)
		req.Header.Set("tracestate", "a=b")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("tracing %v: status %d", tracing, resp.StatusCode)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d platform calls, want 2", len(got))
	}
	for i, h := range got {
		if h.Get("X-Amzn-Trace-Id") != xray || h.Get("Traceparent") != tp || h.Get("Tracestate") != "a=b" || !strings.HasPrefix(h.Get("Authorization"), "AWS4-HMAC-SHA256") {
			t.Errorf("call %d reached Lambda with X-Amzn-Trace-Id %q, traceparent %q, tracestate %q, Authorization %q",
				i+1, h.Get("X-Amzn-Trace-Id"), h.Get("Traceparent"), h.Get("Tracestate"), h.Get("Authorization"))
		}
	}
}
