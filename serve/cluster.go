package serve

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/proxy"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/qos/adaptive"
)

// clusterParts is cluster mode wired in, on the server's NATS engine
// (embedded, or the cluster's): the lease of the platform budget (one code path alone or
// not: alone, the lease is the whole budget), the chains other replicas
// admitted (an external NATS only: alone, no one else admits any) and the
// shared estimates.
type clusterParts struct {
	local  *localReplica
	leases *cluster.Leases
	chains *cluster.Chains // nil with the embedded server
	shared *cluster.Shared
}

// estimatesEvery is how often a replica shares its estimates (a variable
// for tests).
var estimatesEvery = 5 * time.Second

// estimatesShared bounds the functions a replica shares estimates of.
const estimatesShared = 500

// originOf is the hex digits of a chain-id prefix ("sq-<16 hex>-").
func originOf(prefix string) string {
	return strings.TrimSuffix(strings.TrimPrefix(prefix, "sq-"), "-")
}

// startCluster starts the leases, the chains and the sharing on s.engine.
// The scheduler starts with no slots: the first round of the leases gives
// it its lease (alone, the whole budget).
func (s *Server) startCluster() error {
	c := &s.cl
	c.local.Apply(0, 0)
	cc := s.cfg.Cluster
	c.leases = cluster.NewLeases(s.engine, cluster.LeaseConfig{
		Budget: s.cfg.Limits.MaxConcurrency, Rate: s.cfg.Scheduling.MaxRate,
		TTL: cc.LeaseTTL, Interval: cc.LeaseInterval,
		Origin: originOf(s.sched.ChainIDs().Prefix()),
	}, c.local, s.log)
	c.local.peers = c.leases
	if c.chains != nil {
		c.chains.SetOrigin(originOf(s.sched.ChainIDs().Prefix()))
		if err := c.chains.Start(cc.LeaseTTL); err != nil {
			return err
		}
		s.metrics.Registry().MustRegister(c.chains.Collectors()...)
	} else {
		s.metrics.Registry().MustRegister(cluster.ChainCollectors()...)
	}
	if err := c.leases.Start(); err != nil {
		return err
	}
	c.shared = cluster.NewShared(s.engine, learner{s}, estimatesEvery, s.log)
	c.shared.Start(time.Second)
	s.metrics.Registry().MustRegister(s.engine.Collectors()...)
	s.metrics.Registry().MustRegister(cluster.NewCollector(s.engine, c.leases))
	return nil
}

// stopCluster leaves the cluster (the lease goes back at once) and stops
// sending reports and estimates; the engine stays open. Call it once the
// scheduler is done.
func (s *Server) stopCluster() {
	c := &s.cl
	if c.leases != nil {
		c.leases.Close()
	}
	if c.chains != nil {
		c.chains.Close()
	}
	if c.shared != nil {
		c.shared.Close()
	}
}

// readyOnceJoined makes the admin port ready once the replica has a
// lease (at once alone, or when NATS answered the first round), so that a
// replica started while NATS is unreachable takes no traffic it could not
// serve.
func (s *Server) readyOnceJoined(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !s.cl.leases.Joined() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	s.admin.SetReady(true)
}

// clusterStatus is the cluster's part of /sequoia/v1/status.
type clusterStatus struct {
	cluster.Status
	Leases *cluster.LeaseStatus `json:"leases,omitempty"`
	// NATSOperations counts the NATS operations made, on requests' path
	// and in the background.
	NATSOperations map[string]float64 `json:"nats_operations"`
}

func (s *Server) clusterStatus() clusterStatus {
	c := &s.cl
	st := clusterStatus{Status: s.engine.Status(), NATSOperations: map[string]float64{
		cluster.PathRequest:    s.engine.Ops(cluster.PathRequest),
		cluster.PathBackground: s.engine.Ops(cluster.PathBackground),
	}}
	if c.leases != nil {
		ls := c.leases.Status()
		st.Leases = &ls
	}
	return st
}

// localReplica is this replica as the leases see it: the scheduler's
// demand, and where a lease is applied. The scheduler's limit is the
// lease, capped by the adaptive limit (what the platform was found to
// take: the lease is its cap, SetCap) unless the other replicas outvoted
// it (ownLimit), less the slots held for background work; the rate is the
// lease's share of SEQUOIA_MAX_RATE.
type localReplica struct {
	sched *qos.Scheduler
	lim   *adaptive.Limit // nil when SEQUOIA_ADAPTIVE is off
	peers peersView       // the leases; nil until they start

	mu    sync.Mutex
	slots int
	rate  float64
}

// Demand implements cluster.Local.
func (l *localReplica) Demand() cluster.Demand {
	return cluster.Demand{
		InFlight: l.sched.InFlight(),
		Running: [2]int{l.sched.Depth(qos.ChainRunning, qos.Interactive),
			l.sched.Depth(qos.ChainRunning, qos.Batch)},
		Pending: [2]int{l.sched.Depth(qos.Pending, qos.Interactive),
			l.sched.Depth(qos.Pending, qos.Batch)},
		Committed: l.sched.Committed(),
	}
}

// Apply implements cluster.Local.
func (l *localReplica) Apply(slots int, rate float64) {
	l.mu.Lock()
	l.slots, l.rate = slots, rate
	lim := l.lim
	if lim == nil {
		l.applyLocked()
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	lim.SetCap(max(slots, 1)) // applies through SetLimit, which holds it to slots
}

// Adaptive implements cluster.Local: the adaptive limit once it has found
// something of the platform's; 0 while it still grows from its start (a
// replica just started must not pull the others' budget down to its
// SEQUOIA_ADAPTIVE_INITIAL), and while a queueing cut waits to be
// verified: latency that rose because the platform slowed for every call
// (its CPU, cold instances), not because it queues, undoes the cut within
// a window or two, and until then the cut is this replica's guess, which
// must not shrink the whole cluster's budget.
func (l *localReplica) Adaptive() int {
	if l.lim == nil {
		return 0
	}
	if st := l.lim.Status(); !st.SlowStart && !st.Verifying {
		return st.Limit
	}
	return 0
}

// SetLimit is where the adaptive limit applies its own (already capped by
// the lease): held to the lease, which may be 0 (the adaptive limit's
// floor is 1).
func (l *localReplica) SetLimit(int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applyLocked()
}

// InFlight is the cluster's invocations in flight, for the adaptive
// limit: this replica's now and the others' as last heard (its limit is
// its view of the platform's, which they share).
func (l *localReplica) InFlight() int {
	n := l.sched.InFlight()
	if l.peers != nil {
		n += l.peers.ClusterInFlight()
	}
	return n
}

// applyLocked sets the scheduler's limit and rate. REQUIRES: l.mu held.
func (l *localReplica) applyLocked() {
	n := l.slots
	if l.lim != nil && n > 0 {
		n = min(n, l.ownLimit())
	}
	l.sched.SetLimit(n)
	if l.rate > 0 {
		l.sched.SetRate(l.rate)
	}
}

// ownLimit is what this replica's adaptive limit allows it (less the
// background holds). A limit that still grows in slow start, or a cut
// still being verified, holds. A standing cut that the other replicas
// outvoted does not: the cluster's budget, the median of the replicas'
// views, is above it, so most of them find the platform takes more. Such
// a cut is one replica's misreading (its own CPU starved, cold instances
// whose end seemed to verify it); held to it, the replica would sit on a
// lease it cannot use while its share of the chains waits. The leases
// still never sum above the cluster's budget.
func (l *localReplica) ownLimit() int {
	if a := l.Adaptive(); a > 0 && l.peers != nil && a < l.peers.EffectiveBudget() {
		return max(1, l.slots-l.lim.Held())
	}
	return l.lim.Effective()
}

// peersView is what the leases (cluster.Leases) tell a replica of the
// others: their invocations in flight, as last heard, and the budget
// shared out, the median of everyone's view of the platform.
type peersView interface {
	ClusterInFlight() int
	EffectiveBudget() int
}

// learner is what this replica learned, shared with the others.
type learner struct{ s *Server }

// Learned implements cluster.Learner.
func (l learner) Learned() cluster.Learned {
	est := l.s.sched.Estimates(estimatesShared)
	out := cluster.Learned{SlotNs: int64(est.Slot), TurnaroundNs: int64(est.Turnaround),
		Functions: map[string]cluster.FunctionLore{}, ReservedCaps: l.s.proxy.LearnedCaps()}
	for name, f := range est.Functions {
		out.Functions[name] = cluster.FunctionLore{SlotNs: int64(f.Slot), Steps: f.Steps}
	}
	return out
}

// Learn implements cluster.Learner: what another replica learned seeds
// what this one has not.
func (l learner) Learn(from cluster.Learned) {
	l.s.sched.Seed(time.Duration(from.SlotNs), time.Duration(from.TurnaroundNs),
		func(yield func(string, qos.FunctionEstimate) bool) {
			for name, f := range from.Functions {
				if !yield(name, qos.FunctionEstimate{Slot: time.Duration(f.SlotNs), Steps: f.Steps}) {
					return
				}
			}
		})
	for fn, n := range from.ReservedCaps {
		l.s.proxy.AdoptCap(fn, n)
	}
}

// Interface guards.
var (
	_ cluster.Local   = (*localReplica)(nil)
	_ cluster.Learner = learner{}
	_ proxy.Cluster   = (*cluster.Chains)(nil)
)
