package serve

import (
	"iter"
	"maps"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/qos"
)

func TestPolicyStats(t *testing.T) {
	reg := prometheus.NewRegistry()
	codes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sequoia_platform_responses_total"}, []string{"code"})
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sequoia_queue_wait_by_class_seconds",
		Buckets: []float64{0.01, 0.1, 1}}, []string{"queue", "class"})
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sequoia_invocation_duration_seconds",
		Buckets: []float64{0.01, 0.1, 1}}, []string{"function"})
	reg.MustRegister(codes, wait, dur)
	finished := func() iter.Seq2[string, int64] { return maps.All(map[string]int64{"f": 10}) }
	p := newPolicyStats(reg, finished, 1)

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

// TestPolicyStatsFunctions reads sequoia's own collectors (the request
// metrics and the warm pool's cold-start counter) and a real scheduler's
// counts: each function's cold-start rate covers the last interval, and a
// function leaves the snapshot once it has been idle for the window,
// unless it is in flight.
func TestPolicyStatsFunctions(t *testing.T) {
	m := metrics.New(10)
	cold := m.NewWarmPool(func(func(string, int)) {})
	sched := qos.New(qos.Config{Limit: 1, QueueCapacity: 1, QueueTimeout: time.Minute})
	p := newPolicyStats(m.Registry(), sched.FunctionsFinished, 2)
	invoke := func(fn string, n, colds int) {
		f := m.Function([]byte(fn))
		for i := range n {
			// As the proxy does: the scheduler runs it, the warm pool
			// tells a cold start, the request metrics take its duration.
			if _, err := sched.Do(&invocation.Invocation{Function: fn}, nil, nopInvoker{}); err != nil {
				t.Fatal(err)
			}
			if i < colds {
				cold.ColdStart(fn)
			}
			f.Observe(metrics.Forwarded, 30*time.Millisecond)
		}
	}
	// A DAG node's function: the scheduler ran it and the warm pool saw
	// its cold start, but it has no request metrics.
	dagNode := func(fn string) {
		if _, err := sched.Do(&invocation.Invocation{Function: fn}, nil, nopInvoker{}); err != nil {
			t.Fatal(err)
		}
		cold.ColdStart(fn)
	}
	fill := func(inFlight ...string) map[string]policy.FunctionStats {
		snap := policy.Snapshot{Functions: map[string]policy.FunctionStats{}}
		for _, fn := range inFlight {
			snap.Functions[fn] = policy.FunctionStats{InFlight: 1}
		}
		p.fill(&snap)
		return snap.Functions
	}

	invoke("f", 10, 3)
	invoke("g", 4, 0)
	dagNode("node")
	got := fill()
	if f := got["f"]; f.ColdStartRate != 0.3 || f.P50Ms != 32 {
		t.Errorf("f = %+v, want cold-start rate 0.3 and p50 32ms", f)
	}
	if g, ok := got["g"]; !ok || g.ColdStartRate != 0 {
		t.Errorf("g = %+v (present %v), want cold-start rate 0", g, ok)
	}
	if n := got["node"]; n != (policy.FunctionStats{ColdStartRate: 1}) {
		t.Errorf("node = %+v, want cold-start rate 1 and no durations", n)
	}

	// The next interval: f warm, g and node idle (kept: the window is 2
	// refreshes).
	invoke("f", 5, 0)
	got = fill()
	if f := got["f"]; f.ColdStartRate != 0 || f.P50Ms != 32 {
		t.Errorf("second interval: f = %+v, want rate 0, p50 still 32ms", f)
	}
	if _, ok := got["g"]; !ok || len(got) != 3 {
		t.Errorf("second interval: %v, want f, g and node (idle for one refresh)", got)
	}

	// All idle: g and node have been for two refreshes and leave; f is
	// in flight and stays, with its durations; h, in flight and never
	// finished, is there with its count only.
	got = fill("f", "h")
	want := map[string]policy.FunctionStats{
		"f": {InFlight: 1, P50Ms: 32, P99Ms: 32},
		"h": {InFlight: 1},
	}
	if !maps.Equal(got, want) {
		t.Errorf("third interval: %+v, want %+v", got, want)
	}
	// f and h, idle for one refresh after leaving flight, stay; after
	// two refreshes nothing is left.
	if got = fill(); len(got) != 2 || got["f"].P50Ms != 32 {
		t.Errorf("fourth interval: %+v, want f and h", got)
	}
	if got = fill(); len(got) != 0 {
		t.Errorf("fifth interval: %+v, want none", got)
	}
	if len(p.lastSeen) != 0 {
		t.Errorf("state kept for idle functions: %v", p.lastSeen)
	}
}

func TestActiveRefreshes(t *testing.T) {
	for _, tc := range []struct {
		refresh time.Duration
		want    int
	}{{time.Second, 60}, {100 * time.Millisecond, 600}, {7 * time.Second, 9}, {time.Hour, 1}} {
		if got := activeRefreshes(tc.refresh); got != tc.want {
			t.Errorf("activeRefreshes(%v) = %d, want %d", tc.refresh, got, tc.want)
		}
	}
}

// TestPolicySnapshotInFlight: the snapshot of `sequoia serve` counts the
// invocations holding a slot in a real scheduler per function, tenant and
// class, and lists only the functions and tenants that hold one.
func TestPolicySnapshotInFlight(t *testing.T) {
	s := &Server{sched: qos.New(qos.Config{Limit: 3, QueueCapacity: 10, QueueTimeout: time.Minute})}
	iv := holdUntil{entered: make(chan struct{}), release: make(chan struct{})}
	var wg sync.WaitGroup
	do := func(inv invocation.Invocation) {
		wg.Go(func() {
			if _, err := s.sched.Do(&inv, nil, iv); err != nil {
				t.Error(err)
			}
		})
	}
	do(invocation.Invocation{Function: "shop/checkout", Tenant: "shop"})
	do(invocation.Invocation{Function: "shop/checkout", Tenant: "shop"})
	do(invocation.Invocation{Function: "ads/rank", Tenant: "ads", Class: qos.Batch})
	for range 3 {
		<-iv.entered
	}
	do(invocation.Invocation{Function: "ads/rank", Tenant: "ads", Class: qos.Batch}) // queued behind the limit
	for s.sched.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	snap := s.policySnapshot()
	wantF := map[string]policy.FunctionStats{"shop/checkout": {InFlight: 2}, "ads/rank": {InFlight: 1}}
	if !maps.Equal(snap.Functions, wantF) {
		t.Errorf("functions %+v, want %+v", snap.Functions, wantF)
	}
	wantT := map[string]policy.TenantStats{"shop": {InFlight: 2}, "ads": {InFlight: 1}}
	if !maps.Equal(snap.Tenants, wantT) {
		t.Errorf("tenants %+v, want %+v", snap.Tenants, wantT)
	}
	if i, b := snap.Classes["interactive"], snap.Classes["batch"]; i.InFlight != 2 || b.InFlight != 1 || b.Queued != 1 {
		t.Errorf("classes: interactive %+v, batch %+v; want 2 and 1 in flight, 1 batch queued", i, b)
	}
	if snap.InFlight != 3 {
		t.Errorf("in flight %d, want 3", snap.InFlight)
	}
	close(iv.release)
	<-iv.entered // the queued one
	wg.Wait()
	if snap = s.policySnapshot(); len(snap.Functions) != 0 || len(snap.Tenants) != 0 {
		t.Errorf("after: functions %+v, tenants %+v; want none", snap.Functions, snap.Tenants)
	}
}

type nopInvoker struct{}

func (nopInvoker) Invoke(*invocation.Invocation) error { return nil }

// holdUntil says when an invocation enters and holds it until release
// closes.
type holdUntil struct{ entered, release chan struct{} }

func (h holdUntil) Invoke(*invocation.Invocation) error {
	h.entered <- struct{}{}
	<-h.release
	return nil
}

// TestPolicyStatsSeen: the status shows the snapshot the policies last
// read, fair share derived as the engine derives it, at most the busiest
// functions and tenants of it (ties by name), and a copy: changing the
// snapshot after it was handed over does not change what is shown.
func TestPolicyStatsSeen(t *testing.T) {
	p := newPolicyStats(prometheus.NewRegistry(), nil, 1)
	if s := p.seen(10); s != nil {
		t.Fatalf("seen before any snapshot: %+v", s)
	}
	snap := policy.Snapshot{
		InFlight: 9, Limit: 12,
		Queues: map[string]map[string]int{"pending": {"interactive": 2}},
		Functions: map[string]policy.FunctionStats{
			"idle": {}, "b": {InFlight: 3}, "a": {InFlight: 3}, "c": {InFlight: 1}, "big": {InFlight: 2},
		},
		Tenants: map[string]policy.TenantStats{"t1": {InFlight: 1}, "t2": {InFlight: 5}, "t3": {InFlight: 3}},
	}
	before := time.Now()
	p.fill(&snap)
	snap.Functions["a"] = policy.FunctionStats{InFlight: 99}
	snap.Queues["pending"]["interactive"] = 99

	got := p.seen(2)
	if got == nil {
		t.Fatal("no snapshot seen after fill")
	}
	if got.Taken.Before(before) || time.Since(got.Taken) > time.Minute {
		t.Errorf("taken at %v, want just now", got.Taken)
	}
	if got.Functions != 5 || got.Tenants != 3 || got.ShownFunctions != 2 || got.ShownTenants != 2 {
		t.Errorf("counts: %d functions (%d shown), %d tenants (%d shown); want 5 (2), 3 (2)",
			got.Functions, got.ShownFunctions, got.Tenants, got.ShownTenants)
	}
	s := got.Snapshot
	if !maps.Equal(s.Functions, map[string]policy.FunctionStats{"a": {InFlight: 3}, "b": {InFlight: 3}}) {
		t.Errorf("functions shown %v, want a and b with 3 in flight each", s.Functions)
	}
	if !maps.Equal(s.Tenants, map[string]policy.TenantStats{"t2": {InFlight: 5}, "t3": {InFlight: 3}}) {
		t.Errorf("tenants shown %v, want t2 and t3", s.Tenants)
	}
	if s.InFlight != 9 || s.Limit != 12 || s.Queues["pending"]["interactive"] != 2 {
		t.Errorf("snapshot %+v, want what fill handed over", s)
	}
	if s.FairShare != 4 {
		t.Errorf("fair share %v, want 12/3 tenants = 4 (before the list is bounded)", s.FairShare)
	}
	if all := p.seen(100); all.ShownFunctions != 5 || all.Snapshot.Functions["a"].InFlight != 3 {
		t.Errorf("seen(100) = %+v, want all 5 functions as handed over", all)
	}
}

// TestPolicyStatsSeenConcurrent: status readers run while the engine
// refreshes (run with -race).
func TestPolicyStatsSeenConcurrent(t *testing.T) {
	p := newPolicyStats(prometheus.NewRegistry(), nil, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			snap := policy.Snapshot{Functions: map[string]policy.FunctionStats{"f": {InFlight: i}, "g": {}},
				Tenants: map[string]policy.TenantStats{"t": {InFlight: i}}}
			p.fill(&snap)
			snap.Functions["f"] = policy.FunctionStats{}
		}
	})
	wg.Go(func() {
		for range 200 {
			if s := p.seen(1); s != nil && len(s.Snapshot.Functions) != 1 {
				t.Errorf("%d functions shown, want 1", len(s.Snapshot.Functions))
			}
		}
	})
	wg.Wait()
}
