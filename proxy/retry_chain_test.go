package proxy

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// outcomes counts the chains' ends by outcome.
type outcomes struct {
	mu    sync.Mutex
	ended map[qos.ChainOutcome]int
}

func (o *outcomes) ChainStarted(uint8) {}
func (o *outcomes) ChainRefused(uint8) {}
func (o *outcomes) ChainEnded(e qos.ChainEnd) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ended[e.Outcome]++
}
func (o *outcomes) Waited(qos.QueueKind, uint8, time.Duration) {}

func (o *outcomes) count(oc qos.ChainOutcome) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ended[oc]
}

// TestRetriedStepLeavesChainWhole: a step the platform throttled, or
// answered 503 for an invocation with an Idempotency-Key, and that the
// proxy sent again successfully is one step of its chain: the chain
// completes, told or not, and its step count is right. A step still
// throttled when the retries run out fails its chain, and a client that
// leaves while a retry waits ends its chain too: none stays active.
func TestRetriedStepLeavesChainWhole(t *testing.T) {
	b := startScripted(t, map[string][]answer{
		"a": {lambdaThrottle, lambdaThrottle, ok200},
		"c": {unavailable, ok200},
		"u": {ok200},
		"v": {lambdaThrottle, ok200},
		"d": {lambdaThrottle},
		"e": {lambdaThrottle},
	})
	ev := &outcomes{ended: map[qos.ChainOutcome]int{}}
	s := qos.New(qos.Config{Limit: 4, QueueCapacity: 100, QueueTimeout: time.Minute, Events: ev})
	t.Cleanup(s.Close)
	p := startProxyWith(t, "http://"+b.addr, s, Config{Platform: invocation.Lambda, MaxBodyBytes: 1 << 20,
		Retry: RetryConfig{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}})
	call := func(fn string, status int, headers ...string) {
		t.Helper()
		if resp := rawRequest(t, p, lambdaInvoke(fn, headers...)); resp.StatusCode() != status {
			t.Fatalf("%s: %d, want %d", fn, resp.StatusCode(), status)
		}
	}
	const deadline = "X-Sequoia-Deadline-Ms: 60000\r\n"
	// Told, two steps: the first throttled twice, then run.
	call("a", 200, "X-Sequoia-Chain-Id: told\r\n", "X-Sequoia-Chain-Steps: 2\r\n", deadline)
	if n := s.ChainStep("told"); n != 2 {
		t.Errorf("the told chain's next request is step %d, want 2: a retry is no new request", n)
	}
	call("u", 200, "X-Sequoia-Chain-Id: told\r\n")
	// Told, two steps: the first a 503 retried (it has an Idempotency-Key).
	call("c", 200, "X-Sequoia-Chain-Id: key\r\n", "X-Sequoia-Chain-Steps: 2\r\n", deadline, "Idempotency-Key: k\r\n")
	call("u", 200, "X-Sequoia-Chain-Id: key\r\n")
	if got := ev.count(qos.ChainCompleted); got != 2 || ev.count(qos.ChainFailed) != 0 {
		t.Fatalf("told chains: %d completed, %d failed; want 2 completed", got, ev.count(qos.ChainFailed))
	}
	// Untold, two steps, the second throttled once: it ends, completed,
	// once its caller is quiet.
	call("u", 200, "X-Sequoia-Chain-Id: untold\r\n", deadline)
	call("v", 200, "X-Sequoia-Chain-Id: untold\r\n")
	// Throttled until the retries ran out: the client gets the 429 and
	// the chain failed.
	call("d", 429, "X-Sequoia-Chain-Id: refused\r\n", "X-Sequoia-Chain-Steps: 1\r\n", deadline)
	waitFor(t, func() bool { return s.ActiveChains() == 0 })
	if got := ev.count(qos.ChainCompleted); got != 3 || ev.count(qos.ChainFailed) != 1 {
		t.Errorf("%d completed, %d failed; want 3 completed (the untold chain too) and 1 failed", got, ev.count(qos.ChainFailed))
	}
	if got := b.count("a") + b.count("c") + b.count("v") + b.count("d"); got != 3+2+2+3 {
		t.Errorf("%d platform calls, want 10", got)
	}
}

// TestClientGoneDuringRetryWait: a client that leaves while its throttled
// step waits to be sent again ends its chain (given up, not left active).
func TestClientGoneDuringRetryWait(t *testing.T) {
	b := startScripted(t, map[string][]answer{"e": {lambdaThrottle}})
	ev := &outcomes{ended: map[qos.ChainOutcome]int{}}
	s := qos.New(qos.Config{Limit: 4, QueueCapacity: 100, QueueTimeout: time.Minute, Events: ev})
	t.Cleanup(s.Close)
	p := startProxyWith(t, "http://"+b.addr, s, Config{Platform: invocation.Lambda, MaxBodyBytes: 1 << 20,
		Retry: RetryConfig{MaxAttempts: 5, BaseBackoff: time.Minute, MaxBackoff: time.Minute, MaxElapsed: time.Hour}})
	conn, err := net.Dial("tcp", p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(lambdaInvoke("e", "X-Sequoia-Chain-Id: gone\r\n", "X-Sequoia-Chain-Steps: 2\r\n"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.count("e") == 1 && s.ActiveChains() == 1 })
	conn.Close()
	waitFor(t, func() bool { return s.ActiveChains() == 0 })
	if ev.count(qos.ChainFailed) != 1 {
		t.Errorf("outcomes %v, want the chain failed (its first step never ran)", ev.ended)
	}
}
