package main

import (
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/policy"
)

func TestPolicyStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	codes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sequoia_platform_responses_total"}, []string{"code"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sequoia_queue_wait_by_class_seconds",
		Buckets: []float64{0.01, 0.1, 1}}, []string{"queue", "class"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sequoia_invocation_duration_seconds",
		Buckets: []float64{0.01, 0.1, 1}}, []string{"function"})
	reg.MustRegister(codes, wait, dur)
	p := newPolicyStats(reg)

	codes.WithLabelValues("200").Add(6)
	codes.WithLabelValues("429").Add(3)
	codes.WithLabelValues("503").Add(1)
	for range 98 {
		wait.WithLabelValues("pending", "interactive").Observe(0.005)
	}
	wait.WithLabelValues("chain_running", "interactive").Observe(0.5)
	wait.WithLabelValues("pending", "interactive").Observe(0.5)
	for range 9 {
		dur.WithLabelValues("f").Observe(0.05)
	}
	dur.WithLabelValues("f").Observe(0.5)

	var snap policy.Snapshot
	p.fill(&snap)
	if snap.ThrottleRate != 0.3 || snap.ErrorRate != 0.1 {
		t.Errorf("rates = %v, %v; want 0.3, 0.1", snap.ThrottleRate, snap.ErrorRate)
	}
	if got := snap.Classes["interactive"].WaitP99Ms; got != 1000 {
		t.Errorf("interactive wait p99 = %vms, want 1000 (the bucket of the 99th of 100)", got)
	}
	if f := snap.Functions["f"]; f.P50Ms != 100 || f.P99Ms != 1000 {
		t.Errorf("f = %+v, want p50 100ms, p99 1000ms", f)
	}

	// The next interval sees only what happened since: fast waits, no
	// platform answers.
	for range 10 {
		wait.WithLabelValues("pending", "interactive").Observe(0.005)
	}
	snap = policy.Snapshot{}
	p.fill(&snap)
	if got := snap.Classes["interactive"].WaitP99Ms; got != 10 {
		t.Errorf("interactive wait p99 = %vms, want 10", got)
	}
	if snap.ThrottleRate != 0 || snap.ErrorRate != 0 {
		t.Errorf("rates = %v, %v; want 0 with no answers", snap.ThrottleRate, snap.ErrorRate)
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		buckets map[float64]uint64
		q, want float64
	}{
		{map[float64]uint64{inf: 0}, 0.5, 0},
		{map[float64]uint64{1: 5, 2: 10, inf: 10}, 0.5, 1},
		{map[float64]uint64{1: 5, 2: 10, inf: 10}, 0.51, 2},
		{map[float64]uint64{1: 0, 2: 0, inf: 4}, 0.5, 2}, // beyond the last bound
	} {
		if got := quantile(tc.buckets, tc.q); got != tc.want {
			t.Errorf("quantile(%v, %v) = %v, want %v", tc.buckets, tc.q, got, tc.want)
		}
	}
}
