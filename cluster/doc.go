// Package cluster owns what sequoia shares between replicas and keeps
// durable, on NATS JetStream: one engine, embedded in the process when
// SEQUOIA_NATS_URL is empty (a server with no listener, an in-process
// connection, a file store under SEQUOIA_STATE_DIR), or an external NATS
// cluster that the replicas of one SEQUOIA_CLUSTER share; and on it, the
// platform budget the replicas share and the chains they keep whole.
//
// Goals. N replicas behave as one sequoia: the platform never sees more
// than SEQUOIA_MAX_CONCURRENCY (and SEQUOIA_MAX_RATE) from all of them,
// also while capacity moves between them; capacity follows demand; a
// chain admitted by one replica is a continuation at any other; and no
// request waits on NATS (requests with ids sequoia assigns make no NATS
// operation at all). A lone process runs the same code on the embedded
// server.
//
// Organisation.
//
//   - Engine (engine.go) starts the embedded server or connects to the
//     external one, keeps reconnecting through outages (a temporary error
//     never stops sequoia), reports the connection's state to watchers and
//     to /sequoia/v1/status, and names streams, buckets and subjects under
//     the cluster's name so that several deployments share one NATS. The
//     state directory is locked (lock_unix.go). kv.go opens buckets (reads
//     from the stream's leader) and counts every NATS operation sequoia
//     makes, by path (request or background).
//   - Leases (leases.go) share the budget: one compare-and-set document of
//     replica -> slots whose sum never exceeds the budget; each replica
//     shrinks its own limit before writing a lower lease (never below what
//     its admitted chains are booked on) and writes a higher one before
//     using it. Heartbeats over core NATS carry each replica's demand;
//     allocate (alloc.go) turns the demands into shares (one slot each,
//     then continuations waiting, then interactive, then batch first
//     steps, max-min fair, then the rest evenly). A replica silent for
//     SEQUOIA_LEASE_TTL loses its lease; one cut off from NATS keeps its
//     lease for the TTL, then serves on a safe share (budget / replicas it
//     knew) until NATS returns, or until the others' heartbeats confirm
//     the leases stand (JetStream away, core NATS back).
//   - Chains (chains.go) is qos's Remote: a chain id sequoia assigns
//     carries a signed admission ticket (tickets.go: deadline, steps, an
//     HMAC under the cluster's key) that any replica reads without a
//     look-up; an id the client chose is stored once admitted and looked
//     up once per chain and replica. Steps run elsewhere are reported,
//     batched, to the admitting replica, which ends and counts its chain.
//   - Shared (estimates.go) publishes what the replica learned (slot
//     times, chain lengths, turnaround, reserved-concurrency caps) and
//     seeds it with what the others did.
//   - metrics.go exposes the cluster as this replica sees it; natstest
//     starts real NATS servers and clusters for tests and benches.
//
// Usage:
//
//	e, err := cluster.Start(cluster.Options{Config: cfg.Cluster, Log: log})
//	defer e.Close()
//	leases := cluster.NewLeases(e, cluster.LeaseConfig{Budget: 100, TTL: 5 * time.Second,
//		Interval: 200 * time.Millisecond}, replica, log) // replica: a cluster.Local
//	err = leases.Start() // the first round gives the replica its lease
//	defer leases.Close() // leaving: the lease goes back at once
package cluster
