package proxy

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/proxy/upstream"
	"github.com/sequoia-qos/sequoia/qos"
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
	s := qos.New(qos.Config{Limit: 4, QueueCapacity: 100, QueueTimeout: time.Minute})
	up, err := upstream.New(upstream.Config{URL: "http://" + b.addr, Kind: invocation.Lambda, Timeout: 10 * time.Second, MaxConns: 64})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{
		Platform: invocation.Lambda, MaxBodyBytes: 1 << 20,
		Retry:   RetryConfig{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
		Decider: idempotentDecider{"declared": true},
	}, s, up, metrics.New(100), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = p.srv.Shutdown() })

	for _, tt := range []struct {
		fn            string
		status, calls int
	}{
		{"plain", 503, 1},
		{"declared", 200, 2},
	} {
		resp := rawRequest(t, ln.Addr().String(), lambdaInvoke(tt.fn))
		if resp.StatusCode() != tt.status || b.count(tt.fn) != tt.calls {
			t.Errorf("%s: status %d after %d calls, want %d after %d", tt.fn, resp.StatusCode(), b.count(tt.fn), tt.status, tt.calls)
		}
	}
}
