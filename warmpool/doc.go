// Package warmpool keeps functions warm from outside the platform, so that
// bursts and chain steps do not pay cold starts, while spending as little
// of the concurrency budget as possible.
//
// # Goals
//
//   - Keep-alive: for every recently seen function (a bounded LRU), keep N
//     instances from expiring, like provisioned concurrency. N is
//     SEQUOIA_PREWARM_MIN, a per-function value (SEQUOIA_PREWARM_FUNCTIONS),
//     or the policy's pre-warm hint, whichever is largest. N instances stay
//     warm only if N warm-ups run at the same time: a lone warm-up would
//     reuse the most recent instance and let the others expire. Each
//     warm-up therefore asks the function to hold its instance briefly
//     (sequoia_warmup_hold_ms).
//   - Hold, measured: long enough that the warm-ups of a round overlap at
//     the platform, and no longer, since it is slot-time (and billed time
//     on Lambda). A round whose warm answers span less than twice the hold
//     (from just before each was sent to its answer) provably held N
//     distinct instances; span less hold is what the round needed. Per
//     function the hold becomes twice the recent worst need (rising at
//     once, falling by an eighth of the gap per round), in whole
//     milliseconds within SEQUOIA_PREWARM_HOLD_MIN and _MAX, starting at
//     SEQUOIA_PREWARM_HOLD; with all three equal it is fixed. A round that
//     fails the check is counted, raises the hold, and a keep-alive round
//     goes again with the new hold before the instances it may have missed
//     expire. hold.go derives the check and argues the choices.
//   - Burst pre-warm: an invocation that arrives when no instance is
//     believed idle starts one of its own, and a warm-up sent then is no
//     faster, so none is sent for it: warm-ups help only arrivals still to
//     come. An instantaneous burst has none, and a lone such arrival in a
//     trickle is a coincidence. Only when arrivals keep finding no idle
//     instance for longer than an invocation of the function usually
//     holds its slot (the scheduler's estimate) is demand outgrowing the
//     warm instances: from then on, one warm-up per such arrival, less
//     those in flight. Invocations queued in sequoia need none: a warm-up
//     takes no slot a waiter could use, and a waiter gets the instance the
//     invocation before it leaves.
//   - Chain pre-warm: the pool learns from X-Sequoia-Chain-Id which
//     function follows which (a majority vote per function); when a step
//     starts, the next function gets as many instances as will call it,
//     unless fewer are missing than are idle (creating them would hold the
//     idle ones just as the next step arrives).
//   - Switches: burst and chain pre-warm are on by Config.Burst and
//     Config.Chains (SEQUOIA_PREWARM_BURST, SEQUOIA_PREWARM_CHAINS), per
//     function by BurstFunctions and ChainFunctions (chain pre-warm by the
//     function it would warm). A function listed with warm count 0 gets no
//     warm-up of any kind. A policy's pre-warm hint (Invocation.Prewarm,
//     the decision's "prewarm") switches all three on for its function; the
//     hint cannot switch them off, as 0 means "no hint".
//   - Cost: keeping N instances warm takes N warm-ups together once per
//     keep-alive whatever real traffic does below N, because the platform
//     hands out the most recent idle instance: a trickle of traffic keeps
//     one instance fresh and the others age. So keep-alive costs about
//     (N - 1) x (hold) of slot-time per function per keep-alive; Tick sends
//     nothing for instances real invocations refreshed.
//   - Never at the expense of real work: warm-ups are the lowest class.
//     They take a worker slot only through qos.Scheduler.TryAcquireIdle,
//     which succeeds only when a slot is free, nobody waits in either queue
//     and a headroom (SEQUOIA_PREWARM_HEADROOM of the limit, at least one
//     slot) stays free. A warm-up never waits for a slot: no slot, no
//     warm-up.
//   - Never retry for ever: a failed warm-up (an error, a non-2xx answer,
//     Lambda's X-Amz-Function-Error) pauses warming that function for
//     SEQUOIA_PREWARM_BACKOFF, doubled per consecutive failure up to
//     SEQUOIA_PREWARM_MAX_BACKOFF; a success resets it.
//
// # Internal organisation
//
// Pool holds, per function, what it believes about the platform's
// instances: real invocations running (from Arrived and Finished, called
// by the proxy for requests (proxy.Observer), by Lambda Event deliveries
// and by DAG nodes (dag.Observer)), warm-ups in flight, and
// the time each idle instance last finished. An idle instance is believed
// warm until SEQUOIA_PLATFORM_KEEPALIVE after that; a new invocation takes
// the most recent one, as platforms do. Warm reports the count per
// function (the sequoia_warm_instances gauge).
//
// Cold starts seen by real invocations are detected from the platform's
// signal where it gives one (the emulator's X-Emulator-Cold-Start header,
// OpenWhisk's initTime annotation in a full activation record); once a
// platform has shown such a signal, only the signal counts. Elsewhere a
// latency well above the function's lowest recent latency (by that latency
// and 50ms at least) counts as a cold start. Reporter receives them
// (metrics.WarmPool: sequoia_cold_starts_total{function}).
//
// Tick runs one keep-alive round; Run calls it about every eighth of the
// keep-alive, at gaps drawn at random so that rounds take no fixed phase
// against periodic callers (a caller arriving during a round finds every
// idle instance held), and a function is warmed when its N instances
// would expire within a quarter of it, or when its last round failed the hold check
// and raised the hold. Warm-ups (send.go) go through the Invoker (the
// upstream client, which re-signs Lambda requests) in the platform's own
// invoke shape with header X-Sequoia-Warmup: 1 and payload
// {"sequoia_warmup": true, "sequoia_warmup_hold_ms": H}, and the
// Authorization the function's own callers sent (OpenWhisk, HTTP).
//
// The warm-ups one call sends together (two or more) are a round
// (hold.go): each records when it was sent and answered and whether the
// platform signalled a cold start; the last answer checks the round,
// leaving out failed and cold warm-ups (by the signal, else by a round
// trip far above the function's lowest recent one), and adapts the
// function's hold. Reporter hears each warm-up's hold and each checked
// round (sequoia_warmup_hold_seconds_total,
// sequoia_warmup_rounds_total{result}).
//
// Status (status.go) lists, for /sequoia/v1/status, the functions most
// recently seen, each with its warm estimate, warm count, switches,
// warm-ups sent by reason, cold starts seen, back-off, current hold, the
// need measured and rounds verified and unverified.
//
// Locking: every request calls Arrived and Finished, so they take no lock
// that requests for other functions need (shard.go). Functions, and the
// chain ids that teach successors, sit in LRUs split in up to 16 shards by
// a hash of the name, each shard's mutex held only to look up or insert;
// a function's state has its own mutex, and no two are ever held at once;
// the flags (closed, the platform's cold-start signal) are atomic. Close
// and the sending of a warm-up, which is rare, order themselves with a
// lock of their own. Tick, Warm and Status visit every shard in turn.
//
// Interfaces are declared here and kept small: Slots (qos.Scheduler),
// Invoker (platform.Client), Reporter (metrics.WarmPool).
//
// # Usage
//
//	pool := warmpool.New(warmpool.Config{
//		Platform: invocation.OpenWhisk, Min: 2, Burst: true, Chains: true,
//		KeepAlive: 10 * time.Minute, Headroom: 0.1,
//		Hold: 25 * time.Millisecond, HoldMin: time.Millisecond, HoldMax: 250 * time.Millisecond,
//	}, sched, upstreamClient)
//	pool.SetReporter(m.NewWarmPool(pool.Warm))
//	go pool.Run(stop)        // keep-alive rounds
//	defer pool.Close()       // waits for warm-ups in flight
//	// the proxy calls pool.Arrived(inv) before queueing an invocation and
//	// pool.Finished(inv, latency, err) after it.
package warmpool
