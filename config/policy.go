package config

import (
	"os"
	"time"
)

// Policy configures the policy engine (package policy): where the Rego
// files are and how their decisions are made.
type Policy struct {
	// PolicyDir is the directory of `.rego` files sequoia loads, watches
	// and reloads while serving (a Kubernetes ConfigMap volume works);
	// empty means the defaults built into the binary.
	PolicyDir string `env:"POLICY_DIR" envDefault:""`
	// PolicyTimeout bounds one policy evaluation; past it the decision
	// follows SEQUOIA_POLICY_ON_ERROR.
	PolicyTimeout time.Duration `env:"POLICY_TIMEOUT" envDefault:"10ms"`
	// PolicyOnError is what a failed or timed-out evaluation decides:
	// `allow` (fall back to configuration) or `deny` (403, for strict
	// deployments).
	PolicyOnError string `env:"POLICY_ON_ERROR" envDefault:"allow"`
	// PolicyCacheSize is the number of decision cache entries; 0 disables
	// the cache.
	PolicyCacheSize int `env:"POLICY_CACHE_SIZE" envDefault:"10000"`
	// PolicyRefresh is how often the live metrics snapshot that policies read
	// is taken.
	PolicyRefresh time.Duration `env:"POLICY_REFRESH" envDefault:"1s"`
}

func (p Policy) check(bad func(name string, v any, why string)) {
	if p.PolicyDir != "" {
		if st, err := os.Stat(p.PolicyDir); err != nil || !st.IsDir() {
			bad("POLICY_DIR", p.PolicyDir, "must be an existing directory")
		}
	}
	if p.PolicyTimeout <= 0 {
		bad("POLICY_TIMEOUT", p.PolicyTimeout, "must be positive")
	}
	if p.PolicyOnError != "allow" && p.PolicyOnError != "deny" {
		bad("POLICY_ON_ERROR", p.PolicyOnError, "must be allow or deny")
	}
	if p.PolicyCacheSize < 0 {
		bad("POLICY_CACHE_SIZE", p.PolicyCacheSize, "must not be negative")
	}
	if p.PolicyRefresh <= 0 {
		bad("POLICY_REFRESH", p.PolicyRefresh, "must be positive")
	}
}
