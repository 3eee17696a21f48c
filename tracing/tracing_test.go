package tracing

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

type headers map[string]string

func (h headers) Get(k string) string { return h[k] }

func newTracer(t *testing.T) (*Tracer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	return New(tp), exp
}

func attrs(s tracetest.SpanStub) map[string]string {
	out := map[string]string{}
	for _, a := range s.Attributes {
		out[string(a.Key)] = a.Value.String()
	}
	return out
}

// An invocation the scheduler ended says which admission decision ended
// it and why, on its queue span and its root; none calls the platform.
func TestAdmissionDecisions(t *testing.T) {
	for _, tc := range []struct {
		err       error
		admission string
		why       string
	}{
		{&qos.RefusedError{RetryAfter: 2 * time.Second}, "refused", "retry after 2s"},
		{&qos.RefusedError{Never: true, Needs: 6 * time.Second, Allowed: 45 * time.Millisecond}, "never_fits", "needs about 6s alone"},
		{qos.ErrQueueFull, "queue_full", "SEQUOIA_QUEUE_CAPACITY"},
		{qos.ErrQueueTimeout, "queue_timeout", "queue timeout"},
		{qos.ErrDeadline, "chain_deadline", "deadline passed"},
		{fmt.Errorf("%w: %s", ErrPolicyDenied, `tenant "acme" is denied`), "policy_denied", `tenant "acme" is denied`},
	} {
		tr, exp := newTracer(t)
		inv := &invocation.Invocation{Function: "f", Arrival: time.Now()}
		sp := tr.Start(headers{}, inv)
		if !errors.Is(tc.err, ErrPolicyDenied) {
			sp.Attempt(inv, inv.Arrival, 0, time.Now(), 0, tc.err)
		}
		sp.End(inv, 429, 0, tc.err)
		spans := exp.GetSpans()
		for _, s := range spans {
			if s.Name == "sequoia platform call" {
				t.Errorf("%v: a platform call span", tc.err)
			}
			a := attrs(s)
			if a["sequoia.admission"] != tc.admission || !strings.Contains(a["sequoia.admission.reason"], tc.why) {
				t.Errorf("%v: %s has admission %q (%q), want %q (%q)", tc.err, s.Name, a["sequoia.admission"], a["sequoia.admission.reason"], tc.admission, tc.why)
			}
		}
		if len(spans) == 0 {
			t.Errorf("%v: no spans", tc.err)
		}
	}
}

// A platform that could not be reached was called: the call span says
// so, and the invocation was admitted.
func TestUnreachablePlatformIsAPlatformCall(t *testing.T) {
	tr, exp := newTracer(t)
	inv := &invocation.Invocation{Function: "f", Arrival: time.Now()}
	sp := tr.Start(headers{}, inv)
	sp.Attempt(inv, inv.Arrival, time.Millisecond, time.Now(), 0, platform.ErrUnreachable)
	sp.End(inv, 502, time.Millisecond, platform.ErrUnreachable)
	var call bool
	for _, s := range exp.GetSpans() {
		if s.Name == "sequoia platform call" {
			call = s.Status.Description != ""
		}
	}
	if !call {
		t.Errorf("spans %v: want a failed platform call", exp.GetSpans())
	}
}

// Off, nothing is recorded and nothing breaks.
func TestNilTracesNothing(t *testing.T) {
	var tr *Tracer
	inv := &invocation.Invocation{Function: "f"}
	sp := tr.Start(headers{"traceparent": "x"}, inv)
	if sp != nil {
		t.Fatal("a nil Tracer started a span")
	}
	sp.Decided(inv, true, "")
	sp.Attempt(inv, time.Now(), 0, time.Now(), 200, nil)
	sp.Retry("x", time.Second)
	sp.End(inv, 200, 0, nil)
}

func TestSetupFromEnvironment(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	for _, tc := range []struct {
		name string
		env  func(string) string
		on   bool
		err  string
	}{
		{"nothing set", env(), false, ""},
		{"endpoint", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"), true, ""},
		{"traces endpoint", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces"), true, ""},
		{"disabled", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_SDK_DISABLED", "true"), false, ""},
		{"exporter none", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER", "none"), false, ""},
		{"grpc", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), false, "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
		{"traces protocol wins", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"), true, ""},
		{"zipkin", env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER", "zipkin"), false, "OTEL_TRACES_EXPORTER=zipkin"},
	} {
		tr, stop, err := Setup(t.Context(), tc.env, "test")
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case (tr != nil) != tc.on:
			t.Errorf("%s: tracing on = %v, want %v", tc.name, tr != nil, tc.on)
		}
		if stop != nil {
			_ = stop(t.Context())
		}
	}
}

// A sampled-out invocation (its caller's traceparent says not sampled)
// records nothing and builds nothing.
func TestSampledOut(t *testing.T) {
	tr, exp := newTracer(t)
	inv := &invocation.Invocation{Function: "f", Arrival: time.Now()}
	sp := tr.Start(headers{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, inv)
	if sp != nil {
		t.Fatal("a sampled-out invocation got a span")
	}
	sp.End(inv, 200, 0, nil)
	if n := len(exp.GetSpans()); n != 0 {
		t.Errorf("%d spans exported", n)
	}
}
