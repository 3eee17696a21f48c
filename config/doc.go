// Package config owns sequoia's configuration: one struct per concern, each
// in a file of its own (serving.go, backend.go, limits.go, scheduling.go,
// platforms.go, policy.go, dag.go, warmpool.go, cluster.go), each field read
// from a SEQUOIA_-prefixed environment variable with caarlos0/env, then
// checked by its struct's check method.
//
// LoadFrom returns the whole configuration or an error with one line per
// problem: an unknown SEQUOIA_ variable (unknown.go, with the closest known
// name), a value that does not parse, a value that makes no sense. Each
// problem is reported once and, where two variables conflict, about the
// one the environment sets (report in config.go).
//
// The variables reference is generated from the structs' field doc
// comments and tags by `go generate ./config` (refgen, in
// internal/refgen): reference_gen.go, which Reference, WriteReference
// (`sequoia serve --help`) and Settings (`sequoia config`) read, and
// docs/configuration.md. A test fails when either is stale.
//
// Usage:
//
//	cfg, err := config.Load()
//	if err != nil {
//		return err // e.g. `SEQUOIA_MAX_CONCURRENCY="ten": invalid integer`
//	}
//	_ = cfg.Limits.MaxConcurrency
package config
