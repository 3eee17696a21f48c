package proxy

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
)

// TestRelayedThrottleCounting: a throttle the retries did not absorb
// reaches the client and is counted as platform_throttled, not forwarded;
// sequoia_platform_responses_total counts the answer each client got and
// sequoia_platform_attempts_total every attempt; the adaptive limit hears
// a latency sample for a 2xx only.
func TestRelayedThrottleCounting(t *testing.T) {
	b := startScripted(t, map[string][]answer{
		"always":    {lambdaThrottle},
		"throttled": {lambdaThrottle, ok200},
		"fnerror":   {functionError},
	})
	fb := &fakeFeedback{}
	addr, _, p := startRetryProxyP(t, invocation.Lambda, "http://"+b.addr, 4,
		RetryConfig{MaxAttempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, fb)
	for fn, want := range map[string]int{"always": 429, "throttled": 200, "fnerror": 200} {
		if resp := rawRequest(t, addr, lambdaInvoke(fn)); resp.StatusCode() != want {
			t.Errorf("%s: status %d, want %d", fn, resp.StatusCode(), want)
		}
	}
	for name, want := range map[string]float64{
		`sequoia_requests_total{function="always",outcome="platform_throttled"}`: 1,
		`sequoia_requests_total{function="always",outcome="forwarded"}`:          0,
		`sequoia_requests_total{function="throttled",outcome="forwarded"}`:       1,
		`sequoia_requests_total{function="fnerror",outcome="forwarded"}`:         1,
		`sequoia_platform_responses_total{code="429"}`:                           1, // the answer "always" got
		`sequoia_platform_responses_total{code="200"}`:                           2,
		`sequoia_platform_attempts_total{result="throttled_concurrency"}`:        4, // 3 of "always", 1 of "throttled"
		`sequoia_platform_attempts_total{result="done"}`:                         1,
		`sequoia_platform_attempts_total{result="function_error"}`:               1,
		`sequoia_platform_attempts_total{result="unreachable"}`:                  0,
		`sequoia_platform_attempts_total{result="throttled_rate"}`:               0,
		`sequoia_platform_attempts_total{result="throttled_function"}`:           0,
		`sequoia_platform_attempts_total{result="accepted"}`:                     0,
		`sequoia_platform_attempts_total{result="unavailable"}`:                  0,
		`sequoia_platform_attempts_total{result="timeout"}`:                      0,
		`sequoia_platform_attempts_total{result="error"}`:                        0,
	} {
		if got := sample(t, p, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if th, su, lat := fb.throttles.Load(), fb.successes.Load(), fb.latencies.Load(); th != 4 || su != 2 || lat != 1 {
		t.Errorf("feedback: %d throttles, %d successes, %d latency samples; want 4, 2 and 1 (the function error's latency is not a run's)", th, su, lat)
	}
}

// sample reads one series' value from p's registry by its text form.
func sample(t *testing.T, p *Proxy, series string) float64 {
	t.Helper()
	name, _, _ := strings.Cut(series, "{")
	mfs, err := p.m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var b strings.Builder
			b.WriteString(name + "{")
			for i, l := range m.GetLabel() {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(l.GetName() + `="` + l.GetValue() + `"`)
			}
			b.WriteString("}")
			if b.String() == series {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// TestThrottleEpisodeLoggedOnce: many throttles within the quiet period
// make one log line with their counts; a throttle after it starts
// another.
func TestThrottleEpisodeLoggedOnce(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	now := time.Unix(1000, 0)
	var clock sync.Mutex
	lim := 50
	e := newThrottleEpisodes(log, time.Hour, func() int { return lim }) // the timer never fires in the test
	e.now = func() time.Time { clock.Lock(); defer clock.Unlock(); return now }
	for i := range 30 {
		lim = 50 - i
		e.throttled(platform.ThrottledConcurrency)
	}
	e.throttled(platform.ThrottledRate)
	e.relayed()
	e.relayed()
	clock.Lock()
	now = now.Add(2 * time.Hour)
	clock.Unlock()
	e.check() // quiet long enough: the episode ends
	e.check() // nothing open: nothing logged
	lim = 20
	e.throttled(platform.ThrottledFunction)
	e.flush()
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2 (one per episode):\n%s", len(lines), out)
	}
	for _, want := range []string{"level=WARN", "concurrency=30", "rate=1", "function=0", "relayed_to_clients=2", "limit_before=50", "limit_least=21", "lasted=0s"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first episode %q lacks %s", lines[0], want)
		}
	}
	for _, want := range []string{"level=INFO", "concurrency=0", "function=1", "relayed_to_clients=0"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("second episode %q lacks %s", lines[1], want)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
