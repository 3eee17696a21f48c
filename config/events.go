package config

import (
	"net/url"
	"time"
)

// Events configures durable asynchronous work: Lambda Event invocations
// and async DAG runs, kept in NATS JetStream (the embedded server's files,
// or the cluster's streams) from before sequoia answers 202 until they are
// done. SEQUOIA_EVENT_MAX_AGE and SEQUOIA_MAX_EVENTS (Platforms) bound how
// long and how many.
type Events struct {
	// EventMaxRetries is how many times an Event whose function failed is
	// run again, as Lambda's MaximumRetryAttempts (0 to 2). Throttles and
	// platform errors are retried apart from it, until
	// SEQUOIA_EVENT_MAX_AGE.
	EventMaxRetries int `env:"EVENT_MAX_RETRIES" envDefault:"2"`
	// EventRetryDelay is the wait before the first retry of an Event whose
	// function failed, doubled for the second (Lambda waits 1 and 2
	// minutes).
	EventRetryDelay time.Duration `env:"EVENT_RETRY_DELAY" envDefault:"1m"`
	// EventDedupWindow is how long the same request (the same SDK
	// invocation id, or the same Idempotency-Key) is recognised and not
	// enqueued twice. Each event accepted within the window costs about
	// 100 bytes of the NATS server's memory.
	EventDedupWindow time.Duration `env:"EVENT_DEDUP_WINDOW" envDefault:"2m"`
	// EventMaxBytes bounds the undelivered events' stream, and separately
	// the dead letters', in bytes; beyond it Events are answered 429.
	EventMaxBytes int64 `env:"EVENT_MAX_BYTES" envDefault:"1073741824"`
	// EventDeadMax is how many dead letters (events that exhausted their
	// retries or their age) are kept; the oldest go first.
	EventDeadMax int `env:"EVENT_DEAD_MAX" envDefault:"10000"`
	// EventOnFailureURL, when set, receives each dead letter as a POST of
	// Lambda's on-failure destination record (JSON), retried with backoff.
	EventOnFailureURL string `env:"EVENT_ON_FAILURE_URL" envDefault:""`
	// EventConcurrency bounds the events one replica delivers at once
	// (waiting for a slot included); 0 means SEQUOIA_MAX_CONCURRENCY.
	EventConcurrency int `env:"EVENT_CONCURRENCY" envDefault:"0"`
	// DurableLease is how long work a replica holds (an Event being
	// delivered, an async DAG run) waits, once that replica stops
	// answering (a crash, a partition), before another replica, or this
	// one restarted, takes it over. Holders renew every third of it.
	DurableLease time.Duration `env:"DURABLE_LEASE" envDefault:"30s"`
	// RunJournalMaxBytes bounds the journal of async DAG runs in bytes
	// (their requests, completed nodes' outputs, finished runs kept for
	// SEQUOIA_RUN_RETENTION); beyond it async runs are answered 503.
	RunJournalMaxBytes int64 `env:"RUN_JOURNAL_MAX_BYTES" envDefault:"1073741824"`
}

func (e Events) check(bad func(name string, v any, why string)) {
	if e.EventMaxRetries < 0 || e.EventMaxRetries > 2 {
		bad("EVENT_MAX_RETRIES", e.EventMaxRetries, "must be 0, 1 or 2 (Lambda's MaximumRetryAttempts)")
	}
	for name, d := range map[string]time.Duration{"EVENT_RETRY_DELAY": e.EventRetryDelay,
		"EVENT_DEDUP_WINDOW": e.EventDedupWindow} {
		if d <= 0 {
			bad(name, d, "must be positive")
		}
	}
	if e.DurableLease < time.Second {
		bad("DURABLE_LEASE", e.DurableLease, "must be at least 1s")
	}
	for name, n := range map[string]int64{"EVENT_MAX_BYTES": e.EventMaxBytes, "RUN_JOURNAL_MAX_BYTES": e.RunJournalMaxBytes} {
		if n < 1<<20 {
			bad(name, n, "must be at least 1048576 (1 MiB)")
		}
	}
	if e.EventDeadMax <= 0 {
		bad("EVENT_DEAD_MAX", e.EventDeadMax, "must be positive")
	}
	if e.EventConcurrency < 0 {
		bad("EVENT_CONCURRENCY", e.EventConcurrency, "must not be negative")
	}
	if e.EventOnFailureURL != "" {
		if u, err := url.Parse(e.EventOnFailureURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("EVENT_ON_FAILURE_URL", e.EventOnFailureURL, "must be an absolute http:// or https:// URL")
		}
	}
}
