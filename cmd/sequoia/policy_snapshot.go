package main

import (
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sequoia-qos/sequoia/policy"
)

// policyStats derives the snapshot's rates and percentiles from sequoia's
// own Prometheus collectors, once per SEQUOIA_POLICY_REFRESH. Rates and
// queue waits cover the last interval (live conditions); per-function
// durations are cumulative (a property of the function).
//
// It is called from one goroutine at a time (the engine's refresh).
type policyStats struct {
	reg       prometheus.Gatherer
	prevCodes map[string]float64
	prevWait  map[string]map[float64]uint64 // class → upper bound → cumulative count
}

func newPolicyStats(reg prometheus.Gatherer) *policyStats {
	return &policyStats{reg: reg, prevCodes: map[string]float64{}, prevWait: map[string]map[float64]uint64{}}
}

// fill adds throttle and error rates, per-class queue wait p99 and
// per-function p50/p99 durations to snap.
func (p *policyStats) fill(snap *policy.Snapshot) {
	families, err := p.reg.Gather()
	if err != nil && len(families) == 0 {
		return
	}
	for _, mf := range families {
		switch mf.GetName() {
		case "sequoia_platform_responses_total":
			p.rates(mf, snap)
		case "sequoia_queue_wait_by_class_seconds":
			p.waits(mf, snap)
		case "sequoia_invocation_duration_seconds":
			durations(mf, snap)
		}
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (p *policyStats) rates(mf *dto.MetricFamily, snap *policy.Snapshot) {
	var total, throttled, failed float64
	for _, m := range mf.GetMetric() {
		code := label(m, "code")
		v := m.GetCounter().GetValue()
		d := v - p.prevCodes[code]
		p.prevCodes[code] = v
		total += d
		if n, err := strconv.Atoi(code); err == nil {
			switch {
			case n == 429:
				throttled += d
			case n >= 500:
				failed += d
			}
		}
	}
	if total > 0 {
		snap.ThrottleRate, snap.ErrorRate = throttled/total, failed/total
	}
}

func (p *policyStats) waits(mf *dto.MetricFamily, snap *policy.Snapshot) {
	// Both queues of a class together, as cumulative bucket counts.
	now := map[string]map[float64]uint64{}
	for _, m := range mf.GetMetric() {
		class := label(m, "class")
		if now[class] == nil {
			now[class] = map[float64]uint64{}
		}
		for _, b := range m.GetHistogram().GetBucket() {
			now[class][b.GetUpperBound()] += b.GetCumulativeCount()
		}
		now[class][math.Inf(1)] += m.GetHistogram().GetSampleCount()
	}
	for class, buckets := range now {
		delta := map[float64]uint64{}
		for ub, c := range buckets {
			delta[ub] = c - p.prevWait[class][ub]
		}
		p.prevWait[class] = buckets
		cs := snap.Classes[class]
		cs.WaitP99Ms = quantile(delta, 0.99) * 1000
		if snap.Classes == nil {
			snap.Classes = map[string]policy.ClassStats{}
		}
		snap.Classes[class] = cs
	}
}

func durations(mf *dto.MetricFamily, snap *policy.Snapshot) {
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		if h.GetSampleCount() == 0 {
			continue
		}
		buckets := map[float64]uint64{math.Inf(1): h.GetSampleCount()}
		for _, b := range h.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		fn := label(m, "function")
		if snap.Functions == nil {
			snap.Functions = map[string]policy.FunctionStats{}
		}
		fs := snap.Functions[fn]
		fs.P50Ms, fs.P99Ms = quantile(buckets, 0.5)*1000, quantile(buckets, 0.99)*1000
		snap.Functions[fn] = fs
	}
}

// quantile is the upper bound of the first bucket holding the q-th
// observation (0 with none); past the last finite bound it is that bound.
func quantile(cumulative map[float64]uint64, q float64) float64 {
	total := cumulative[math.Inf(1)]
	if total == 0 {
		return 0
	}
	bounds := make([]float64, 0, len(cumulative))
	for ub := range cumulative {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	rank := uint64(math.Ceil(q * float64(total)))
	last := 0.0
	for _, ub := range bounds {
		if math.IsInf(ub, 1) {
			break
		}
		last = ub
		if cumulative[ub] >= rank {
			return ub
		}
	}
	return last
}
