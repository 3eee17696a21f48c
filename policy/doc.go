// Package policy owns sequoia's policy engine: it loads Rego policies,
// compiles and validates them, swaps them in while serving, and evaluates
// data.sequoia.decision once per invocation with OPA's Go packages (no
// OPA server).
//
// Goals. A policy an operator edits must never take the proxy down: a
// file that does not compile, or whose decision breaks the schema, is
// refused with its file and line and the running policy stays. A decision
// must cost little on the request path: queries are prepared once per
// policy version, the live metrics snapshot is converted to OPA's value
// type once per refresh rather than per decision, and decisions are
// cached by exactly the inputs the policy reads. A policy sees names and
// scheduling headers, never request bodies or credentials.
//
// Internal organisation.
//
//   - ReadFiles and compile (load.go) read the .rego files of a
//     directory (or the shipped defaults in package policies), parse them
//     as Rego v1, compile them, check that data.sequoia.decision is
//     defined, prepare the query, and evaluate it for fixed validation
//     inputs, whose decisions must fit the schema (decode in
//     decision.go). A decision that does not is blamed on the
//     contribution.NAME that set the field (blame.go), at its file and
//     line. *_test.rego files are compiled and run only by Check.
//   - analyse (key.go) walks the compiled policy for references to
//     input: the decision cache keys on the fields read (and the
//     snapshot's epoch if the snapshot is read), so that a policy that
//     never reads the chain id caches across chains; the input built for
//     an evaluation carries only those fields. A policy calling a
//     non-deterministic built-in (time.now_ns, rand.intn, http.send) is
//     not cached.
//   - Engine (engine.go) holds the running version and the converted
//     snapshot behind atomic pointers: Decide takes no lock but the LRU
//     cache's (golang-lru), and a reload swaps a whole version at once,
//     cache included, so no evaluation ever mixes two versions. Reload
//     is serialised; Status reports the running version's hash beside
//     the last failure.
//   - compiled.eval (engine.go) runs the compiled query on OPA's
//     interpreter (topdown) directly, with the input built around the
//     converted snapshot, and decodes the decision from OPA's value. The
//     policy's constants (rules like `caps_rank_weight := 1000`) are found
//     once per version (consts.go) and answered from a map by the
//     evaluation's virtual document cache (vcache.go: a pooled slice
//     searched by hash, cheaper than OPA's tree of maps for the few
//     dozen documents a decision caches), rather than evaluated on every
//     decision.
//   - deadRules and prune (prune.go) leave out of the evaluated policy
//     the rules that can never hold, whatever the input: a body that
//     tests a constant false, or looks a key up in a constant empty
//     table. Shipped policies are mostly off or empty until an operator
//     fills them in. The analysis is conservative (top-level expressions
//     only; no rule with an else; nothing at all when a rule uses `with`
//     on data), a name or a set whose every rule is dead keeps one rule
//     behind a leading false, and if the rest does not compile alone the
//     policy is evaluated as written. Check and the Rego tests always see
//     the files as written.
//   - An evaluation is cancelled after Options.Timeout by a timer on
//     OPA's cancel handle; a failure or timeout decides by
//     Options.OnError (allow: fall back to configuration; deny: 403) and
//     is counted.
//   - watcher (watch.go) watches the policy directory rather than its
//     files, because Kubernetes updates a ConfigMap volume by swapping a
//     "..data" symlink: any event, debounced, re-reads the directory, and
//     identical content is not recompiled.
//   - Run drives both: a snapshot from Options.Snapshot every
//     Options.Refresh, a reload after changes.
//   - Invocations (invocation.go) is the proxy's Decider: it builds the
//     Input from a parsed invocation.Invocation (its step within its chain
//     from the scheduler's chain table), and Apply writes the decision into the
//     invocation's scheduling fields (Class, Budget, Steps, Priority,
//     FunctionCap, QueueTimeout, Idempotent, Prewarm).
//   - Check (load.go) is `sequoia policy check`: compile, validate, and
//     run the *_test.rego files through OPA's tester, tracing them; a
//     failing test is reported at its failing expression with the input
//     it gave and the values it compared, read from the trace
//     (testreport.go).
//
// The decision (data.sequoia.decision) is an object whose fields are all
// optional: allow, reason, class, priority, concurrency_cap,
// chain_deadline_ms, chain_steps, queue_timeout_ms, idempotent, prewarm.
// The input holds function, tenant, platform, class, chain_id, step,
// chain_deadline_ms, chain_steps, type and snapshot (see Input and
// Snapshot).
//
// Usage:
//
//	e, err := policy.New(ctx, policy.Options{
//		Dir:      os.Getenv("SEQUOIA_POLICY_DIR"), // "" for the shipped defaults
//		Timeout:  10 * time.Millisecond,
//		OnError:  policy.Allow,
//		Snapshot: func() policy.Snapshot { return live() },
//	})
//	go e.Run(ctx) // snapshots and hot reload
//	d, err := e.Decide(ctx, &policy.Input{Function: "ns/thumb", Tenant: "ns", Step: 1})
//	if d.Deny {
//		// answer 403 with d.Reason
//	}
package policy
