package proxy

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// TestSeriesExistAtStart: the retry, overflow and event counters expose a
// zero series for every label value known at start-up, before any
// invocation, so dashboards and rate() alerts see them from the first
// scrape.
func TestSeriesExistAtStart(t *testing.T) {
	m := metrics.New(10)
	up, err := platform.New(platform.Config{URL: "http://127.0.0.1:1", Kind: invocation.OpenWhisk, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	New(Config{Platform: invocation.OpenWhisk}, qos.New(qos.Config{Limit: 1}), up, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]bool{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if got[f.GetName()] == nil {
					got[f.GetName()] = map[string]bool{}
				}
				got[f.GetName()][l.GetValue()] = true
				if v := s.GetCounter().GetValue(); v != 0 {
					t.Errorf("%s{%s} = %v at start", f.GetName(), l.GetValue(), v)
				}
			}
		}
	}
	for name, values := range map[string][]string{
		"sequoia_retries_total": {"throttled_concurrency", "throttled_rate", "throttled_function", "unavailable",
			"unreachable", "timeout"},
		"sequoia_overflow_total":             {"queue_full", "deadline", "unreachable"},
		"sequoia_overflow_failures_total":    {"untranslatable", "throttled", "refused", "unreachable"},
		"sequoia_events_total":               {"accepted", "duplicate", "refused", "too_large", "unavailable", "delivered"},
		"sequoia_events_retried_total":       {"function_error", "throttled_concurrency", "queued", "refused"},
		"sequoia_events_dead_lettered_total": {"RetriesExhausted", "EventAgeExceeded", "Rejected", "Undecodable"},
	} {
		for _, v := range values {
			if !got[name][v] {
				t.Errorf("%s{%q} is not exposed at start", name, v)
			}
		}
	}
}
