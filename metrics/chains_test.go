package metrics

import (
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/qos"
)

type fakeChainSource struct{}

func (fakeChainSource) Depth(k qos.QueueKind, c uint8) int { return 10*int(k) + int(c) + 1 }
func (fakeChainSource) ActiveChains() int                  { return 7 }
func (fakeChainSource) Headroom() float64                  { return 0.08 }

func TestChainMetrics(t *testing.T) {
	m := New(10)
	c := m.NewChains()
	m.WatchChains(fakeChainSource{})
	c.ChainStarted(qos.Interactive)
	c.ChainStarted(qos.Batch)
	c.ChainRefused(qos.Batch)
	c.ChainEnded(qos.ChainEnd{Class: qos.Interactive, Outcome: qos.ChainCompleted, Predicted: 100 * time.Millisecond, Actual: 120 * time.Millisecond})
	c.ChainEnded(qos.ChainEnd{Class: qos.Batch, Outcome: qos.ChainDropped, Predicted: time.Second, Actual: 2 * time.Second})
	c.ChainEnded(qos.ChainEnd{Class: qos.Batch, Outcome: qos.ChainLate, Predicted: time.Second, Actual: 2 * time.Second})
	c.ChainEnded(qos.ChainEnd{Class: qos.Batch, Outcome: qos.ChainLate, Predicted: time.Second, Actual: 2 * time.Second})
	c.ChainEnded(qos.ChainEnd{Class: qos.Interactive, Outcome: qos.ChainGone, Predicted: time.Second, Actual: 2 * time.Second})
	c.Waited(qos.ChainRunning, qos.Interactive, 5*time.Millisecond)
	c.ChainStarted(200) // out of range: counted as the last class, no panic

	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	// counter reads name{class, reason}; reason "" for a series without.
	counter := func(name, class, reason string) float64 {
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, mm := range mf.GetMetric() {
				l := mm.GetLabel()
				if l[0].GetValue() == class && (reason == "" || len(l) > 1 && l[1].GetValue() == reason) {
					return mm.GetCounter().GetValue()
				}
			}
		}
		return -1
	}
	for _, tt := range []struct {
		name, class, reason string
		want                float64
	}{
		{"sequoia_chains_started_total", "interactive", "", 1},
		{"sequoia_chains_started_total", "batch", "", 2},
		{"sequoia_chains_refused_total", "batch", "", 1},
		{"sequoia_chains_refused_total", "interactive", "", 0},
		{"sequoia_chains_dropped_total", "batch", "deadline", 1},
		{"sequoia_chains_dropped_total", "batch", "late", 2},
		{"sequoia_chains_dropped_total", "batch", "client_gone", 0},
		{"sequoia_chains_dropped_total", "interactive", "client_gone", 1},
		{"sequoia_chains_completed_total", "interactive", "", 1},
		{"sequoia_chains_failed_total", "interactive", "", 0},
	} {
		if got := counter(tt.name, tt.class, tt.reason); got != tt.want {
			t.Errorf("%s{class=%q, reason=%q} = %v, want %v", tt.name, tt.class, tt.reason, got, tt.want)
		}
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "sequoia_active_chains":
			found["active"] = mf.GetMetric()[0].GetGauge().GetValue() == 7
		case "sequoia_admission_headroom_ratio":
			found["headroom"] = mf.GetMetric()[0].GetGauge().GetValue() == 0.08
		case "sequoia_chain_estimate_ratio":
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "interactive" {
					h := mm.GetHistogram()
					found["ratio"] = h.GetSampleCount() == 1 && h.GetSampleSum() > 1.19 && h.GetSampleSum() < 1.21
				}
			}
		case "sequoia_queue_depth_by_class":
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "batch" && mm.GetLabel()[1].GetValue() == "pending" { // labels sort by name: class, queue
					found["depth"] = mm.GetGauge().GetValue() == 12
				}
			}
		case "sequoia_queue_wait_by_class_seconds":
			for _, mm := range mf.GetMetric() {
				if mm.GetLabel()[0].GetValue() == "interactive" && mm.GetLabel()[1].GetValue() == "chain_running" {
					found["wait"] = mm.GetHistogram().GetSampleCount() == 1
				}
			}
		}
	}
	for _, k := range []string{"ratio", "depth", "wait", "active", "headroom"} {
		if !found[k] {
			t.Errorf("%s series missing or wrong", k)
		}
	}
}
