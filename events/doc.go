// Package events owns the asynchronous work sequoia answers 202 for on the
// platform's behalf, so that an accepted request is never lost: Lambda
// Event invocations, stored in NATS JetStream before the 202 and delivered
// from there by every replica, and the journal of async DAG runs
// (runs.go), from which a replica resumes a run whose replica died.
//
// Goals. A 202 is a promise: the event is written to the store (the
// embedded server's files under SEQUOIA_STATE_DIR, or a quorum of the
// cluster's servers with SEQUOIA_NATS_URL) and acknowledged before the
// answer. Delivery is at least once: an event is acknowledged after the
// platform ran it; a replica that dies holding one lets its lease lapse,
// and another (or the same, restarted) delivers it again. An attempt that
// may run an event a second time is counted as redelivered before it goes
// out (see repeats.go for the few over-counts left). Lambda's semantics
// hold: a function error is retried SEQUOIA_EVENT_MAX_RETRIES times,
// throttles and platform errors until SEQUOIA_EVENT_MAX_AGE, and what
// fails for good becomes a dead letter. A client that retries the same
// request (the same SDK invocation id, or Idempotency-Key) within the
// de-duplication window is not enqueued twice. One function's backlog
// never holds back another's events, and deliveries run through the
// scheduler in the batch class.
//
// Internal organisation.
//
//   - Event (event.go) is one accepted invocation: the platform request in
//     wire format plus the proxy's names and the policy's decision, stored
//     as a message's data and headers; decode checks all of it.
//   - Store (store.go) keeps three things on the cluster.Engine, named in
//     the cluster's namespace: the events' stream (work-queue retention: an
//     event leaves it when acknowledged; MaxMsgs SEQUOIA_MAX_EVENTS and
//     MaxBytes SEQUOIA_EVENT_MAX_BYTES with discard-new, which is the
//     back-pressure; Nats-Msg-Id de-duplication), the dead letters' stream
//     (the newest SEQUOIA_EVENT_DEAD_MAX) and a bucket of retry state
//     (function errors and hand-backs of events delivered more than once).
//     Accept publishes and waits for the store's acknowledgement.
//   - The dispatcher (deliver.go) pulls each function's events through a
//     durable consumer of its own subject, taking turns among the functions
//     with events waiting, as delivery slots (SEQUOIA_EVENT_CONCURRENCY)
//     free up; a delivery renews its lease (AckWait, SEQUOIA_DURABLE_LEASE)
//     while it runs, then acknowledges, hands back with a delay (a retry:
//     NakWithDelay) or dead-letters the event.
//   - Deliverer (deliverer.go) is what makes one attempt: the proxy. It
//     calls Event.Sending just before the request goes out, and answers
//     with a Verdict.
//   - Repeats (repeats.go) are counted from the attempts that may have run
//     and are not settled in the store: this replica's own, those of dead
//     processes named in a marker file under the state directory (alone),
//     and the server's delivery counts (in a cluster).
//   - Dead letters (dead.go) are listed by Store.Dead, newest first, and,
//     with SEQUOIA_EVENT_ON_FAILURE_URL, posted as Lambda's on-failure
//     records through a shared durable consumer (BackOff, MaxDeliver).
//   - Memory (memory.go) is the in-process queue sequoia had before the
//     store: the baseline of `sequoia bench events` and the proxy's default
//     without a store.
//   - Metrics (metrics.go) count what each replica did and show the
//     store's backlog and the age of its oldest event.
//
// Usage:
//
//	st, err := events.Open(engine, events.Config{MaxEvents: 10000, Lease: 30 * time.Second}, events.NewMetrics(reg))
//	st.Start(proxy)                  // proxy.Deliver makes each attempt
//	dup, err := st.Accept(&events.Event{Function: "f", Arrival: time.Now(), Request: wire})
//	...
//	abandoned := st.Stop(ctx)        // before engine.Close
package events
