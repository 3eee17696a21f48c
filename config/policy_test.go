package config

import (
	"strings"
	"testing"
	"time"
)

func TestPolicyDefaultsAndErrors(t *testing.T) {
	cfg, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Policy{PolicyDir: "", PolicyTimeout: 10 * time.Millisecond, PolicyOnError: "allow", PolicyCacheSize: 10000, PolicyRefresh: time.Second}
	if cfg.Policy != want {
		t.Errorf("defaults = %+v, want %+v", cfg.Policy, want)
	}
	for _, tc := range []struct{ env, want string }{
		{"SEQUOIA_POLICY_DIR=/nonexistent/policies", "SEQUOIA_POLICY_DIR=/nonexistent/policies: must be an existing directory"},
		{"SEQUOIA_POLICY_TIMEOUT=0s", "SEQUOIA_POLICY_TIMEOUT=0s: must be positive"},
		{"SEQUOIA_POLICY_TIMEOUT=soon", "SEQUOIA_POLICY_TIMEOUT"},
		{"SEQUOIA_POLICY_ON_ERROR=maybe", "SEQUOIA_POLICY_ON_ERROR=maybe: must be allow or deny"},
		{"SEQUOIA_POLICY_CACHE_SIZE=-1", "SEQUOIA_POLICY_CACHE_SIZE=-1: must not be negative"},
		{"SEQUOIA_POLICY_REFRESH=-1s", "SEQUOIA_POLICY_REFRESH=-1s: must be positive"},
	} {
		_, err := LoadFrom([]string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
	if _, err := LoadFrom([]string{"SEQUOIA_POLICY_DIR=" + t.TempDir(), "SEQUOIA_POLICY_ON_ERROR=deny"}); err != nil {
		t.Errorf("a good policy configuration: %v", err)
	}
}
