// Package tracing owns sequoia's OpenTelemetry traces: setting the SDK up
// from the standard OTEL_ variables (Setup: OTLP/HTTP export through a
// batch processor, off unless an endpoint is set) and the spans of one
// invocation (Invocation): a server span from arrival to answer, the child
// of the caller's W3C trace context, with a span per wait for a worker
// slot and per platform call, the admission decision and why, the policy
// decision and the retries. It reads the request's trace headers and never
// writes them: the proxy forwards them untouched.
//
// A nil *Tracer and a nil *Invocation record nothing, so that the proxy's
// hot path costs one pointer check when tracing is off.
//
// Usage:
//
//	tr, stop, err := tracing.Setup(ctx, os.Getenv, version)
//	defer stop(ctx)
//	sp := tr.Start(headers, inv)      // nil when tr is nil
//	sp.Attempt(inv, start, waited, time.Now(), status, err)
//	sp.End(inv, status, waited, err)
package tracing
