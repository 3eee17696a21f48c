package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/config"
)

// testReplica is the replica side of a lease manager in these tests: the
// demand the test sets, and the slots the manager applies, added to a sum
// shared by every replica of the test at the moment each is applied, so
// that the sum's peak is the most the platform could have been driven.
type testReplica struct {
	mu       sync.Mutex
	demand   Demand
	slots    int
	sum      *atomic.Int64
	peak     *atomic.Int64
	adaptive int
}

// Demand is what was set, with the slots booked counted as the
// scheduler counts them: at most the slots applied.
func (r *testReplica) Demand() Demand {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.demand
	d.Committed = min(d.Committed, r.slots)
	return d
}

func (r *testReplica) Apply(n int, _ float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.sum.Add(int64(n - r.slots))
	r.slots = n
	for p := r.peak.Load(); v > p && !r.peak.CompareAndSwap(p, v); p = r.peak.Load() {
	}
}

func (r *testReplica) Adaptive() int { return r.adaptive }

func (r *testReplica) Slots() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots
}

func (r *testReplica) set(f func(d *Demand)) {
	r.mu.Lock()
	f(&r.demand)
	r.mu.Unlock()
}

// leaseGroup is replicas sharing one budget on one NATS.
type leaseGroup struct {
	t        *testing.T
	url      string
	budget   int
	ttl      time.Duration
	copies   int // SEQUOIA_NATS_REPLICAS; 0: 1
	sum      atomic.Int64
	peak     atomic.Int64
	replicas []*testReplica
	leases   []*Leases
	engines  []*Engine
}

func newLeaseGroup(t *testing.T, url string, budget int, ttl time.Duration) *leaseGroup {
	return &leaseGroup{t: t, url: url, budget: budget, ttl: ttl}
}

// add starts one more replica and returns its index.
func (g *leaseGroup) add() int {
	g.t.Helper()
	i := len(g.replicas)
	e, err := Start(Options{Config: config.Cluster{Name: "test", NatsURL: g.url, NatsReplicas: max(1, g.copies)}, Replica: fmt.Sprint("r", i)})
	if err != nil {
		g.t.Fatal(err)
	}
	r := &testReplica{sum: &g.sum, peak: &g.peak}
	l := NewLeases(e, LeaseConfig{Budget: g.budget, TTL: g.ttl, Interval: 20 * time.Millisecond}, r, testLog(g.t, i))
	if err := l.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(func() {
		l.Close()
		_ = e.Close()
	})
	g.replicas, g.leases, g.engines = append(g.replicas, r), append(g.leases, l), append(g.engines, e)
	return i
}

// crash stops replica i the way SIGKILL does: no goodbye, no more words.
func (g *leaseGroup) crash(i int) {
	l := g.leases[i]
	l.closeOnce.Do(func() {
		close(l.stop)
		<-l.done
	})
	g.engines[i].nc.Close()
	g.replicas[i].Apply(0, 0) // its invocations ended with it
}

func (g *leaseGroup) slots() []int {
	var out []int
	for _, r := range g.replicas {
		out = append(out, r.Slots())
	}
	return out
}

func (g *leaseGroup) waitFor(what string, cond func(slots []int) bool) {
	g.t.Helper()
	for end := time.Now().Add(time.Minute); !cond(g.slots()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			g.t.Fatalf("never %s: slots %v", what, g.slots())
		}
	}
}

func (g *leaseGroup) checkPeak() {
	g.t.Helper()
	if p := g.peak.Load(); p > int64(g.budget) {
		g.t.Errorf("the replicas held %d slots at once, over the budget of %d", p, g.budget)
	}
}

func sum(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}

// TestLeasesShareAndFollowDemand: three replicas on a three-node NATS
// cluster share the budget evenly while idle; when one gets busy, the
// idle ones' slots move to it (all but one slot each); when it goes idle
// and another gets busy, they move again. At no moment do the replicas
// hold more than the budget between them.
func TestLeasesShareAndFollowDemand(t *testing.T) {
	nc := natstest.StartCluster(t, 3)
	g := newLeaseGroup(t, nc.URL(), 50, 5*time.Second)
	for range 3 {
		g.add()
	}
	g.waitFor("an even split", func(s []int) bool { return sum(s) == 50 && min(s[0], s[1], s[2]) >= 16 })
	g.replicas[1].set(func(d *Demand) { d.InFlight, d.Pending[0] = 16, 300 })
	g.waitFor("the busy replica holding all but the idle ones' floors", func(s []int) bool { return s[1] == 48 })
	g.replicas[1].set(func(d *Demand) { *d = Demand{} })
	g.replicas[2].set(func(d *Demand) { d.Running[1], d.Pending[1] = 10, 100 })
	g.waitFor("the slots moving to the next busy one", func(s []int) bool { return s[2] == 48 && sum(s) == 50 })
	g.checkPeak()
	for i, l := range g.leases {
		st := l.Status()
		if len(st.Replicas) != 3 || st.Budget != 50 || st.Fallback {
			t.Errorf("replica %d status %+v", i, st)
		}
	}
}

// TestLeasesShrinkWaitsForInFlight: a replica whose share shrinks lowers
// its own limit at once but keeps its lease in the table, so no other
// replica uses those slots, until its invocations in flight fit.
func TestLeasesShrinkWaitsForInFlight(t *testing.T) {
	ns := natstest.Start(t)
	g := newLeaseGroup(t, ns.URL(), 20, 5*time.Second)
	g.add()
	g.waitFor("the whole budget alone", func(s []int) bool { return s[0] == 20 })
	g.replicas[0].set(func(d *Demand) { d.InFlight = 20 })
	g.add()
	g.replicas[1].set(func(d *Demand) { d.Pending[0] = 100 })
	// Replica 0's share is now half (it runs 20, replica 1 has 100
	// waiting), but its 20 in flight keep its lease.
	g.waitFor("replica 0 limited to its share", func(s []int) bool { return s[0] == 10 })
	time.Sleep(10 * g.leases[0].cfg.Interval)
	if s := g.slots(); s[1] != 0 {
		t.Fatalf("replica 1 got %d slots while replica 0 still ran 20: %v", s[1], s)
	}
	g.replicas[0].set(func(d *Demand) { d.InFlight = 0 })
	g.waitFor("replica 1 taking the slots given up", func(s []int) bool { return s[1] == 19 })
	g.checkPeak()
}

// TestLeasesCommittedSlotsStay: a replica never shrinks below the slots
// its admitted chains are booked on.
func TestLeasesCommittedSlotsStay(t *testing.T) {
	ns := natstest.Start(t)
	g := newLeaseGroup(t, ns.URL(), 20, 5*time.Second)
	g.add()
	g.waitFor("the whole budget alone", func(s []int) bool { return s[0] == 20 })
	g.replicas[0].set(func(d *Demand) { d.Committed = 12 })
	g.add()
	g.replicas[1].set(func(d *Demand) { d.Pending[0] = 100 })
	g.waitFor("replica 1 getting what is not committed", func(s []int) bool { return s[0] == 12 && s[1] == 8 })
	g.replicas[0].set(func(d *Demand) { d.Committed = 0 })
	g.waitFor("the rest once the bookings pass", func(s []int) bool { return s[0] == 1 && s[1] == 19 })
	g.checkPeak()
}

// TestLeasesReclaimedAfterCrash: a replica that dies without a word loses
// its lease after the TTL, and the others take its slots.
func TestLeasesReclaimedAfterCrash(t *testing.T) {
	ns := natstest.Start(t)
	g := newLeaseGroup(t, ns.URL(), 30, time.Second)
	for range 3 {
		g.add()
	}
	g.waitFor("an even split", func(s []int) bool { return s[0] == 10 && s[1] == 10 && s[2] == 10 })
	g.crash(2)
	g.waitFor("the dead replica's slots shared out", func(s []int) bool { return s[0]+s[1] == 30 })
	g.checkPeak()
	if st := g.leases[0].Status(); len(st.Replicas) != 2 {
		t.Errorf("status lists %d replicas after the crash, want 2: %+v", len(st.Replicas), st.Replicas)
	}
}

// TestLeasesLeaveAtOnce: a replica that shuts down gives its lease back
// at once (here the TTL is a minute: nothing waits for it).
func TestLeasesLeaveAtOnce(t *testing.T) {
	ns := natstest.Start(t)
	g := newLeaseGroup(t, ns.URL(), 30, time.Minute)
	g.add()
	g.add()
	g.waitFor("an even split", func(s []int) bool { return s[0] == 15 && s[1] == 15 })
	g.leases[1].Close()
	g.waitFor("the leaver's slots taken up", func(s []int) bool { return s[0] == 30 })
	g.checkPeak()
}

// TestLeasesFallbackAndRejoin: when NATS goes away, replicas keep their
// leases for the TTL, then fall back to a safe share (the budget over the
// replicas they knew, never more than their lease), say so in their
// status, and take their leases back when NATS returns.
func TestLeasesFallbackAndRejoin(t *testing.T) {
	ns := natstest.Start(t)
	g := newLeaseGroup(t, ns.URL(), 30, time.Second)
	for range 3 {
		g.add()
	}
	g.replicas[0].set(func(d *Demand) { d.Pending[0] = 100 })
	g.waitFor("the busy replica holding most", func(s []int) bool { return s[0] == 28 && s[1] == 1 && s[2] == 1 })
	ns.Stop()
	g.waitFor("safe shares", func(s []int) bool {
		for _, l := range g.leases {
			if st := l.Status(); !st.Fallback || st.FallbackSince.IsZero() {
				return false
			}
		}
		return s[0] == 10 && s[1] == 1 && s[2] == 1
	})
	ns.Restart()
	g.waitFor("the leases back", func(s []int) bool {
		for _, l := range g.leases {
			if l.Status().Fallback {
				return false
			}
		}
		return s[0] == 28 && s[1] == 1 && s[2] == 1
	})
	g.checkPeak()
}

// TestLeasesBucketReplicated: with SEQUOIA_NATS_REPLICAS=3 on a
// three-node NATS cluster the leases live in a bucket of three copies,
// read from its leader.
func TestLeasesBucketReplicated(t *testing.T) {
	nc := natstest.StartCluster(t, 3)
	g := newLeaseGroup(t, nc.URL(), 10, 5*time.Second)
	g.copies = 3
	g.add()
	g.waitFor("a lease", func(s []int) bool { return s[0] == 10 })
	s, err := g.engines[0].js.Stream(context.Background(), "KV_"+g.engines[0].Name("leases"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := s.CachedInfo().Config; cfg.Replicas != 3 || cfg.AllowDirect {
		t.Errorf("leases bucket: %d replicas, direct gets %v; want 3 and no direct gets", cfg.Replicas, cfg.AllowDirect)
	}
}

func testLog(t *testing.T, i int) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", i)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// TestLeasesStandWithoutJetStream: with two of three NATS nodes down,
// JetStream has no quorum and the leases cannot be read, but core NATS
// still carries heartbeats: every replica confirms the others hold the
// leases as it does, so none falls back to a safe share, however long
// that lasts; and when the nodes return, the leases move again.
func TestLeasesStandWithoutJetStream(t *testing.T) {
	nc := natstest.StartCluster(t, 3)
	g := newLeaseGroup(t, nc.URL(), 30, time.Second)
	for range 3 {
		g.add()
	}
	g.replicas[0].set(func(d *Demand) { d.Pending[0] = 100 })
	g.waitFor("the busy replica holding most", func(s []int) bool { return s[0] == 28 && s[1] == 1 && s[2] == 1 })
	nc.Nodes[1].Stop()
	nc.Nodes[2].Stop()
	rounds := int64(3 * g.ttl / (20 * time.Millisecond)) // three TTLs' worth
	g.waitFor("rounds confirmed by the others for three TTLs", func([]int) bool {
		for _, l := range g.leases {
			if l.Status().ConfirmedByPeers < rounds {
				return false
			}
		}
		return true
	})
	for i, l := range g.leases {
		if st := l.Status(); st.Fallback {
			t.Errorf("replica %d fell back while its lease was confirmed", i)
		}
	}
	if s := g.slots(); s[0] != 28 || s[1] != 1 || s[2] != 1 {
		t.Errorf("slots without JetStream %v, want the leases [28 1 1]", s)
	}
	if err := nc.Restart(); err != nil {
		t.Fatal(err)
	}
	g.replicas[0].set(func(d *Demand) { *d = Demand{} })
	g.replicas[2].set(func(d *Demand) { d.Pending[0] = 100 })
	g.waitFor("the leases moving again", func(s []int) bool { return s[2] == 28 })
	g.checkPeak()
}

// TestEffectiveBudgetIsTheMedianView: the budget shared out is the median
// of the replicas' adaptive limits (the higher middle one; none learned
// counts as the budget; a replica not heard within the TTL has no say):
// one replica's view alone does not shrink the cluster's budget, most
// replicas' does.
func TestEffectiveBudgetIsTheMedianView(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		self  int
		peers []int // adaptive limits heard; -1: heard too long ago, with 5
		want  int
	}{
		{0, nil, 50},
		{10, nil, 10},              // alone, its own view
		{10, []int{0, 0}, 50},      // outvoted
		{10, []int{20, 0}, 20},     // the median
		{10, []int{20, 30}, 20},    // all learned less
		{0, []int{5, -1}, 50},      // one replica (the other unheard) has no majority
		{30, []int{5}, 30},         // two replicas: the higher view
		{0, []int{80, 90, 70}, 50}, // views above the budget count as the budget
	} {
		l := &Leases{cfg: LeaseConfig{Budget: 50, TTL: 5 * time.Second}, local: &testReplica{adaptive: tc.self}, peers: map[string]*peer{}}
		for i, a := range tc.peers {
			p := &peer{heard: now}
			p.hb.Adaptive = a
			if a < 0 {
				p.hb.Adaptive, p.heard = 5, now.Add(-time.Minute)
			}
			l.peers[fmt.Sprint("p", i)] = p
		}
		if got := l.effectiveBudgetLocked(now); got != tc.want {
			t.Errorf("self %d, peers %v: effective budget %d, want %d", tc.self, tc.peers, got, tc.want)
		}
	}
}
