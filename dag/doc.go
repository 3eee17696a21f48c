// Package dag owns DAG runs: function workflows that sequoia drives
// through its own queues, so that a run that was admitted is never dropped
// half-way. A workflow is either sequoia's DAG JSON (sequence, parallel,
// map, choice, k-of-n, batch) or an Amazon States Language state machine.
//
// Goals. A run is one chain for the scheduler (package qos): admitted as a
// whole, before any of its functions runs, when its critical path
// (estimated from per-function durations) fits its deadline given the work
// admitted ahead of it, and refused at once otherwise. Every invocation it
// then makes is a continuation of that chain and waits in the
// chain-running queue, which goes before new work and refuses nothing.
// Orchestration costs next to nothing: fan-out starts its branches on
// goroutines of the same process (no round trip per branch), fan-in is a
// dependency counter whose last decrement wakes the joiner, and data
// passes between nodes in memory. Bad DAGs are refused when registered,
// with an error naming the node and the problem; runs are bounded (nodes
// per DAG, map width, payload per node and per run).
//
// Internal organisation.
//
//   - DAG and Node (dag.go) are the model, read from JSON by Parse and
//     checked by Validate: named nodes entered at Start, each with an
//     optional Next; sequence steps, parallel branches, a map's Do and a
//     choice's targets name the flows they run. Validate compiles the
//     selectors and finds references to missing nodes and cycles. Plan is
//     admission's estimate: critical path, total work, invocations;
//     PlanInput refines it with the run's input where that decides before
//     any task (a choice's pick, a map's real width).
//   - selector (path.go) picks part of a JSON document by JSON pointer
//     ("/a/0") or a small JSON path ("$.a[0]"); Rule is a choice's
//     condition.
//   - Service (service.go) holds the registered DAGs, the runs in progress
//     and, in an expirable LRU, the finished ones; Start admits a run
//     through the Scheduler interface (qos.Scheduler.AdmitRun) and runs it
//     on its own goroutine.
//   - fanout.go: every fan-out runs its branches in a scope of their own
//     (a context; scopeWatch is the scheduler's Watcher and Withdrawer of
//     their invocations), so that a failure, or a k-of-n's k-th success
//     (min_successes), stops its siblings and nothing else. A k-of-n
//     branch's last task reports its success while it still holds its slot
//     (nodeInvoker), so that no branch queued behind it is invoked.
//   - batch.go: a batch node gathers items from every run of its DAG and
//     invokes its function once per batch, as a continuation of the
//     waiting run with the earliest deadline.
//   - asl*.go: state machines. ParseASL (asl.go) compiles and checks one
//     (StateError names the state and field); asl_path.go compiles paths
//     (github.com/theory/jsonpath, RFC 9535) and payload templates;
//     asl_intrinsic.go the intrinsic functions; asl_choice.go the Choice
//     rules; asl_run.go runs a machine on a Run, its Tasks through the same
//     invoke as a DAG's; asl_plan.go is admission's estimate. The AWS
//     documentation's examples are in testdata/asl.
//   - Run (run.go) executes: flow follows Next; fanOut is the fan-out and
//     counter fan-in of parallel and map (map's width capped by
//     max_concurrency; a run's fan-out goroutines, nested ones included,
//     share a budget of the map width limit); task makes one attempt per call of invoke, which
//     builds the platform's request (platform.go: OpenWhisk blocking with
//     result, Lambda Invoke, POST /{function}) and runs it through
//     Scheduler.Do with the proxy's platform client. The first failure,
//     a cancel or the deadline stops the run: queued invocations leave
//     their queue (Run is their qos.Watcher), nothing more is invoked.
//   - Journal (journal.go) makes async runs (RunRequest.Durable) outlive
//     the process: Start records the run (RunRecord: the DAG's source, the
//     input, the deadline) before it returns, each task's output is
//     recorded under its instance key (the node's path through the flows
//     that entered it, with an index per sequence step, branch and map
//     item) before the next node starts, and the end once it ended.
//     Resume runs a record again, answering the recorded tasks from the
//     journal; Suspend (shutdown) and Yield (cut off from the journal)
//     stop durable runs where they are, their tasks at the platform
//     finished and recorded. Package events implements Journal on NATS
//     JetStream.
//
// Usage:
//
//	svc := dag.New(dag.Config{Platform: invocation.HTTP, Host: "127.0.0.1:8081"}, sched, client)
//	err := svc.Put("etl", []byte(`{"start": "a", "nodes": {
//		"a": {"kind": "task", "function": "extract", "next": "b"},
//		"b": {"kind": "map", "items": "/rows", "do": "t", "max_concurrency": 10},
//		"t": {"kind": "task", "function": "transform", "retry": {"max_attempts": 3}}}}`))
//	err = svc.Put("hello", []byte(`{"StartAt": "Hi", "States": {
//		"Hi": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:hello", "End": true}}}`))
//	run, err := svc.Start("etl", dag.RunRequest{Input: input, Budget: 2 * time.Second})
//	<-run.Done()
//	status, output, failure := run.Result()
package dag
