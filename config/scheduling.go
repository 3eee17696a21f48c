package config

import (
	"math"
	"time"
)

// Scheduling configures chains, admission, classes and fairness.
type Scheduling struct {
	// ChainTTL is how long the active-chain table remembers a chain after
	// it started (a chain is also forgotten once its deadline passes); it
	// is also the longest a chain of unknown length waits for its quiet
	// caller before it ends.
	ChainTTL time.Duration `env:"CHAIN_TTL" envDefault:"5m"`
	// MaxChains is the size of the active-chain table; the least recently
	// seen chain is forgotten first.
	MaxChains int `env:"MAX_CHAINS" envDefault:"100000"`
	// DefaultChainDeadline is the budget of a chain whose first request
	// has no `X-Sequoia-Deadline-Ms`; 0 means none: such chains are
	// admitted on queue capacity alone.
	DefaultChainDeadline time.Duration `env:"DEFAULT_CHAIN_DEADLINE" envDefault:"0s"`
	// DefaultEstimate is the assumed slot time of an invocation before any
	// has been observed.
	DefaultEstimate time.Duration `env:"DEFAULT_ESTIMATE" envDefault:"100ms"`
	// AdmissionHeadroom is the fraction of each chain's budget admission
	// keeps in reserve for delays sequoia cannot see (the callers'
	// network, their clocks running before their requests arrive): a chain
	// is admitted only if it is projected to finish within (1 - headroom) ×
	// its budget. It is where the learned headroom starts, and its floor.
	AdmissionHeadroom float64 `env:"ADMISSION_HEADROOM" envDefault:"0.05"`
	// AdmissionHeadroomMax is the most headroom admission learns to keep
	// from answers that came too late for their clients (written after the
	// chain's deadline, or to a client that had left); from
	// `SEQUOIA_ADMISSION_HEADROOM` to 0.9, and equal to it for a fixed
	// headroom.
	AdmissionHeadroomMax float64 `env:"ADMISSION_HEADROOM_MAX" envDefault:"0.5"`
	// ShortestFirst orders the waiters of one class and tenant by their
	// function's observed duration, shortest first, instead of earliest
	// deadline first.
	ShortestFirst bool `env:"SHORTEST_FIRST" envDefault:"false"`
	// DefaultClass is the class of requests without a known
	// `X-Sequoia-Priority`: `interactive` or `batch`.
	DefaultClass string `env:"DEFAULT_CLASS" envDefault:"interactive"`
	// BatchShare is the share of slot grants the batch class gets while
	// both classes wait (between 0 and 1, exclusive); interactive gets the
	// rest.
	BatchShare float64 `env:"BATCH_SHARE" envDefault:"0.2"`
	// TenantCap is the most slots one tenant may hold at once; 0 means no
	// cap.
	TenantCap int `env:"TENANT_CAP" envDefault:"0"`
	// FunctionCap is the most slots one function may hold at once; 0 means
	// no cap.
	FunctionCap int `env:"FUNCTION_CAP" envDefault:"0"`
	// MaxRate bounds the invocations per second sent to the platform (e.g.
	// 1 for OpenWhisk's default 60 per minute); 0 means no bound.
	// Replicas of one cluster share it, in proportion to their leases of
	// SEQUOIA_MAX_CONCURRENCY.
	MaxRate float64 `env:"MAX_RATE" envDefault:"0"`
}

func (sc Scheduling) check(bad func(name string, v any, why string)) {
	if sc.ChainTTL <= 0 {
		bad("CHAIN_TTL", sc.ChainTTL, "must be positive")
	}
	if sc.MaxChains <= 0 {
		bad("MAX_CHAINS", sc.MaxChains, "must be positive")
	}
	if sc.DefaultChainDeadline < 0 {
		bad("DEFAULT_CHAIN_DEADLINE", sc.DefaultChainDeadline, "must not be negative")
	}
	if sc.DefaultEstimate <= 0 {
		bad("DEFAULT_ESTIMATE", sc.DefaultEstimate, "must be positive")
	}
	if !(sc.AdmissionHeadroom >= 0 && sc.AdmissionHeadroom <= 0.9) {
		bad("ADMISSION_HEADROOM", sc.AdmissionHeadroom, "must be between 0 and 0.9")
	}
	if !(sc.AdmissionHeadroomMax >= sc.AdmissionHeadroom && sc.AdmissionHeadroomMax <= 0.9) {
		bad("ADMISSION_HEADROOM_MAX", sc.AdmissionHeadroomMax, "must be between SEQUOIA_ADMISSION_HEADROOM and 0.9")
	}
	if sc.DefaultClass != "interactive" && sc.DefaultClass != "batch" {
		bad("DEFAULT_CLASS", sc.DefaultClass, "must be interactive or batch")
	}
	if !(sc.BatchShare > 0 && sc.BatchShare < 1) {
		bad("BATCH_SHARE", sc.BatchShare, "must be between 0 and 1, exclusive")
	}
	if sc.TenantCap < 0 {
		bad("TENANT_CAP", sc.TenantCap, "must not be negative")
	}
	if sc.FunctionCap < 0 {
		bad("FUNCTION_CAP", sc.FunctionCap, "must not be negative")
	}
	if !(sc.MaxRate >= 0) || math.IsInf(sc.MaxRate, 0) {
		bad("MAX_RATE", sc.MaxRate, "must be a finite number, not negative")
	}
}
