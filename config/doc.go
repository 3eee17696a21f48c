// Package config owns sequoia's configuration: one struct per concern, each
// field read from a SEQUOIA_-prefixed environment variable with
// caarlos0/env, then checked as a whole.
//
// Load returns the whole configuration or an error that names the variable
// and the value at fault. Variables lists every variable with its default;
// the README's configuration table is checked against it by a test, so the
// two cannot drift apart.
//
// Usage:
//
//	cfg, err := config.Load()
//	if err != nil {
//		return err // e.g. `SEQUOIA_MAX_CONCURRENCY="ten": invalid integer`
//	}
//	_ = cfg.Limits.MaxConcurrency
package config
