// Package adaptive owns sequoia's adaptive concurrency limit: how many
// invocations the scheduler lets run at the platform at once, when the
// platform's real limit is not what its documentation (or
// SEQUOIA_MAX_CONCURRENCY, the ceiling) says, is shared with other
// callers, or is a function runtime's that queues calls instead of
// refusing them.
//
// # Goals
//
// Learn the real limit within the first burst, so that what the platform
// cannot take waits in sequoia's queues (chains first, deadlines kept)
// rather than being refused to clients or queued at the platform: against
// a runtime of 4 behind a ceiling of 100, no client sees a throttle, the
// runtime refuses at most 5x its limit per burst, and the limit is within
// 2x of the real one within a second; against a runtime that queues, the
// limit settles within 2x of what it runs. Never collapse on signals that
// are not about concurrency.
//
// # Algorithm
//
//   - Slow start: the limit starts at Config.Initial and grows by one per
//     success while in use (doubling each round trip) until the first
//     throttle or queueing cut, or the Ceiling.
//   - A concurrency throttle is a bound: the platform refused a call while
//     sequoia had n in flight (the refused one included), so it ran at
//     most n-1 of them; the limit drops to that at once. At most once per
//     Cooldown it is also multiplied by Backoff.
//   - Queueing is read from latency: per function, the least round trip of
//     this 10s epoch and the last is its no-load latency; a window (at
//     least Window and MinSamples calls) in which every call was Tolerance
//     times its function's least (and MinExcess more), none of the slow
//     ones sent with fewer calls in flight than the platform then seems to
//     run, is queueing: the platform runs in-flight/ratio (Little's law)
//     and the limit is cut to that. Cold starts fail that test (calls sent
//     with few in flight are slow too), as does a function grown slower
//     after the cut: the next window of calls sent after it must be
//     faster, else the cut is undone and the baselines start over. While a
//     window's calls are on average halfway to the Tolerance the limit does
//     not grow.
//   - After Quiet without a throttle or cut, each window of `limit`
//     successes while the limit is in use raises it by one (TCP's
//     congestion avoidance), never above the Ceiling.
//   - Rate throttles, reserved-concurrency throttles and function errors
//     say nothing about the account's concurrency and leave it alone.
//
// Background work the platform runs after answering (OpenWhisk's 202 with
// an activationId) occupies platform concurrency sequoia cannot see end:
// Hold takes a slot away from the scheduler for an estimate of its run. A
// cap from outside (a cluster lease: SetCap) bounds what is applied
// without stopping the learning: Limit is what was learned, Effective what
// the scheduler gets (the least of the two, less holds).
//
// # Internal organisation
//
//   - AIMD (aimd.go) is the algorithm alone: a value type driven by
//     explicit times, no goroutines, no locks; the data-driven tests in
//     testdata/ script it, and sim_test.go runs it against simulated
//     runtimes (refusing, queueing, serial, with cold starts) on a
//     simulated clock.
//   - Limit (limit.go) wraps an AIMD for concurrent use by the workers,
//     applies the result (capped, minus background holds) to the scheduler
//     through a callback, logs queueing cuts, and exposes its state as
//     Prometheus collectors and Status.
//   - Rates paces the tenants a platform throttled for their rate
//     (OpenWhisk's per-namespace "Too many requests in the last minute",
//     which states the allowed rate): a token bucket per throttled tenant
//     at that rate, with nothing banked, dropped after a quiet period.
//
// # Usage
//
//	lim := adaptive.New(adaptive.Config{Ceiling: 100, Initial: 10}, sched.SetLimit, sched.InFlight, log)
//	// when sending a call:
//	n, sent := lim.InFlight(), time.Now()
//	// after its answer, while its slot is still held:
//	lim.OnThrottle()                 // a concurrency throttle
//	lim.OnSuccess("fn", n, sent)     // anything else the platform ran (zero sent: no latency sample)
//	lim.Hold(5 * time.Second)        // a 202: background work at the platform
package adaptive
