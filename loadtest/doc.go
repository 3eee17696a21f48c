// Package loadtest owns sequoia's load generators: the chain-burst client
// that `sequoia demo` and `sequoia bench` drive, and (in loadtest/emulator)
// the FaaS platform emulator they drive it against.
//
// Organisation: RunChains fires a burst of function chains at one base URL
// and classifies every chain by how it ended (completed, refused at entry,
// dropped mid-chain, failed); Summary reduces the outcomes to the figures
// the Sequoia study compares (completion counts, p50/p99 chain latency,
// makespan, queueing time). A chain is driven by its client, as a function
// calling the next function would: step k+1 is sent when step k answers,
// with the same X-Sequoia-Chain-Id (its own, or with AssignedIDs the one
// sequoia answered its first step with). Three clients: fasthttp
// (NewClient, a kept-alive connection per chain, bench_client.go), net/http
// with a fresh connection per chain (ChainSpec.NetHTTP), and k6
// (RunChainsK6 runs the embedded k6/bench_chains.js, a virtual user per
// chain, and reads its summary back; FindK6 finds the binary
// loadtest/k6/run.sh installs). A chain may leave out its length
// (ChainSpec.Untold), as most clients do. Balancer (balancer.go) is a small
// round-robin load balancer, per request, for the cluster bench where
// HAProxy is not installed.
//
// Usage:
//
//	res := loadtest.RunChains(ctx, loadtest.ChainSpec{
//		BaseURL: "http://127.0.0.1:8080", Chains: 300, Steps: 2,
//	})
//	fmt.Println(res.Summary().Completed)
package loadtest
