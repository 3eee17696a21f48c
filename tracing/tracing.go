package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// scope is the instrumentation scope of sequoia's spans.
const scope = "github.com/sequoia-qos/sequoia"

// Tracer makes the spans of invocations. A nil *Tracer traces nothing.
type Tracer struct {
	tr   trace.Tracer
	prop propagation.TraceContext
}

// New returns a Tracer that makes its spans with tp.
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{tr: tp.Tracer(scope)}
}

// Setup configures tracing from the standard OpenTelemetry variables of
// getenv: on when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, unless OTEL_SDK_DISABLED is
// true or OTEL_TRACES_EXPORTER is none. Spans go over OTLP/HTTP (protobuf)
// through a batch processor; the SDK reads the other OTEL_ variables
// (headers, timeouts, sampler, batch sizes, resource attributes) itself.
// Off, it returns a nil Tracer and a shutdown that does nothing.
func Setup(ctx context.Context, getenv func(string) string, version string) (*Tracer, func(context.Context) error, error) {
	off := func(context.Context) error { return nil }
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") || strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return nil, off, nil
	}
	if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		return nil, off, nil
	}
	if e := getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" {
		return nil, off, fmt.Errorf("OTEL_TRACES_EXPORTER=%s: sequoia exports traces over OTLP only (otlp or none)", e)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(name); p != "" {
			if p != "http/protobuf" {
				return nil, off, fmt.Errorf("%s=%s: sequoia exports OTLP over HTTP with protobuf only: set http/protobuf and point the endpoint at the collector's OTLP/HTTP port (4318)", name, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, off, fmt.Errorf("OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName("sequoia"), semconv.ServiceVersion(version)))
	if err != nil {
		return nil, off, err
	}
	// The environment's resource (OTEL_SERVICE_NAME,
	// OTEL_RESOURCE_ATTRIBUTES) wins over sequoia's defaults.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return New(tp), tp.Shutdown, nil
}

// Carrier reads the headers of an incoming request. Set does nothing:
// sequoia passes the trace headers on untouched.
type Carrier interface {
	Get(key string) string
}

type readOnly struct{ Carrier }

func (readOnly) Set(string, string) {}
func (readOnly) Keys() []string     { return nil }

// Invocation is the trace of one invocation: a server span from its
// arrival to its answer, with a span per wait for a worker slot and per
// call to the platform. A nil *Invocation records nothing, so that
// callers need not check.
type Invocation struct {
	t    *Tracer
	ctx  context.Context
	root trace.Span
}

// Start opens the span of inv, which arrived at inv.Arrival, as a child of
// the W3C trace context (traceparent, tracestate) its request carries, if
// any. The request's headers are read, never changed. It returns nil when
// the sampler leaves the invocation out.
func (t *Tracer) Start(h Carrier, inv *invocation.Invocation) *Invocation {
	if t == nil {
		return nil
	}
	parent := t.prop.Extract(context.Background(), readOnly{h})
	ctx, sp := t.tr.Start(parent, "sequoia invoke", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(inv.Arrival))
	if !sp.IsRecording() {
		// Sampled out: nothing more to build or record.
		return nil
	}
	sp.SetName("sequoia invoke " + inv.Function)
	sp.SetAttributes(
		semconv.FaaSInvokedName(inv.Function),
		attribute.String("sequoia.platform", inv.Platform.String()),
		attribute.String("sequoia.tenant", inv.Tenant),
		attribute.String("sequoia.chain.id", inv.Chain),
	)
	if inv.Budget > 0 {
		sp.SetAttributes(attribute.Int64("sequoia.chain.deadline_ms", inv.Budget.Milliseconds()))
	}
	if inv.Steps > 0 {
		sp.SetAttributes(attribute.Int("sequoia.chain.steps", inv.Steps))
	}
	if x := h.Get("X-Amzn-Trace-Id"); x != "" {
		sp.SetAttributes(attribute.String("aws.xray.trace_header", x))
	}
	return &Invocation{t: t, ctx: ctx, root: sp}
}

// Decided records the policy's decision, as applied to inv: allowed, with
// its class and priority, or denied for reason.
func (s *Invocation) Decided(inv *invocation.Invocation, allowed bool, reason string) {
	if s == nil {
		return
	}
	s.root.AddEvent("policy decision", trace.WithAttributes(
		attribute.Bool("sequoia.policy.allow", allowed),
		attribute.String("sequoia.policy.reason", reason),
		attribute.String("sequoia.class", qos.ClassName(inv.Class)),
		attribute.Int("sequoia.priority", inv.Priority),
	))
}

// Attempt records one try of inv (inv.Attempt): from start it waited
// waited for a worker slot, then, unless the scheduler ended it (err one
// of qos's), the platform answered at end with status.
func (s *Invocation) Attempt(inv *invocation.Invocation, start time.Time, waited time.Duration, end time.Time, status int, err error) {
	if s == nil {
		return
	}
	n := inv.Attempt
	queue := qos.Pending.String()
	if inv.Continuation {
		queue = qos.ChainRunning.String()
	}
	granted := start.Add(waited)
	_, q := s.t.tr.Start(s.ctx, "sequoia queue", trace.WithTimestamp(start), trace.WithAttributes(
		attribute.String("sequoia.queue", queue), attribute.Int("sequoia.attempt", n+1)))
	if !ranAtPlatform(err) {
		admission, why := admissionOf(err)
		q.SetAttributes(attribute.String("sequoia.admission", admission), attribute.String("sequoia.admission.reason", why))
		q.SetStatus(codes.Error, why)
		q.End(trace.WithTimestamp(end))
		return
	}
	q.End(trace.WithTimestamp(granted))
	_, c := s.t.tr.Start(s.ctx, "sequoia platform call", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(granted),
		trace.WithAttributes(attribute.Int("sequoia.attempt", n+1)))
	if err != nil {
		c.SetStatus(codes.Error, err.Error())
	} else {
		c.SetAttributes(semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			c.SetStatus(codes.Error, "")
		}
	}
	c.End(trace.WithTimestamp(end))
}

// Retry records that the attempt that just ended is tried again after
// delay, for reason (a label of sequoia_retries_total).
func (s *Invocation) Retry(reason string, delay time.Duration) {
	if s == nil {
		return
	}
	s.root.AddEvent("retry", trace.WithAttributes(attribute.String("sequoia.retry.reason", reason),
		attribute.Int64("sequoia.retry.backoff_ms", delay.Milliseconds())))
}

// End closes the span of inv: the client got status; err is how the
// invocation ended (nil: the platform answered), waited its time in the
// queues in all.
func (s *Invocation) End(inv *invocation.Invocation, status int, waited time.Duration, err error) {
	if s == nil {
		return
	}
	admission, why := admissionOf(err)
	s.root.SetAttributes(semconv.HTTPResponseStatusCode(status),
		attribute.Bool("sequoia.chain.continuation", inv.Continuation),
		attribute.Int("sequoia.attempts", inv.Attempt+1),
		attribute.Int64("sequoia.queue_wait_ms", waited.Milliseconds()),
		attribute.String("sequoia.admission", admission))
	if !inv.Deadline.IsZero() {
		s.root.SetAttributes(attribute.String("sequoia.chain.deadline", inv.Deadline.UTC().Format(time.RFC3339Nano)))
	}
	if why != "" {
		s.root.SetAttributes(attribute.String("sequoia.admission.reason", why))
	}
	if err != nil || status >= 500 {
		msg := why
		if err != nil && msg == "" {
			msg = err.Error()
		}
		s.root.SetStatus(codes.Error, msg)
	}
	s.root.End()
}

// ranAtPlatform reports whether an attempt that ended with err was sent to
// the platform (nil, or the platform client's own error), rather than
// ended by the scheduler.
func ranAtPlatform(err error) bool {
	return err == nil || errors.Is(err, platform.ErrTimeout) || errors.Is(err, platform.ErrUnreachable)
}

// admissionOf names the admission decision err stands for, and why.
func admissionOf(err error) (admission, why string) {
	var r *qos.RefusedError
	switch {
	case err == nil, ranAtPlatform(err):
		return "admitted", ""
	case errors.As(err, &r) && r.Never:
		return "never_fits", err.Error()
	case errors.Is(err, qos.ErrRefused):
		return "refused", err.Error()
	case errors.Is(err, qos.ErrQueueFull):
		return "queue_full", "SEQUOIA_QUEUE_CAPACITY invocations already waiting"
	case errors.Is(err, qos.ErrQueueTimeout):
		return "queue_timeout", "no worker slot within the queue timeout"
	case errors.Is(err, qos.ErrDeadline):
		return "chain_deadline", "the chain's deadline passed while it waited"
	case errors.Is(err, qos.ErrClientGone):
		return "client_gone", "the client left while it waited"
	case errors.Is(err, ErrPolicyDenied):
		return "policy_denied", strings.TrimPrefix(err.Error(), ErrPolicyDenied.Error()+": ")
	}
	return "failed", err.Error()
}

// ErrPolicyDenied is what End is given for an invocation the policy
// denied (wrapped with the policy's reason).
var ErrPolicyDenied = errors.New("policy denied")
