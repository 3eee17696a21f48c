// Package bench holds `sequoia demo` and the `sequoia bench` benchmarks:
// each starts an emulated platform and the targets it compares (the
// platform directly, HAProxy, sequoia in-process through serve.StartLocal)
// on loopback, drives them with the workload its flags describe, and
// prints a table, or JSON with --json.
//
// Organisation: demo.go is the embedded default; bench.go the chain-burst
// benchmark (chains) and the dispatch by name; bench_coldstart.go the warm
// pool's (coldstart); bench_dags.go DAG orchestration overhead (dags);
// bench_cluster.go cluster mode (cluster): one replica against N separate
// processes of the sequoia binary behind a round-robin balancer, then a
// SIGKILL of a replica and a NATS outage.
// The clients and their summaries are in package loadtest.
//
// Usage:
//
//	err := bench.Run(ctx, []string{"chains", "-chains", "1000", "--json"}, os.Stdout)
package bench
