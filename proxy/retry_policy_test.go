package proxy

import (
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// idempotentDecider declares the functions it names safe to retry, as a
// policy's `idempotent` does.
type idempotentDecider map[string]bool

func (d idempotentDecider) Decide(inv *invocation.Invocation) (bool, string) {
	inv.Idempotent = d[inv.Function]
	return false, ""
}

// TestPolicyIdempotentAllowsRetry: a POST without Idempotency-Key is not
// retried after a platform 503, unless the policy declared its function
// idempotent.
func TestPolicyIdempotentAllowsRetry(t *testing.T) {
	b := startScripted(t, map[string][]answer{
		"plain":    {unavailable, ok200},
		"declared": {unavailable, ok200},
	})
	addr, _, _ := startProxyConfig(t, "http://"+b.addr, 4, Config{
		Platform: invocation.Lambda, MaxBodyBytes: 1 << 20,
		Retry:   RetryConfig{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
		Decider: idempotentDecider{"declared": true},
	})

	for _, tt := range []struct {
		fn            string
		status, calls int
	}{
		{"plain", 503, 1},
		{"declared", 200, 2},
	} {
		resp := rawRequest(t, addr, lambdaInvoke(tt.fn))
		if resp.StatusCode() != tt.status || b.count(tt.fn) != tt.calls {
			t.Errorf("%s: status %d after %d calls, want %d after %d", tt.fn, resp.StatusCode(), b.count(tt.fn), tt.status, tt.calls)
		}
	}
}
