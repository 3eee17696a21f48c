// Package qos owns admission and scheduling: which function chains may
// start, the bounded worker pool that never lets more invocations reach the
// platform than it can run, and the order in which waiting invocations get
// a slot.
//
// Goals. Never exceed the platform's concurrency budget, so that the
// platform never throttles. Never let a chain that was started die half-way:
// continuations of running chains go before new chains, and a new chain is
// admitted only if it is projected to finish within its deadline given the
// work already admitted ahead of it; otherwise it is refused at once, before
// it costs the platform anything. Share the pool between classes and
// tenants so that none starves another. Never lose a waiting invocation
// silently: a refusal, a full queue, a timed-out wait, a passed deadline and
// a departed client each end with a named error. And cost next to nothing
// when there is room: the fast path is one atomic load and one
// compare-and-swap, with no lock and no allocation.
//
// Internal organisation.
//
//   - Scheduler (scheduler.go) holds the slots (an atomic in-flight count
//     against an atomic limit) and two queues.Set under one mutex: the
//     chain-running queue (CRQ, continuations) and the pending queue (PQ,
//     first steps of new chains). Acquire takes a slot or waits for one;
//     Release gives it back and, if anyone waits, hands it straight to the
//     next waiter (a grant): the CRQ before the PQ; inside each, by class
//     share (stride scheduling), then tenant fair share, then the policy's
//     priority, then earliest deadline (or, with ShortestFirst, shortest
//     estimated duration). Do is the whole path: admit, acquire, invoke,
//     release.
//   - A waiter is pooled: its grant channel and its timer are reused. Its
//     wait ends at SEQUOIA_QUEUE_TIMEOUT or at its chain's deadline,
//     whichever comes first (ErrQueueTimeout, ErrDeadline); a policy may
//     set the invocation's own queue timeout.
//   - capCounts (caps.go) counts slots per tenant and per function when
//     caps are configured, and parks waiters over a cap until a slot of
//     theirs comes back. Caps make every Acquire take the lock.
//   - admission (chains.go) owns the active-chain table, a sharded
//     internal/ttlcache (one lock per shard, no global lock) that forgets a
//     chain SEQUOIA_CHAIN_TTL after it started, and decides whether a new
//     chain may start; a chain whose deadline has passed is started anew.
//     Continuations are never refused. Events is how it reports chains
//     started, refused, completed, dropped (a continuation's deadline
//     passed while it waited; a step answered after the deadline; a step's
//     client gone) and failed, and queue waits. It has no lock of its own:
//     what each request updates (a chain's steps, the durations, the
//     outstanding steps) is atomic, and the reservation timeline is split
//     in lines (timeline.go), each with its own lock, taken when a chain
//     starts (one line, picked at random) or ends before its booking;
//     never for a continuation. Chains whose ids the scheduler's ChainIDs
//     assigned (the proxy's, for requests that bring none) live in a ring
//     indexed by the id's counter (ring.go): an atomic swap instead of a
//     table insert.
//   - A chain that announced its length ends with its last step; any other
//     ends once its caller has gone quiet (quiet.go): no step running or
//     waiting, and the last one ended longer ago than a bound learned from
//     the callers' turnaround (1s at least, the TTL at most), or its
//     deadline passed. The ring's sweeper finds such chains in the ring;
//     chains in the table go on a lock-free idle list after their first
//     step, which a sweeper checks four times a second.
//   - headroom (headroom.go) is the fraction of a chain's budget admission
//     keeps for what it cannot see (the client's clock started earlier).
//     It starts at SEQUOIA_ADMISSION_HEADROOM, never goes below it, and
//     learns, up to SEQUOIA_ADMISSION_HEADROOM_MAX, from the chains whose
//     clients did not get an answer in time; chains completed in time let
//     it fade back. Whether a client left is asked of the Watcher
//     (GoneChecker) only for steps ending in the second half of a budget.
//   - estimator (estimate.go) learns per-function slot times (EWMA of
//     grant-to-release, so sequoia's own overheads count; kept lock-free in
//     the per-function flight table), chain lengths per entry function and
//     the callers' turnaround between steps, and keeps a reservation
//     timeline of when each slot is projected free; a fluid bound (all
//     outstanding steps over all slots, and over the rate limit) backs it
//     up. A step beyond its chain's reservation (unplanned) counts in the
//     fluid bound while it holds its slot, and is never booked afterwards.
//   - Watcher is the small interface the caller gives to learn that its
//     client went away while queued (the proxy watches the TCP connection).
//     A wait that ends while a grant races with it returns the grant
//     (departure) or keeps it (timeout, deadline: the slot is used). A
//     Watcher that is also a Withdrawer (a DAG run's cancelled branch) is
//     asked after every grant: withdrawn, it gives the slot back
//     uninvoked. SkipRunSteps gives back a run's reserved steps it will
//     not make.
//   - Remote (remote.go), in a cluster, is how admission meets the other
//     replicas: a chain unknown here that another replica admitted (its
//     id's ticket, or one look-up) is adopted as a continuation, books
//     nothing (the admitting replica's reservation stands for it) and
//     reports its steps there; reports of this replica's chains' steps
//     run elsewhere (RemoteStep) take their reserved steps and end them;
//     what no replica used is given back at the chain's deadline (expiry).
//     SetRate, Committed, Estimates and Seed serve the cluster's leases
//     and shared estimates, from the background.
//   - Invoker is what Do calls once a slot is held: the platform client.
//     With SEQUOIA_MAX_RATE the slot holder waits for a token first, so
//     invocations still reach the platform in the scheduler's order.
//
// Usage:
//
//	s := qos.New(qos.Config{Limit: 50, QueueCapacity: 1000, QueueTimeout: 30 * time.Second})
//	inv.Chain, inv.Budget, inv.Steps = "c-1", time.Second, 2
//	waited, err := s.Do(inv, watcher, platformClient)
//	switch {
//	case errors.Is(err, qos.ErrRefused):      // 429, Retry-After: qos.RetryAfterSeconds(err)
//	case errors.Is(err, qos.ErrDeadline):     // 504: a mid-chain drop if inv.Continuation
//	case errors.Is(err, qos.ErrQueueFull):    // 429
//	case errors.Is(err, qos.ErrQueueTimeout): // 503
//	case errors.Is(err, qos.ErrClientGone):   // nothing to answer
//	}
//
// A watcher that also implements GoneChecker lets Do count an answer to a
// client that already left as a drop, and learn from it.
package qos
