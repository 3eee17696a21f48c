// Package adaptive owns sequoia's adaptive concurrency limit: how many
// invocations the scheduler lets run at the platform at once, when the
// platform's real limit is not what its documentation (or
// SEQUOIA_MAX_CONCURRENCY) says, or is shared with other callers.
//
// # Algorithm: AIMD on throttles
//
// The signal is explicit: a platform answers a call over its concurrency
// limit with a throttle (Lambda's TooManyRequestsException, OpenWhisk's
// "Too many concurrent requests in flight", Knative's 503 "pending request
// queue full") before running it. Latency carries no such signal: each
// invocation runs in its own instance, so it does not grow as the account
// fills up, and a gradient algorithm (Netflix's gradient2, Vegas) that
// waits for latency to rise would see nothing until the throttles arrive.
// So the limit is additive-increase, multiplicative-decrease on throttles,
// as TCP does on loss:
//
//   - a concurrency throttle multiplies the limit by Backoff (0.9), at most
//     once per Cooldown, so the burst of throttles one overshoot causes
//     lowers it once, not once per throttle (no collapse);
//   - after Quiet without a throttle, each window of `limit` successful
//     invocations while the limit is in use raises it by one (one step
//     per round of the pool, like TCP's congestion avoidance), never above
//     the Ceiling (SEQUOIA_MAX_CONCURRENCY);
//   - rate throttles (per-minute budgets) and function errors say nothing
//     about concurrency and leave it alone.
//
// Background work the platform runs after answering (OpenWhisk's 202 with
// an activationId) occupies platform concurrency sequoia cannot see end:
// Hold takes a slot away from the scheduler for an estimate of its run.
//
// # Internal organisation
//
//   - AIMD is the algorithm alone: a value type driven by explicit times,
//     no goroutines, no locks; the data-driven tests in testdata/ script it.
//   - Limit wraps an AIMD for concurrent use by the workers, applies the
//     result (minus background holds) to the scheduler through a callback,
//     and exposes it as Prometheus gauges.
//   - Rates paces the tenants a platform throttled for their rate
//     (OpenWhisk's per-namespace "Too many requests in the last minute",
//     which states the allowed rate): a token bucket per throttled tenant
//     at that rate, with nothing banked, dropped after a quiet period.
//
// # Usage
//
//	lim := adaptive.New(adaptive.Config{Ceiling: 100}, sched.SetLimit, sched.InFlight)
//	// after each platform answer:
//	lim.OnThrottle()          // a concurrency throttle
//	lim.OnSuccess()           // anything else the platform ran
//	lim.Hold(5 * time.Second) // a 202: background work at the platform
package adaptive
