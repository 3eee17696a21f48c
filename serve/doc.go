// Package serve is `sequoia serve` wired together: it builds every stage
// from a config.Config, opens the data and admin listeners, runs them, and
// shuts them down in order.
//
// Organisation. New builds the stages innermost first: metrics, the qos
// scheduler, the platform clients and what the backend kind adds to them
// (platforms.go: SigV4 signing, the adaptive limit, retries, overflow),
// the policy engine and the snapshot it reads (policy.go,
// policy_snapshot.go), the warm pool (warmpool.go), the proxy, the DAG
// service (dag.go) and the admin endpoints with /sequoia/v1/status. Run
// serves until its context ends, then drains: readiness fails first, the
// data listener closes after SEQUOIA_DRAIN_DELAY, and queued and in-flight
// work gets SEQUOIA_SHUTDOWN_TIMEOUT. local.go starts a server in-process
// on loopback ports, for the demo, the benches and tests.
//
// Usage:
//
//	cfg, err := config.Load()
//	s, err := serve.New(cfg, serve.NewLogger(cfg.Serving, os.Stderr))
//	err = s.Run(ctx) // until ctx ends, then drains
package serve
