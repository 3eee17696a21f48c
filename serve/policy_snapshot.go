package serve

import (
	"cmp"
	"iter"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sequoia-qos/sequoia/policy"
)

// policyStats derives the snapshot's rates and percentiles from sequoia's
// own Prometheus collectors and the scheduler's counts, once per
// SEQUOIA_POLICY_REFRESH. Rates, queue waits and cold-start rates cover
// the last interval (live conditions); per-function durations are
// cumulative (a property of the function).
//
// The snapshot holds only the functions active of late: in flight now, or
// with invocations finished within the last window refreshes (a minute in
// `sequoia serve`). Its state is a few entries per function, which
// SEQUOIA_MAX_FUNCTIONS bounds.
//
// It is called from one goroutine at a time (the engine's refresh).
type policyStats struct {
	reg       prometheus.Gatherer
	prevCodes map[string]float64
	prevWait  map[string]map[float64]uint64 // class → upper bound → cumulative count

	// finished yields each function's invocations finished so far: the
	// scheduler's count, which covers proxy requests, Lambda Events and
	// DAG nodes alike (the warm pool counts cold starts for all three;
	// the request metrics see only the first).
	finished  func() iter.Seq2[string, int64]
	window    uint64             // refreshes a function stays after its last activity
	tick      uint64             // refreshes so far
	lastSeen  map[string]uint64  // function → the last refresh it was active in
	prevCalls map[string]int64   // function → invocations finished so far
	prevCold  map[string]float64 // function → cold starts counted so far

	// last is the snapshot last handed to the policies, for
	// /sequoia/v1/status; written by fill, read by seen.
	last atomic.Pointer[takenSnapshot]
}

// takenSnapshot is a snapshot as the policies read it, and when.
type takenSnapshot struct {
	at   time.Time
	snap policy.Snapshot
}

// activeWindow is how long a function stays in the snapshot after its
// last invocation.
const activeWindow = time.Minute

// activeRefreshes is activeWindow in refreshes of the given interval.
func activeRefreshes(refresh time.Duration) int {
	if refresh <= 0 {
		return 1
	}
	return max(1, int((activeWindow+refresh-1)/refresh))
}

// newPolicyStats reads reg and finished (nil: no function is active but
// those in flight); a function stays in the snapshot for window refreshes
// after its last activity (at least 1: the refresh it was active in).
func newPolicyStats(reg prometheus.Gatherer, finished func() iter.Seq2[string, int64], window int) *policyStats {
	return &policyStats{
		reg: reg, prevCodes: map[string]float64{}, prevWait: map[string]map[float64]uint64{},
		finished: finished, window: uint64(max(window, 1)), lastSeen: map[string]uint64{},
		prevCalls: map[string]int64{}, prevCold: map[string]float64{},
	}
}

// fill adds throttle and error rates, per-class queue wait p99 and, for
// the functions active of late, p50/p99 durations and cold-start rates to
// snap. snap.Functions may already hold the functions in flight.
func (p *policyStats) fill(snap *policy.Snapshot) {
	defer p.record(snap)
	families, err := p.reg.Gather()
	if err != nil && len(families) == 0 {
		return
	}
	p.tick++
	var dur, cold *dto.MetricFamily
	for _, mf := range families {
		switch mf.GetName() {
		case "sequoia_platform_responses_total":
			p.rates(mf, snap)
		case "sequoia_queue_wait_by_class_seconds":
			p.waits(mf, snap)
		case "sequoia_invocation_duration_seconds":
			dur = mf
		case "sequoia_cold_starts_total":
			cold = mf
		}
	}
	p.functions(dur, cold, snap)
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

// functions adds the per-function figures of the functions active of late:
// p50/p99 durations from the request metrics, and the cold-start rate,
// the warm pool's cold starts per invocation finished in the interval (0
// without SEQUOIA_PREWARM, which detects them). dur and cold may be nil.
func (p *policyStats) functions(dur, cold *dto.MetricFamily, snap *policy.Snapshot) {
	if snap.Functions == nil {
		snap.Functions = map[string]policy.FunctionStats{}
	}
	for fn := range snap.Functions {
		p.lastSeen[fn] = p.tick // in flight
	}
	calls := map[string]int64{}
	if p.finished != nil {
		for fn, n := range p.finished() {
			if d := n - p.prevCalls[fn]; d > 0 {
				calls[fn] = d
				p.lastSeen[fn] = p.tick
			}
			p.prevCalls[fn] = n
		}
	}
	colds := map[string]float64{}
	for _, m := range cold.GetMetric() {
		fn, n := label(m, "function"), m.GetCounter().GetValue()
		colds[fn] = n - p.prevCold[fn]
		p.prevCold[fn] = n
	}
	durs := map[string]*dto.Histogram{}
	for _, m := range dur.GetMetric() {
		durs[label(m, "function")] = m.GetHistogram()
	}
	for fn, last := range p.lastSeen {
		if p.tick-last >= p.window {
			delete(p.lastSeen, fn)
			continue
		}
		fs := snap.Functions[fn]
		if h := durs[fn]; h.GetSampleCount() > 0 {
			buckets := map[float64]uint64{math.Inf(1): h.GetSampleCount()}
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			fs.P50Ms, fs.P99Ms = quantile(buckets, 0.5)*1000, quantile(buckets, 0.99)*1000
		}
		if n := calls[fn]; n > 0 {
			// The warm pool counts a cold start just after its
			// invocation finishes, so a refresh between the two can
			// see more cold starts than invocations.
			fs.ColdStartRate = min(1, max(0, colds[fn])/float64(n))
		}
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

// record keeps a copy of snap, which the engine is about to read, for
// seen. Once per refresh; the copy keeps a later change to snap's maps
// from racing with a status reader.
func (p *policyStats) record(snap *policy.Snapshot) {
	c := *snap
	c.Classes, c.Functions, c.Tenants = maps.Clone(c.Classes), maps.Clone(c.Functions), maps.Clone(c.Tenants)
	c.Queues = maps.Clone(c.Queues)
	for k, v := range c.Queues {
		c.Queues[k] = maps.Clone(v)
	}
	c.Derive() // as the engine does, so that fair_share shows here too
	p.last.Store(&takenSnapshot{at: time.Now(), snap: c})
}

// policySeen is the policy_snapshot section of /sequoia/v1/status: the
// live snapshot the policies last read (input.snapshot), with at most a
// bound of its functions and tenants, the busiest first.
type policySeen struct {
	Taken time.Time `json:"taken_at"`
	// Functions and Tenants count those the snapshot holds; the
	// snapshot's maps list Shown* of them: the most in flight, then by
	// name.
	Functions      int             `json:"functions"`
	Tenants        int             `json:"tenants"`
	ShownFunctions int             `json:"shown_functions"`
	ShownTenants   int             `json:"shown_tenants"`
	Snapshot       policy.Snapshot `json:"snapshot"`
}

// seen is the snapshot the policies last read, with at most limit
// functions and limit tenants; nil before the first. For status readers:
// it sorts every function of the snapshot.
func (p *policyStats) seen(limit int) *policySeen {
	if p == nil {
		return nil
	}
	t := p.last.Load()
	if t == nil {
		return nil
	}
	s := &policySeen{Taken: t.at.UTC(), Functions: len(t.snap.Functions), Tenants: len(t.snap.Tenants), Snapshot: t.snap}
	s.Snapshot.Functions = busiest(t.snap.Functions, limit, func(f policy.FunctionStats) int { return f.InFlight })
	s.Snapshot.Tenants = busiest(t.snap.Tenants, limit, func(t policy.TenantStats) int { return t.InFlight })
	s.ShownFunctions, s.ShownTenants = len(s.Snapshot.Functions), len(s.Snapshot.Tenants)
	return s
}

// busiest is the at most limit entries of m with the most in flight (ties
// by name), as a new map; m itself when it is within the bound.
func busiest[V any](m map[string]V, limit int, inFlight func(V) int) map[string]V {
	if len(m) <= limit {
		return m
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(inFlight(m[b]), inFlight(m[a])), cmp.Compare(a, b))
	})
	out := make(map[string]V, max(limit, 0))
	for _, k := range keys[:max(limit, 0)] {
		out[k] = m[k]
	}
	return out
}
