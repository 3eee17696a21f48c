// Package proxy owns the inbound side: the fasthttp data-port server that
// speaks each platform's own invoke API, and the admin-port server.
//
// Organisation:
//
//   - route.go parses a request target into a route: an invocation (its
//     function, tenant and qualifier in the platform's own terms) or a
//     control call of the platform's API that is passed through without
//     queueing. Parsing works on the request's bytes and a scratch buffer:
//     no allocation.
//   - proxy.go is the handler: check the target (origin-form only, so the
//     proxy is never an open relay), parse, fill a pooled Invocation, hand
//     it to the Scheduler with the request as qos.Watcher, and answer.
//   - watch_linux.go notices a client that closes its connection while its
//     invocation is queued (fasthttp does not say), without reading from it.
//   - errors.go holds sequoia's own answers, rendered once at start-up;
//     shapes.go renders each in the error shape of the platform the client
//     speaks (Lambda's X-Amzn-ErrorType and {"Type","message","Reason"},
//     OpenWhisk's {"error","code"}), so official clients decode them.
//   - paths.go refuses dot segments and encoded slashes before routing.
//   - retry.go retries throttles (and, for idempotent requests, platform
//     503/504s) with jittered backoff, back through the scheduler, within
//     the invocation's deadline, and reports every answer to the adaptive
//     limit (Feedback: the calls in flight when it was sent, when, and
//     how it ended); events.go takes Lambda Event invocations (stored in
//     Config.Events, the durable store of package events, then 202; their
//     deliveries call Proxy.Deliver, one attempt each) and DryRun.
//   - throttles.go accounts for the platform's throttles: every attempt by
//     result (sequoia_platform_attempts_total), one log line per throttle
//     episode with its counts, and the throttles relayed to clients when
//     retries ran out (outcome platform_throttled, not forwarded).
//   - overflow.go answers when overflow to a second platform did not help
//     (an invocation the other API cannot carry, an overflow that throttles
//     or refuses): the primary's refusal, in its shape, saying why; it also
//     creates the retry and overflow series at start-up.
//     reserved.go learns Lambda reserved-concurrency throttles as
//     per-function caps (Invocation.FunctionCap) that probe back up.
//   - tracing.go reads a request's trace headers for Config.Tracer (package
//     tracing), which, when set, records each invocation's spans: the
//     handler starts them, retry.go records each attempt and retry. The
//     headers themselves are forwarded untouched.
//   - cluster.go, in a cluster (Config.Cluster): a received chain id of
//     sequoia's shape is split into the id and the admission ticket riding
//     on it (Invocation.ChainTicket); the ticket admission issues for a new
//     chain is put on the id the function receives and the answer carries;
//     a client-chosen id's registration is awaited before the first answer.
//   - admin.go serves /metrics, /healthz, /readyz and /sequoia/v1/status,
//     and what serve adds with Handle (/sequoia/v1/events/dead).
//
// Usage:
//
//	p := proxy.New(proxy.Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 6 << 20},
//		scheduler, upstreamClient, metrics, logger)
//	go p.Serve(ln)
//	defer p.Shutdown(ctx)
package proxy
