// Package metrics owns sequoia's Prometheus collectors and the per-function
// handles the hot path uses to record into them.
//
// Organisation: New builds a Metrics on its own registry (no global state,
// so tests and several proxies in one process do not collide). Per-function
// series are bound once, when a function is first seen, through a bounded
// intern table: recording a request is then a few atomic adds with no label
// hashing and no allocation. Gauges that mirror scheduler state (in-flight,
// queue depth, limit) are GaugeFuncs read at scrape time, so the hot path
// pays nothing for them.
//
// Usage:
//
//	m := metrics.New(1000)
//	fn := m.Function([]byte("guest/hello"))
//	fn.Observe(metrics.Forwarded, 42*time.Millisecond)
//	m.PlatformStatus(200)
//	http.Handle("/metrics", m.Handler())
package metrics
