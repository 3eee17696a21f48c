// Package emulator is a FaaS platform account on loopback, for demos, tests
// and load tests: `sequoia emulate` runs it, and tests across the project
// start one with Start.
//
// # What it owns
//
// One fasthttp server that speaks the invoke API of all three platforms
// sequoia fronts, at once:
//
//   - OpenWhisk: POST /api/v1/namespaces/{ns}/actions/[{pkg}/]{action}
//     with ?blocking= and ?result=, and web actions
//     /api/v1/web/{ns}/{pkg}/{action}[.ext] (any method). The function is
//     "ns/[pkg/]action". Non-blocking calls answer 202 at once and run in
//     the background.
//   - AWS Lambda: POST /2015-03-31/functions/{name|ARN}/invocations with
//     X-Amz-Invocation-Type RequestResponse, Event (202, background) or
//     DryRun (204).
//   - Knative and plain HTTP: any other path; the function is the first path
//     segment, or the first label of the Host for "/".
//   - Its own endpoints: GET /emulator/stats, POST /emulator/reset,
//     GET|POST /emulator/config?limit=&exec_ms=&cold_start_ms=&keepalive_ms=.
//
// The account behaves like a platform: a concurrency limit over everything
// running (cold starts, background runs and warm-ups included), answered
// beyond it with the platform's own throttle (OpenWhisk's 429 "Too many
// concurrent requests in flight", Lambda's 429 TooManyRequestsException,
// Knative's 503 "pending request queue full"), or, in Config.Mode, the
// way a function runtime does (mode.go): refuse (OpenFaaS of-watchdog's
// 429 with max_inflight), queue (Knative's queue-proxy: wait first come
// first served up to Config.Queue, then 503) or serial (the Lambda Runtime
// Interface Emulator: one at a time, an empty 400 beyond); an optional per-minute rate
// limit per OpenWhisk namespace; per-function warm instances that expire
// after a keep-alive; a cold start for each new instance; an execution time
// a payload may override ({"exec_ms": 120}) and a failure a payload may ask
// for ({"fail": true}). Warm-ups (header X-Sequoia-Warmup: 1, or payload
// {"sequoia_warmup": true}) hold a slot and leave a warm instance, but run
// no work and are counted apart from invocations.
//
// Every success answers the result object
//
//	{"function":"ns/hello","instance":3,"cold":false,"chain_id":"c-42","input":{...}}
//
// (wrapped in an activation record for blocking OpenWhisk calls without
// result=true), with X-Emulator-Cold-Start: 1 when a cold start was paid and
// X-Sequoia-Chain-Id echoed back.
//
// # Internal organisation
//
//   - route.go parses a path into a route (shape, namespace, package, name)
//     without allocating; FuzzParseRoute covers it.
//   - handler.go is the request path: route, payload overrides, rate limit,
//     concurrency slot, then run inline or in the background.
//   - emulator.go holds the account: settings in atomics (changeable at run
//     time), the slot count (an atomic compare-and-swap against the limit),
//     the function registry (a map under a read-write lock), Start, Serve
//     and Shutdown.
//   - pool.go is one function: its idle instances under its own mutex,
//     expired lazily when an instance is taken.
//   - mode.go holds the runtime modes: ModeQueue's waiting calls (a FIFO
//     under a mutex: a released slot passes straight to the oldest) and
//     each mode's refusal.
//   - respond.go writes each shape's answers by appending JSON into pooled
//     buffers; admin.go serves /emulator/; stats.go holds the counters.
//
// Hot-path cost with no delays: one map lookup under a read lock, one CAS
// for the slot, one short per-function lock to take and one to return the
// instance, a few atomic adds, and one body copy. No lock is held across a
// delay; delays use pooled timers and end at once on Shutdown.
//
// # Usage
//
//	e, addr, err := emulator.Start(emulator.Config{
//		Limit:     10,
//		ExecTime:  40 * time.Millisecond,
//		ColdStart: 250 * time.Millisecond,
//	})
//	if err != nil {
//		return err
//	}
//	defer e.Shutdown()
//	resp, err := http.Post("http://"+addr+"/api/v1/namespaces/guest/actions/hello?blocking=true",
//		"application/json", strings.NewReader(`{"exec_ms": 5}`))
//	// ...
//	s := e.Stats() // s.Invocations == 1, s.ColdStarts == 1, s.Functions["guest/hello"].WarmInstances == 1
package emulator
