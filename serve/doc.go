// Package serve is `sequoia serve` wired together: it builds every stage
// from a config.Config, opens the data and admin listeners, runs them, and
// shuts them down in order.
//
// Organisation. New builds the stages innermost first: metrics, the NATS
// engine (admission learns from it of the chains other replicas
// admitted), the qos scheduler, the platform clients and what the backend
// kind adds to them (platforms.go: SigV4 signing, the adaptive limit,
// retries, overflow), the policy engine and the snapshot it reads
// (policy.go, policy_snapshot.go), the warm pool (warmpool.go), the
// durable event store (events.go), the proxy, the DAG service with its
// run journal (dag.go), the admin endpoints with /sequoia/v1/status and
// /sequoia/v1/events/dead, and last cluster mode (cluster.go): the lease
// of the platform budget, which sets the scheduler's limit (capping the
// adaptive limit; alone, the whole budget), the chains across replicas
// and the shared estimates. The admin port is ready once the replica has
// its lease. Run serves until its
// context ends, then drains: readiness fails first, Event deliveries stop
// and async DAG runs are suspended (their undelivered work stays in the
// store), the data listener closes after SEQUOIA_DRAIN_DELAY, and queued
// and in-flight work gets SEQUOIA_SHUTDOWN_TIMEOUT; then the replica
// leaves the cluster (its lease goes back at once); Run returns an error
// when it abandoned Event deliveries or run tasks at the platform.
// local.go starts a server in-process on loopback ports, for the demo,
// the benches and tests.
//
// Usage:
//
//	cfg, err := config.Load()
//	s, err := serve.New(cfg, serve.NewLogger(cfg.Serving, os.Stderr))
//	err = s.Run(ctx) // until ctx ends, then drains
package serve
