package config

import "time"

// Limits configures the worker pool and its queue.
type Limits struct {
	// MaxConcurrency is the platform concurrency this proxy may use (its
	// worker slots): never more invocations than this are in flight at
	// the platform. Replicas of one cluster (SEQUOIA_NATS_URL,
	// SEQUOIA_CLUSTER) share it: it is the budget of them all, leased to
	// each by demand.
	MaxConcurrency int `env:"MAX_CONCURRENCY" envDefault:"100"`
	// QueueCapacity is the most invocations that may wait for a slot;
	// beyond it, requests are answered 429.
	QueueCapacity int `env:"QUEUE_CAPACITY" envDefault:"1000"`
	// QueueTimeout is the longest one invocation waits for a slot; past
	// it, the request is answered 503.
	QueueTimeout time.Duration `env:"QUEUE_TIMEOUT" envDefault:"30s"`
	// MaxFunctions is the number of distinct functions that get their own
	// metric series and state; the rest are counted as `_other`.
	MaxFunctions int `env:"MAX_FUNCTIONS" envDefault:"1000"`
}

func (l Limits) check(bad func(name string, v any, why string)) {
	if l.MaxConcurrency <= 0 {
		bad("MAX_CONCURRENCY", l.MaxConcurrency, "must be positive")
	}
	if l.QueueCapacity < 0 {
		bad("QUEUE_CAPACITY", l.QueueCapacity, "must not be negative")
	}
	if l.QueueTimeout <= 0 {
		bad("QUEUE_TIMEOUT", l.QueueTimeout, "must be positive")
	}
	if l.MaxFunctions <= 0 {
		bad("MAX_FUNCTIONS", l.MaxFunctions, "must be positive")
	}
}
