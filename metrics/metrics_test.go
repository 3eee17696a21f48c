package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type gauges struct{}

func (gauges) InFlight() int { return 3 }
func (gauges) Queued() int   { return 7 }
func (gauges) Limit() int    { return 20 }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestRecordsAndBounds(t *testing.T) {
	m := New(2)
	m.WatchScheduler(gauges{})
	m.Function([]byte("a")).Observe(Forwarded, 10*time.Millisecond)
	m.Function([]byte("a")).Count(QueueFull)
	m.Function([]byte("b")).Count(ClientGone)
	m.Function([]byte("c")).Count(QueueTimeout) // past the bound of 2
	m.PlatformStatus(429)
	m.PlatformStatus(429)
	m.PlatformStatus(7) // nonsense codes are counted as 0
	m.Reject(BodyTooLarge)
	m.QueueWait(time.Millisecond)
	out := scrape(t, m)
	for _, want := range []string{
		`sequoia_requests_total{function="a",outcome="forwarded"} 1`,
		`sequoia_requests_total{function="a",outcome="queue_full"} 1`,
		`sequoia_requests_total{function="b",outcome="client_gone"} 1`,
		`sequoia_requests_total{function="_other",outcome="queue_timeout"} 1`,
		`sequoia_platform_responses_total{code="429"} 2`,
		`sequoia_platform_responses_total{code="0"} 1`,
		`sequoia_rejected_requests_total{reason="body_too_large"} 1`,
		`sequoia_invocation_duration_seconds_count{function="a"} 1`,
		`sequoia_queue_wait_seconds_count 1`,
		`sequoia_in_flight 3`, `sequoia_queue_depth 7`, `sequoia_concurrency_limit 20`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(out, `function="c"`) {
		t.Error("a function past the bound got its own series")
	}
}

func BenchmarkRecord(b *testing.B) {
	m := New(10)
	name := []byte("guest/hello")
	b.ReportAllocs()
	for b.Loop() {
		f := m.Function(name)
		f.Observe(Forwarded, time.Millisecond)
		m.QueueWait(0)
		m.PlatformStatus(200)
	}
}
