package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Leases shares the platform budget (SEQUOIA_MAX_CONCURRENCY, and
// SEQUOIA_MAX_RATE in proportion) between the replicas of a cluster, in
// the background: a request never waits on it.
//
// The leases are one document in a key-value bucket ("table": replica ->
// slots), changed only by compare-and-set on its revision, and never to a
// sum above the budget. Each replica changes only its own entry and keeps
// the rule that its entry is never below what it uses: to shrink, it
// lowers its own limit first and writes the lower lease once its
// invocations in flight fit (and never below the slots its admitted
// chains are booked on); to grow, it writes the higher lease first and
// uses it after. So the platform never sees more than the budget, also
// while leases move.
//
// Each replica publishes a heartbeat every interval (core NATS: its
// demand by urgency, its lease, its adaptive limit) and computes every
// replica's share from the heartbeats it heard (allocate): one slot each,
// then what runs or waits as continuations, then interactive first steps,
// then batch ones, max-min fair, then the rest evenly. It moves its own
// lease towards its share. A replica not heard for the TTL (while the one
// judging was itself in touch for that long) is gone: its entry is
// removed and its slots shared out.
//
// A replica that cannot reach NATS keeps its lease for the TTL after its
// last successful round, then falls back to a safe share (the budget over
// the replicas it last knew, never more than its lease), says so once in
// the log, and takes its lease back from the table when NATS returns.
type Leases struct {
	e     *Engine
	cfg   LeaseConfig
	local Local
	log   *slog.Logger

	kv  jetstream.KeyValue // opened on the first round that reaches NATS; REQUIRES mu
	sub *nats.Subscription

	// clusterInFlight is the replicas' in flight as last heard, this one
	// excluded (for the adaptive limit's "in use").
	clusterInFlight atomic.Int64
	replicas        atomic.Int64 // live replicas, this one included
	effective       atomic.Int64 // the budget shared out, as last computed

	mu       sync.Mutex
	peers    map[string]*peer // REQUIRES mu
	lease    int              // this replica's entry, as last read or written
	applied  int              // the slots given to Local.Apply
	target   int              // its share, as last computed
	joined   bool             // the table has given it a lease once
	fallback bool
	fellBack time.Time // when it fell back
	lastOK   time.Time // when the last successful round started
	okSince  time.Time // since when rounds succeed (zero while they fail)
	lastN    int       // live replicas, this one included, as last counted
	table    map[string]int
	changes  [2]int64 // lease grows and shrinks written
	byPeers  int64    // rounds the others' heartbeats confirmed (confirmed)

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// LeaseConfig configures Leases.
type LeaseConfig struct {
	Budget   int     // SEQUOIA_MAX_CONCURRENCY: the cluster's slots
	Rate     float64 // SEQUOIA_MAX_RATE: the cluster's rate; 0 none
	TTL      time.Duration
	Interval time.Duration
	// Origin names this replica's chain ids (the hex digits of their
	// prefix), told in heartbeats.
	Origin string
}

// Local is the replica the leases apply to: its scheduler, its adaptive
// limit.
type Local interface {
	// Demand reads what the replica runs and has waiting.
	Demand() Demand
	// Apply gives the replica slots worker slots and rate invocations per
	// second (0: no rate limit).
	Apply(slots int, rate float64)
	// Adaptive is the replica's adaptive limit, its view of what the
	// platform takes; 0 without one.
	Adaptive() int
}

// Demand is what a replica runs and has waiting, in slots.
type Demand struct {
	InFlight  int    `json:"in_flight"`
	Running   [2]int `json:"continuations_waiting"` // interactive, batch
	Pending   [2]int `json:"first_steps_waiting"`   // interactive, batch
	Committed int    `json:"committed"`             // slots admitted chains are booked on past now
}

// Queued is the invocations waiting.
func (d Demand) Queued() int { return d.Running[0] + d.Running[1] + d.Pending[0] + d.Pending[1] }

// heartbeat is what a replica tells the others every interval.
type heartbeat struct {
	Replica  string `json:"replica"`
	Origin   string `json:"origin,omitempty"`
	Lease    int    `json:"lease"`
	Applied  int    `json:"applied"`
	Demand   Demand `json:"demand"`
	Adaptive int    `json:"adaptive,omitempty"`
	Budget   int    `json:"budget"`
	Fallback bool   `json:"fallback,omitempty"`
	Leaving  bool   `json:"leaving,omitempty"`
}

type peer struct {
	hb    heartbeat
	heard time.Time
}

// tableDoc is the leases document.
type tableDoc struct {
	Leases map[string]int `json:"leases"`
}

const tableKey = "table"

// NewLeases returns the lease manager of replica's share of cfg's budget
// on e, applying it to local. Start starts it.
func NewLeases(e *Engine, cfg LeaseConfig, local Local, log *slog.Logger) *Leases {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Leases{e: e, cfg: cfg, local: local, log: log, peers: map[string]*peer{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

// Start subscribes to the heartbeats, makes a first round (so that a
// replica that reaches NATS starts with its lease) and runs the rounds in
// the background until Close.
func (l *Leases) Start() error {
	sub, err := l.e.nc.Subscribe(l.e.Subject("hb", "*"), l.heard)
	if err != nil {
		return err
	}
	l.sub = sub
	l.round()
	go l.run()
	return nil
}

func (l *Leases) run() {
	defer close(l.done)
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.round()
		}
	}
}

// heard records another replica's heartbeat.
func (l *Leases) heard(m *nats.Msg) {
	var hb heartbeat
	if json.Unmarshal(m.Data, &hb) != nil || hb.Replica == "" || hb.Replica == l.e.replica {
		return
	}
	now := time.Now()
	l.mu.Lock()
	if hb.Leaving {
		delete(l.peers, hb.Replica)
	} else {
		l.peers[hb.Replica] = &peer{hb: hb, heard: now}
	}
	l.mu.Unlock()
}

// subjectToken makes a replica name fit in one subject token.
func subjectToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' {
			return '_'
		}
		return r
	}, s)
}

func (l *Leases) publish(hb heartbeat) {
	b, _ := json.Marshal(hb)
	if l.e.nc.Publish(l.e.Subject("hb", subjectToken(l.e.replica)), b) == nil {
		l.e.Op("publish", PathBackground)
	}
}

// silence is how long a replica may go unheard before the others take its
// lease back: two intervals short of the TTL, so that its slots are in
// use again within the TTL of its last word (it takes a round to see it
// gone and one more for the last of the others to grow).
func (l *Leases) silence() time.Duration { return l.cfg.TTL - 2*l.cfg.Interval }

// keep is how long a replica cut off from NATS keeps its lease after its
// last good round before it falls back to a safe share: one interval
// short of the others' silence, so that it stops counting on its lease
// before they take it back.
func (l *Leases) keep() time.Duration { return l.cfg.TTL - 3*l.cfg.Interval }

// timeout bounds one round's NATS calls, so that a round stuck on an
// unreachable NATS does not hold back the next heartbeat for long.
func (l *Leases) timeout() time.Duration {
	return min(l.cfg.TTL/4, max(l.cfg.Interval, 250*time.Millisecond))
}

// round is one step of the protocol: tell, read, judge, move.
func (l *Leases) round() {
	now := time.Now() // not the ticker's: a round may wait on NATS for a while
	d := l.local.Demand()
	l.mu.Lock()
	hb := heartbeat{Replica: l.e.replica, Origin: l.cfg.Origin, Lease: l.lease, Applied: l.applied,
		Demand: d, Adaptive: l.local.Adaptive(), Budget: l.cfg.Budget, Fallback: l.fallback}
	l.mu.Unlock()
	l.publish(hb)

	ctx, cancel := context.WithTimeout(context.Background(), l.timeout())
	defer cancel()
	doc, rev, err := l.read(ctx)
	if err != nil {
		l.log.Debug("cluster: leases read", "err", err)
		if l.confirmed(now) {
			return
		}
		l.failed(now, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejoinedLocked(now)
	live, needs := l.liveLocked(now, doc, d, hb)
	l.lastN = len(live)
	l.replicas.Store(int64(len(live)))
	budget := l.effectiveBudgetLocked(now)
	l.effective.Store(int64(budget))
	shares := allocate(budget, needs)
	l.target = shares[l.e.replica]
	cur := doc.Leases[l.e.replica]
	l.lease = cur
	l.table = maps.Clone(doc.Leases)

	// Entries of replicas gone for the TTL go in the same write.
	next := tableDoc{Leases: map[string]int{}}
	dirty, others := false, 0
	for r, n := range doc.Leases {
		if !live[r] {
			dirty = true
			l.log.Info("cluster: a replica's lease expired; its slots are shared out", "replica", r, "slots", n)
			continue
		}
		next.Leases[r] = n
		if r != l.e.replica {
			others += n
		}
	}
	want := cur
	switch {
	case l.target > cur:
		want = max(cur, min(l.target, l.cfg.Budget-others)) // what is free
	case l.target < cur && (cur-l.target >= max(1, l.cfg.Budget/20) || others+cur > budget):
		want = l.target
	}
	use, write := want, want
	if want < cur {
		// Shrink here first: admission and dispatch stop counting on
		// the slots given away, except those admitted chains are
		// booked on, which go once their work is done; the table
		// keeps the lease until what is in flight fits.
		// What they are booked on is read on the lease they were
		// admitted against: the scheduler counts no more than its limit.
		committed := l.local.Demand().Committed
		l.applyLocked(want)
		use = min(cur, max(want, committed))
		l.applyLocked(use)
		write = use
		if l.local.Demand().InFlight > use {
			write = cur
		}
	}
	if write > 0 {
		next.Leases[l.e.replica] = write
	} else {
		delete(next.Leases, l.e.replica)
	}
	if dirty || write != cur {
		if err := l.writeLocked(ctx, next, rev); err != nil {
			l.log.Debug("cluster: leases write", "err", err, "cur", cur, "use", use, "write", write)
			// Someone wrote first: read again next round, and use no
			// more than the table granted.
			l.applyLocked(min(use, cur))
			return
		}
		if write > cur {
			l.changes[0]++
		} else if write < cur {
			l.changes[1]++
		}
		l.lease = write
		l.table = maps.Clone(next.Leases)
	}
	l.joined = l.joined || l.lease > 0
	// A grown lease is used once written; an unchanged one (or one taken
	// back after a fallback) at once; a shrinking one stays at use.
	l.applyLocked(min(use, l.lease))
}

// read reads the leases document and its revision (0: none yet).
func (l *Leases) read(ctx context.Context) (tableDoc, uint64, error) {
	l.mu.Lock()
	kv := l.kv
	l.mu.Unlock()
	if kv == nil {
		var err error
		if kv, err = l.e.openBucket(ctx, "leases", 0, false); err != nil {
			return tableDoc{}, 0, err
		}
		l.mu.Lock()
		l.kv = kv
		l.mu.Unlock()
	}
	doc := tableDoc{Leases: map[string]int{}}
	e, err := kv.Get(ctx, tableKey)
	l.e.Op("kv_get", PathBackground)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return doc, 0, nil
	}
	if err != nil {
		return doc, 0, err
	}
	if len(e.Value()) > 0 {
		if err := json.Unmarshal(e.Value(), &doc); err != nil {
			l.log.Warn("cluster: the leases document is unreadable; starting it again", "err", err)
			doc.Leases = map[string]int{}
		}
		if doc.Leases == nil {
			doc.Leases = map[string]int{}
		}
	}
	return doc, e.Revision(), nil
}

// writeLocked writes doc over revision rev (0: the first), unless the sum
// of its leases is over the budget.
//
// REQUIRES: l.mu held.
func (l *Leases) writeLocked(ctx context.Context, doc tableDoc, rev uint64) error {
	sum := 0
	for _, n := range doc.Leases {
		sum += n
	}
	if sum > l.cfg.Budget {
		return errors.New("cluster: leases over the budget") // never written
	}
	b, _ := json.Marshal(doc)
	var err error
	if rev == 0 {
		_, err = l.kv.Create(ctx, tableKey, b)
		l.e.Op("kv_create", PathBackground)
	} else {
		_, err = l.kv.Update(ctx, tableKey, b, rev)
		l.e.Op("kv_update", PathBackground)
	}
	return err
}

// confirmed handles a round that could not read the leases (JetStream
// unreachable) while core NATS carries heartbeats. A replica changes only
// its own entry, and each replica's heartbeat tells its own entry as it
// holds it: so if every other replica of the leases last read here has
// been heard since this replica's last good round, and the entries all
// the replicas heard tell (this one's included) add up to no more than
// the budget, the leases in force are what they tell, and this replica's
// lease stands: the round counts as a good one, and a replica on a safe
// share takes its lease back. This is what keeps the budget whole while
// JetStream is away (NATS lost its quorum) and gives replicas their
// leases back as soon as NATS returns after an outage, before JetStream
// has recovered its streams.
func (l *Leases) confirmed(now time.Time) bool {
	if !l.e.Connected() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.joined || l.lastOK.IsZero() {
		return false
	}
	for name := range l.table {
		if name == l.e.replica {
			continue
		}
		if p, ok := l.peers[name]; !ok || p.heard.Before(l.lastOK) {
			return false // not heard since: it may have changed the leases
		}
	}
	sum := l.lease
	for _, p := range l.peers {
		if now.Sub(p.heard) <= l.cfg.TTL {
			sum += p.hb.Lease
		}
	}
	if sum > l.cfg.Budget {
		return false
	}
	if l.fallback {
		l.fallback = false
		l.log.Info("cluster: NATS is back and the replicas' leases add up within the budget; lease taken back before JetStream answers",
			"after", now.Sub(l.fellBack).Round(time.Millisecond))
	}
	l.lastOK = now
	l.byPeers++
	l.applyLocked(l.lease)
	return true
}

// failed notes a round that could not reach NATS: past the TTL since the
// last good one, the replica falls back to a safe share.
func (l *Leases) failed(now time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.okSince = time.Time{}
	if l.fallback || !l.joined || now.Sub(l.lastOK) < l.keep() {
		return
	}
	l.fallback, l.fellBack = true, now
	safe := min(l.lease, l.cfg.Budget/max(1, l.lastN))
	l.log.Warn("cluster: NATS unreachable for the lease TTL; serving on a safe share of the budget until it is back",
		"ttl", l.cfg.TTL, "lease", l.lease, "safe_share", safe, "replicas_last_known", l.lastN, "err", err)
	l.applyLocked(safe)
}

// rejoinedLocked notes a round that reached NATS.
//
// REQUIRES: l.mu held.
func (l *Leases) rejoinedLocked(now time.Time) {
	l.lastOK = now
	if l.okSince.IsZero() {
		l.okSince = now
	}
	if l.fallback {
		l.fallback = false
		l.log.Info("cluster: NATS is back; leases shared again", "after", now.Sub(l.fellBack).Round(time.Millisecond))
	}
}

// liveLocked returns the replicas taken as alive (this one, those heard
// within the TTL, and those in the table not yet judged gone: a replica
// judges another gone only after being in touch itself for the TTL) and
// their needs. A replica in the table not heard yet needs its lease.
//
// REQUIRES: l.mu held.
func (l *Leases) liveLocked(now time.Time, doc tableDoc, d Demand, self heartbeat) (map[string]bool, []Need) {
	live := map[string]bool{l.e.replica: true}
	needs := []Need{needOf(l.e.replica, d, l.cfg.Budget)}
	var inFlight int64
	for name, p := range l.peers {
		if now.Sub(p.heard) > l.silence() {
			delete(l.peers, name)
			continue
		}
		live[name] = true
		needs = append(needs, needOf(name, p.hb.Demand, l.cfg.Budget))
		inFlight += int64(p.hb.Demand.InFlight)
	}
	inTouch := now.Sub(l.okSince) >= l.silence()
	for name, n := range doc.Leases {
		if live[name] || inTouch {
			continue
		}
		live[name] = true
		needs = append(needs, Need{Replica: name, Urgent: n})
	}
	l.clusterInFlight.Store(inFlight)
	_ = self
	return live, needs
}

// effectiveBudgetLocked is the budget shared out: SEQUOIA_MAX_CONCURRENCY,
// or less when the replicas' adaptive limits found the platform takes
// less: the median of their views (the higher of the two middle ones),
// a replica with none counting as the budget. One replica that misread
// the platform (a cut on latency that cold instances or its own CPU
// caused, which a cold start's end then seems to verify) cannot shrink
// the whole cluster's budget; what most replicas see, they share.
//
// REQUIRES: l.mu held.
func (l *Leases) effectiveBudgetLocked(now time.Time) int {
	views := []int{l.cfg.Budget}
	if a := l.local.Adaptive(); a > 0 {
		views[0] = min(a, l.cfg.Budget)
	}
	for _, p := range l.peers {
		if now.Sub(p.heard) > l.cfg.TTL {
			continue
		}
		v := l.cfg.Budget
		if a := p.hb.Adaptive; a > 0 {
			v = min(a, v)
		}
		views = append(views, v)
	}
	slices.Sort(views)
	return max(views[len(views)/2], 1)
}

// applyLocked gives the replica n slots and the matching share of the rate.
//
// REQUIRES: l.mu held.
func (l *Leases) applyLocked(n int) {
	n = max(n, 0)
	var r float64
	if l.cfg.Rate > 0 && l.cfg.Budget > 0 {
		r = l.cfg.Rate * float64(n) / float64(l.cfg.Budget)
	}
	l.applied = n
	l.local.Apply(n, r)
}

// SetBudget changes the budget this replica shares out (what
// SEQUOIA_MAX_CONCURRENCY said at start) and makes a round at once, so
// that a lower budget applies here before SetBudget returns (every replica
// of a cluster must be given the same).
func (l *Leases) SetBudget(n int) {
	l.mu.Lock()
	l.cfg.Budget = max(n, 1)
	l.mu.Unlock()
	l.round()
}

// Joined says whether the table has given this replica a lease yet.
func (l *Leases) Joined() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.joined
}

// ClusterInFlight returns the invocations in flight at the other replicas,
// as last heard. Cost: one atomic load.
func (l *Leases) ClusterInFlight() int { return int(l.clusterInFlight.Load()) }

// EffectiveBudget returns the budget shared out as last computed: the
// median of the replicas' views of what the platform takes (0 before the
// first round).
func (l *Leases) EffectiveBudget() int { return int(l.effective.Load()) }

// Replicas returns the live replicas, this one included, as last counted.
func (l *Leases) Replicas() int { return int(l.replicas.Load()) }

// Close stops the rounds and leaves the cluster: a last heartbeat says so,
// and this replica's entry leaves the table at once, so that the others
// need not wait for the TTL. Call it once the replica's work is done.
func (l *Leases) Close() {
	l.closeOnce.Do(func() {
		close(l.stop)
		if l.sub != nil {
			<-l.done
			_ = l.sub.Unsubscribe()
		}
		l.mu.Lock()
		l.applyLocked(0)
		kv, budget := l.kv, l.cfg.Budget
		l.mu.Unlock()
		if kv == nil || !l.e.Connected() {
			return
		}
		l.publish(heartbeat{Replica: l.e.replica, Leaving: true, Budget: budget})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for range 5 {
			doc, rev, err := l.read(ctx)
			if _, ok := doc.Leases[l.e.replica]; err != nil || !ok {
				return
			}
			delete(doc.Leases, l.e.replica)
			l.mu.Lock()
			err = l.writeLocked(ctx, doc, rev)
			l.mu.Unlock()
			if err == nil {
				return
			}
		}
	})
}

// LeaseStatus is the cluster's part of /sequoia/v1/status.
type LeaseStatus struct {
	// Budget is SEQUOIA_MAX_CONCURRENCY; Effective the budget shared out
	// (less when an adaptive limit found the platform takes less).
	Budget    int     `json:"budget"`
	Effective int     `json:"effective_budget"`
	Rate      float64 `json:"max_rate,omitempty"`
	// Lease is this replica's entry in the table; Applied the slots it
	// uses now (below Lease while it shrinks, or on a safe share);
	// Target its share as last computed.
	Lease   int `json:"lease"`
	Applied int `json:"applied"`
	Target  int `json:"target"`
	// Fallback says the replica lost NATS for longer than the TTL and
	// serves on a safe share.
	Fallback      bool      `json:"fallback"`
	FallbackSince time.Time `json:"fallback_since,omitzero"`
	LastRound     time.Time `json:"last_round,omitzero"`
	TTL           string    `json:"lease_ttl"`
	Interval      string    `json:"lease_interval"`
	Grown         int64     `json:"leases_grown"`
	Shrunk        int64     `json:"leases_shrunk"`
	// ConfirmedByPeers counts rounds that could not read the leases
	// (JetStream away) but whose lease every other replica's heartbeat
	// confirmed.
	ConfirmedByPeers int64     `json:"rounds_confirmed_by_peers"`
	Replicas         []Replica `json:"replicas"`
}

// Replica is one replica as this one last heard it.
type Replica struct {
	Name string `json:"name"`
	Self bool   `json:"self,omitempty"`
	// Lease is its entry in the table as last read here.
	Lease    int    `json:"lease"`
	Applied  int    `json:"applied"`
	InFlight int    `json:"in_flight"`
	Queued   int    `json:"queued"`
	Demand   Demand `json:"demand"`
	Fallback bool   `json:"fallback,omitempty"`
	// HeardAgo is how long ago its last heartbeat arrived.
	HeardAgo string `json:"heard_ago,omitempty"`
}

// Status returns the leases as this replica sees them now.
func (l *Leases) Status() LeaseStatus {
	d := l.local.Demand()
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LeaseStatus{Budget: l.cfg.Budget, Effective: l.EffectiveBudget(), Rate: l.cfg.Rate, Lease: l.lease, Applied: l.applied,
		Target: l.target, Fallback: l.fallback, LastRound: l.lastOK, TTL: l.cfg.TTL.String(),
		Interval: l.cfg.Interval.String(), Grown: l.changes[0], Shrunk: l.changes[1], ConfirmedByPeers: l.byPeers}
	if l.fallback {
		st.FallbackSince = l.fellBack
	}
	st.Replicas = append(st.Replicas, Replica{Name: l.e.replica, Self: true, Lease: l.lease, Applied: l.applied,
		InFlight: d.InFlight, Queued: d.Queued(), Demand: d, Fallback: l.fallback})
	for name, p := range l.peers {
		if now.Sub(p.heard) > l.cfg.TTL {
			continue
		}
		st.Replicas = append(st.Replicas, Replica{Name: name, Lease: l.table[name], Applied: p.hb.Applied,
			InFlight: p.hb.Demand.InFlight, Queued: p.hb.Demand.Queued(), Demand: p.hb.Demand,
			Fallback: p.hb.Fallback, HeardAgo: now.Sub(p.heard).Round(time.Millisecond).String()})
	}
	slices.SortFunc(st.Replicas, func(a, b Replica) int { return strings.Compare(a.Name, b.Name) })
	return st
}
