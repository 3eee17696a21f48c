package qos

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sequoia-qos/sequoia/internal/ttlcache"
	"github.com/sequoia-qos/sequoia/invocation"
)

// Errors of chain admission.
var (
	// ErrRefused: a new chain cannot finish within its budget given the
	// work admitted ahead of it. It never reached the platform.
	ErrRefused = errors.New("qos: chain refused: it cannot finish within its deadline")
	// ErrDeadline: the chain's deadline passed while the invocation waited.
	ErrDeadline = errors.New("qos: chain deadline passed while queued")
)

// RefusedError is ErrRefused with an estimate of when capacity frees up.
type RefusedError struct {
	RetryAfter time.Duration
	// Never marks a chain that could not finish within its budget even
	// with the platform to itself, at the durations observed so far:
	// waiting would not help. Needs is its own work then (its steps one
	// after another, and the rate limit), Allowed its budget less the
	// headroom.
	Never          bool
	Needs, Allowed time.Duration
}

func (e *RefusedError) Error() string {
	if e.Never {
		return fmt.Sprintf("%v: it needs about %v alone, over the %v its deadline allows", ErrRefused, e.Needs, e.Allowed)
	}
	return fmt.Sprintf("%v (retry after %v)", ErrRefused, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ChainOutcome is how a chain ended.
type ChainOutcome uint8

// Chain outcomes. ChainDropped, ChainLate and ChainGone are the three
// ways an admitted chain is dropped: work was done for it, and its client
// did not get what it asked for in time.
const (
	ChainCompleted ChainOutcome = iota // every step it made was answered in time
	ChainDropped                       // a continuation's deadline passed while it waited (sequoia answered 504)
	ChainFailed                        // ended otherwise: first step never ran, platform error, its caller stopped short
	ChainLate                          // a step was answered after the chain's deadline
	ChainGone                          // a step's client left before its answer (while queued or at the platform)
	NumChainOutcomes
)

var outcomeNames = [NumChainOutcomes]string{"completed", "dropped", "failed", "late", "client gone"}

func (o ChainOutcome) String() string { return outcomeNames[o] }

// Dropped reports whether o is one of the ways a chain is dropped.
func (o ChainOutcome) Dropped() bool { return o == ChainDropped || o == ChainLate || o == ChainGone }

// DropReason names why a dropped chain was dropped (the reason label of
// sequoia_chains_dropped_total): "deadline", "late" or "client_gone"; ""
// for any other outcome.
func (o ChainOutcome) DropReason() string {
	switch o {
	case ChainDropped:
		return "deadline"
	case ChainLate:
		return "late"
	case ChainGone:
		return "client_gone"
	}
	return ""
}

// GoneChecker is a Watcher that can also tell at once, without waiting,
// whether its caller has left (the proxy peeks at the client's
// connection). Do asks it when a step of a chain with a deadline ends in
// the second half of the chain's budget: an answer to a client that left
// is a drop, and tells admission that the client's own deadline came
// before sequoia's.
type GoneChecker interface {
	Gone() bool
}

// Receiver is a Watcher that can tell when its request reached this host
// (the proxy asks the kernel, and a proxy in front's X-Request-Start),
// if that was before it was read; zero if it cannot. A new chain's budget
// runs from then: its client's clock was already running while the
// request waited to be accepted and read. Admission asks only for a new
// chain with a budget, so that a continuation costs nothing; budget is
// that chain's, and a time longer ago than half of it is not the
// request's.
type Receiver interface {
	Received(budget time.Duration) time.Time
}

// Events is how the scheduler reports what it does; metrics implements it.
// Methods are called on the request path and must be cheap.
type Events interface {
	// ChainStarted: a new chain was admitted.
	ChainStarted(class uint8)
	// ChainRefused: a new chain was refused at entry.
	ChainRefused(class uint8)
	// ChainEnded: an admitted chain ended.
	ChainEnded(e ChainEnd)
	// Waited: an invocation left queue q, granted or not, after d.
	Waited(q QueueKind, class uint8, d time.Duration)
}

// ChainEnd is how an admitted chain ended (Events.ChainEnded).
type ChainEnd struct {
	Class   uint8
	Outcome ChainOutcome
	// Predicted is admission's estimate of its duration, Actual the time
	// from its first request to its end (meaningful for completed
	// chains).
	Predicted, Actual time.Duration
	// Tenant and Function are its first request's (a DAG run's Function
	// is the DAG's name); either may be empty.
	Tenant, Function string
}

type nopEvents struct{}

func (nopEvents) ChainStarted(uint8)                     {}
func (nopEvents) ChainRefused(uint8)                     {}
func (nopEvents) ChainEnded(ChainEnd)                    {}
func (nopEvents) Waited(QueueKind, uint8, time.Duration) {}

// chain is one active chain. What a request updates (steps done and
// remaining, the last end, failure, the end itself) is atomic, so that a
// continuation takes no admission lock. The rest, booking included, is set
// once, before the chain is shared.
type chain struct {
	entry     *flight // its first function's flight table entry, which learns its length; nil for a DAG run
	class     uint8
	run       bool // a DAG run (AdmitRun): its steps follow one another without a caller's turnaround
	start     time.Time
	deadline  time.Time // zero: none
	steps     int       // from X-Sequoia-Chain-Steps; 0 unknown
	predicted time.Duration
	headroom  float64 // admission's headroom when it was admitted
	// tenant and function are its first request's (a run's function is
	// its DAG's name), for Events.ChainEnded.
	tenant, function string

	booking booking // its slot's fields: REQUIRES booking.line.mu
	seq     uint64  // the id's counter if it is in the ring (ring.go); 0 in the table
	// remote is set when another replica of a cluster admitted the chain
	// (remote.go): its steps here report there.
	remote *remoteChain

	ended atomic.Bool // whoever sets it ends the chain (admission.end)
	// settled is set when the rest of its booking was given back before
	// it ended: a chain of unknown length that made as many steps as it
	// was booked for, earlier than booked.
	settled atomic.Bool
	// quiet is set when the chain ended because its caller went quiet
	// (quiet.go): a request for it after that shows the caller was only
	// slow.
	quiet atomic.Bool

	done      atomic.Int32 // steps that ran
	running   atomic.Int32 // steps holding a slot now
	remaining atomic.Int32 // of its reserved steps, not yet dispatched
	lastEnd   atomic.Int64 // unix nanoseconds its last step ended; 0 while one waits or before the first ends
	failed    atomic.Bool
	expires   atomic.Int64 // in the ring: unix nanoseconds it is forgotten
	// requests counts the chain's admitted requests (the first and its
	// continuations), for ChainStep.
	requests atomic.Int32

	// A chain in the table is on the idle list (quiet.go) from its first
	// step's end until it ends; watched says so, nextIdle links it.
	watched  atomic.Bool
	nextIdle *chain
}

// admission owns the active-chain table and the estimator, and decides
// whether a new chain may start. It has no lock of its own: the
// estimator's timeline has one per line, taken when a chain starts and
// when one ends before its booking does; never for a continuation.
type admission struct {
	est   *estimator
	table *ttlcache.Cache[*chain]
	// Chains whose ids ids assigned are in ring, the rest in table.
	ids   *ChainIDs
	ring  *ring
	ev    Events
	now   func() time.Time
	limit func() int
	// defaultDeadline applies to chains that give no X-Sequoia-Deadline-Ms.
	defaultDeadline time.Duration
	// hr is the fraction of a budget admission keeps in reserve, learned
	// from the answers clients did not get in time (headroom.go).
	hr headroom
	// live counts the chains started and not yet ended.
	live atomic.Int64
	// ttl is how long a chain is remembered; the quiet bound's ceiling.
	ttl  time.Duration
	idle idleList // table chains that may go quiet (quiet.go)
	// sweepMu serialises sweeps of the idle list.
	sweepMu sync.Mutex
	stop    chan struct{}
	stopped sync.WaitGroup
	close   sync.Once
	// remote, in a cluster, knows the chains other replicas admitted
	// (remote.go), and expiry gives back what the chains admitted here
	// reserved and never used by their deadline; nil alone.
	remote Remote
	expiry *expiry
	// spreadZ is Config.SpreadReserve (spread).
	spreadZ float64
}

func newAdmission(cfg Config, limit func() int, fn flightTable) *admission {
	a := &admission{
		est:             newEstimator(cfg.DefaultEstimate, cfg.MaxRate, fn),
		ev:              cfg.Events,
		now:             cfg.Now,
		limit:           limit,
		defaultDeadline: cfg.DefaultDeadline,
		stop:            make(chan struct{}),
		remote:          cfg.Remote,
		spreadZ:         cfg.SpreadReserve,
	}
	a.hr.init(cfg.Headroom, cfg.MaxHeadroom)
	if a.ev == nil {
		a.ev = nopEvents{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.est.def <= 0 {
		a.est.def = 100 * time.Millisecond
	}
	size := cfg.MaxChains
	if size <= 0 {
		size = 100000
	}
	ttl := cfg.ChainTTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	a.ttl = ttl
	a.table = ttlcache.NewWithClock(size, ttl, a.evicted, a.now)
	if a.remote != nil {
		a.expiry = newExpiry(a) // remote.go
	}
	a.ids = NewChainIDs()
	a.ring = newRing(size, ttl, a.now, func(c *chain) { a.evicted("", c) }, a.idleCheck)
	if cfg.sweepEvery >= 0 {
		a.stopped.Add(1)
		go a.sweeper(cmp.Or(cfg.sweepEvery, quietFloor/4))
	}
	return a
}

// lookup returns the chain of id unless it was forgotten by now: in the
// ring if sequoia assigned the id and it is there, else in the table.
func (a *admission) lookup(id string, now time.Time) (*chain, bool) {
	if seq, ok := a.ids.seq(id); ok {
		if c, ok := a.ring.get(seq, now); ok {
			return c, true
		}
	}
	return a.table.GetAt(id, now)
}

// store makes c, a new chain, the one id names from now: in the ring if
// sequoia assigned the id and its slot holds no newer id, else in the
// table. A forgotten chain of that id ends, unless fresh says the id was
// just assigned (so none can exist).
func (a *admission) store(id string, c *chain, fresh bool, now time.Time) {
	if seq, ok := a.ids.seq(id); ok {
		c.seq = seq
		if a.ring.put(c, now) {
			if !fresh {
				a.table.Remove(id) // one stored there when its slot was taken
			}
			return
		}
		c.seq = 0
	}
	if fresh {
		a.table.AddAt(id, c, now)
	} else {
		a.table.ReplaceAt(id, c, now)
	}
}

// forget removes id's chain (c, if found) from where it is stored, which
// ends it.
func (a *admission) forget(id string, c *chain) {
	if c != nil && c.seq != 0 {
		a.ring.remove(c)
		return
	}
	a.table.Remove(id)
}

// renew keeps id's chain c remembered for another TTL from now, wherever
// it is stored.
func (a *admission) renew(id string, c *chain, now time.Time) {
	if c.seq != 0 {
		a.ring.touch(c, now)
		return
	}
	a.table.AddAt(id, c, now) // an existing key: renews its expiry
}

// evicted ends a chain the table or the ring forgot (TTL, capacity, a
// chain of the same id started anew). The table calls it under a shard's
// lock, so it must not call the table.
func (a *admission) evicted(_ string, c *chain) {
	if c.ended.Load() {
		return
	}
	a.end(c, settled(c), a.now())
}

// settled is the outcome of a chain that ends with no step of it left to
// answer: completed, unless a step failed, none ran, or it made fewer
// steps than it announced (its caller stopped short).
func settled(c *chain) ChainOutcome {
	if done := int(c.done.Load()); c.failed.Load() || done == 0 || c.steps > 0 && done < c.steps {
		return ChainFailed
	}
	return ChainCompleted
}

// end ends c with outcome o at now, unless it already ended.
func (a *admission) end(c *chain, o ChainOutcome, now time.Time) { a.endAt(c, o, now, now) }

// endAt ends c with outcome o at now, its last step having ended at last
// (its duration runs to last), unless it already ended. The rest of its
// reservation goes: its outstanding steps, and, if it ends before its
// booking does, the booked time left (settle), which takes its timeline
// line's lock; the chain a table forgets long after its last step takes
// none. A completed chain teaches its length to its entry function, and,
// with a deadline, lets the learned headroom decay.
func (a *admission) endAt(c *chain, o ChainOutcome, last, now time.Time) {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	if c.remote != nil {
		return // the replica that admitted it counts it, and booked nothing here
	}
	a.live.Add(-1)
	// A booking's end only moves earlier (settle), so one already past
	// leaves nothing to give back.
	if c.booking.end > now.UnixNano() && !c.settled.Load() {
		a.est.settle(c.booking, now.UnixNano())
	}
	a.est.outstanding.Add(-int64(c.remaining.Swap(0)))
	if o == ChainCompleted {
		if c.entry != nil {
			a.est.learnSteps(c.entry, int(c.done.Load()))
		}
		if !c.deadline.IsZero() {
			a.hr.kept()
		}
	}
	a.ev.ChainEnded(ChainEnd{Class: c.class, Outcome: o, Predicted: c.predicted, Actual: last.Sub(c.start),
		Tenant: c.tenant, Function: c.function})
}

// admit classifies inv, an invocation of the function f stands for (its
// flight table entry), as the first step of a new chain or a continuation
// and, for a new chain, decides whether it may start. It sets
// inv.Continuation and inv.Deadline, and returns the time it read: a
// continuation takes no lock, a new chain one line of the timeline's.
func (a *admission) admit(inv *invocation.Invocation, f *flight, w Watcher) (*chain, time.Time, error) {
	now := a.now()
	var c *chain
	if inv.Chain != "" && !inv.ChainAssigned {
		c, _ = a.lookup(inv.Chain, now)
		if c == nil && a.remote != nil {
			c = a.adopt(inv, now) // remote.go: a chain another replica admitted
		}
	}
	if inv.RetryIn > 0 {
		// Another attempt of a step that did not run (retrying): no new
		// request of its chain, and the wait before it was no caller's.
		inv.RetryIn, inv.RetryReason = 0, ""
		if c != nil && (c.deadline.IsZero() || !now.After(c.deadline)) {
			inv.Deadline = c.deadline
			return c, now, nil
		}
	}
	if c != nil && (c.deadline.IsZero() || !now.After(c.deadline)) {
		// The caller's turnaround between two steps: the chain holds no
		// slot meanwhile, but its deadline runs. A chain that ended has
		// none, unless it ended because its caller seemed quiet: then
		// the turnaround shows how long callers may pause (quiet.go).
		if last := c.lastEnd.Swap(0); last != 0 && !c.run && (!c.ended.Load() || c.quiet.Load()) {
			a.est.turnaround(time.Duration(now.UnixNano() - last))
		}
		c.requests.Add(1)
		inv.Continuation, inv.Deadline = true, c.deadline
		return c, now, nil
	}
	// A new chain, or one whose deadline passed: the table forgets a chain
	// after its deadline, so this request starts a new one.
	inv.Continuation = false
	budget := inv.Budget
	if budget <= 0 {
		budget = a.defaultDeadline
	}
	// The chain's budget runs from when its first request reached this
	// host, if the proxy could tell: its client's clock started then (or
	// earlier), not when sequoia got round to reading it.
	start := now
	if rc, ok := w.(Receiver); ok && budget > 0 {
		if r := rc.Received(budget); !r.IsZero() && r.Before(now) {
			start = r
		}
	}
	steps := a.est.expectedSteps(f, inv.Steps)
	critical, slot := a.est.work(f, steps)
	limit := a.limit()
	headroom := a.hr.value()
	bk, finish, deadline, err := a.place(limit, start, now, budget, headroom, a.spread(limit),
		func(ln *timeline) (int64, int64) {
			return a.est.project(ln, critical, slot, steps, limit, now.UnixNano())
		},
		func(ln *timeline, start int64) booking { return a.est.reserve(ln, start, slot, steps, limit) })
	if err != nil {
		if a.est.observed(f) {
			a.hopeless(err, budget, critical, steps)
		}
		a.ev.ChainRefused(inv.Class)
		return nil, now, err
	}
	c = &chain{booking: bk,
		entry: f, class: inv.Class, start: start, deadline: deadline, headroom: headroom,
		steps: inv.Steps, predicted: time.Duration(finish - start.UnixNano()),
		tenant: inv.Tenant, function: inv.Function,
	}
	c.remaining.Store(int32(steps))
	c.requests.Store(1)
	a.live.Add(1)
	inv.Deadline = deadline
	if inv.Chain != "" {
		a.store(inv.Chain, c, inv.ChainAssigned, now)
		if a.remote != nil {
			a.clusterAdmitted(inv, c, steps) // remote.go: other replicas may see its steps
		}
		inv.ChainAssigned = false // a retry looks its chain up
	}
	a.ev.ChainStarted(inv.Class)
	return c, now, nil
}

// hopeless marks err, the refusal of a chain with budget whose own work
// (its steps one after another on an idle platform) is alone, as never
// fitting when that work, or its steps at the rate limit, overshoots the
// budget less the headroom's floor (the learned headroom falls back to it,
// so a chain that fits the floor's allowance may fit later).
func (a *admission) hopeless(err error, budget, alone time.Duration, steps int) {
	r, ok := err.(*RefusedError)
	if !ok || budget <= 0 {
		return
	}
	if a.est.rate() > 0 {
		alone = max(alone, time.Duration(float64(steps)/a.est.rate()*float64(time.Second)))
	}
	if allowed := budget - time.Duration(a.hr.floor*float64(budget)); alone > allowed {
		r.Never, r.Needs, r.Allowed = true, alone, allowed
	}
}

// place books a new chain, arrived at now with budget from from, on the
// timeline for limit worker slots: on a line picked at random, or, if the
// chain does not fit there (fits refuses it), on the first other line
// where it fits. project
// gives the chain's start and finish on a locked line, reserve books it
// there; spread is added to the finish when checking the deadline (see
// spread). It returns the booking, the projected finish and the deadline,
// or the refusal with the shortest wait over every line.
func (a *admission) place(limit int, from, now time.Time, budget time.Duration, headroom float64, spread time.Duration,
	project func(ln *timeline) (start, finish int64),
	reserve func(ln *timeline, start int64) booking) (booking, int64, time.Time, error) {
	_, lines := timelineSlots(limit)
	first := firstLine(lines)
	var refused *RefusedError
	for j := range lines {
		ln := a.est.lock(first+j, limit, now.UnixNano())
		start, finish := project(ln)
		deadline, err := fits(from, budget, headroom, finish+int64(spread))
		if err == nil {
			bk := reserve(ln, start)
			ln.mu.Unlock()
			return bk, finish, deadline, nil
		}
		ln.mu.Unlock()
		if r := err.(*RefusedError); refused == nil || r.RetryAfter < refused.RetryAfter {
			refused = r
		}
	}
	return booking{}, 0, time.Time{}, refused
}

// spread is what a replica of a cluster keeps in reserve, beyond the
// headroom, for the balancer's spread of continuations: it booked its own
// chains' later steps on its own timeline, but behind a balancer that
// spreads each request, each of those lands at any of the n replicas, and
// the steps that land here are the others' as often as its own. With a
// steps outstanding, the steps that will run here are their number give
// or take sqrt(a(1-1/n)) (a binomial's deviation), each a slot time on
// one of limit slots; it keeps Config.SpreadReserve such deviations. The
// model leaves out how unevenly the replicas admit and when the steps
// arrive, which is why the default reserve is generous (docs/cluster.md
// has the measurements). Alone, and in a cluster of one, it is 0.
func (a *admission) spread(limit int) time.Duration {
	if a.remote == nil || a.spreadZ <= 0 {
		return 0
	}
	n := a.remote.Replicas()
	ahead := float64(a.est.outstanding.Load())
	if n < 2 || ahead <= 0 {
		return 0
	}
	dev := math.Sqrt(ahead * (1 - 1/float64(n)))
	return time.Duration(a.spreadZ * dev * float64(a.est.drain()) / float64(max(limit, 1)))
}

// fits returns the deadline of a chain whose budget (zero: none) runs
// from start if its projected finish leaves the headroom (a fraction of
// the budget) kept for what sequoia cannot see (the caller's network and
// accept delays, its own clock), else a *RefusedError: the same chain
// sent later by as much as it overshoots would fit, if nothing else is
// admitted meanwhile.
func fits(start time.Time, budget time.Duration, headroom float64, finish int64) (time.Time, error) {
	if budget <= 0 {
		return time.Time{}, nil
	}
	deadline := start.Add(budget)
	reserve := int64(headroom * float64(budget))
	if over := finish - (deadline.UnixNano() - reserve); over > 0 {
		return time.Time{}, &RefusedError{RetryAfter: time.Duration(over)}
	}
	return deadline, nil
}

// takeReserved takes one of c's reserved steps, if any is left, out of
// the outstanding work, without a lock; it reports whether there was one.
func (a *admission) takeReserved(c *chain) bool {
	for {
		r := c.remaining.Load()
		if r <= 0 {
			return false
		}
		if c.remaining.CompareAndSwap(r, r-1) {
			a.est.outstanding.Add(-1)
			return true
		}
	}
}

// dispatched records, without a lock, that a step of c got a worker
// slot: one of its reserved steps, or an unplanned one (a chain longer
// than expected, or one that had ended), which counts in the fluid bound
// while it runs (unplanned true: finished must be told).
func (a *admission) dispatched(c *chain) (unplanned bool) {
	c.running.Add(1)
	if a.takeReserved(c) {
		return false
	}
	if c.remote != nil {
		return false // remote.go: the origin's reservation stands for it
	}
	a.est.unplanned.Add(1)
	return true
}

// finished records a step of c, an invocation of f (the flight table's
// entry for its function), that ran and ended at end: it held its slot
// for hold; unplanned is what dispatched said. A step of a chain with a
// deadline answered after it, or to a client that left (w, asked only in
// the second half of the budget), drops the chain. A chain of known
// length ends with its last step; any other becomes idle, and ends once
// its caller has gone quiet (quiet.go).
func (a *admission) finished(c *chain, f *flight, hold time.Duration, queued, ok, unplanned bool, end time.Time, w Watcher) {
	a.est.observe(f, hold, queued)
	if unplanned {
		a.est.unplanned.Add(-1)
	}
	if c.remote != nil {
		c.running.Add(-1)
		a.reportStep(c, ok, end, w) // remote.go
		return
	}
	if !ok && !c.run {
		// A run's failed node may be tried again; EndRun says whether
		// the run failed.
		c.failed.Store(true)
	}
	done := int(c.done.Add(1))
	c.lastEnd.Store(end.UnixNano())
	c.running.Add(-1)
	if !c.run && !c.ended.Load() {
		if o := tooLate(c, end, w); o != ChainCompleted {
			a.missed(c, o, end)
			return
		}
	}
	if c.steps <= 0 || done < c.steps {
		if c.seq == 0 && !c.run && !c.watched.Load() && c.watched.CompareAndSwap(false, true) {
			a.idle.push(c)
		}
		// A chain of unknown length that has made the steps it was
		// booked for, sooner than booked, gives the rest back now, as a
		// chain that said its length does when it ends: waiting until
		// its caller has gone quiet would leave phantom work meanwhile.
		if c.steps <= 0 && !c.run && c.remaining.Load() == 0 && c.running.Load() == 0 &&
			c.booking.end > end.UnixNano() && c.settled.CompareAndSwap(false, true) {
			a.est.settle(c.booking, end.UnixNano())
		}
		return
	}
	o := ChainCompleted
	if c.failed.Load() {
		o = ChainFailed
	}
	a.end(c, o, end)
}

// retrying records that a step of c got a slot (dispatched said whether
// unplanned) and will be sent again: the platform refused it before
// running it, or its answer is worth another attempt. It is not a step
// that ran: neither done nor failed, its slot time teaches nothing, and a
// reserved step it took is given back for the attempt that follows. Its
// chain cannot go quiet meanwhile: its last end stays unset (admit reset
// it when this step arrived).
func (a *admission) retrying(c *chain, unplanned bool) {
	c.running.Add(-1)
	if unplanned {
		a.est.unplanned.Add(-1)
		return
	}
	if c.remote != nil || c.ended.Load() {
		return
	}
	c.remaining.Add(1)
	a.est.outstanding.Add(1)
	if c.ended.Load() {
		// It ended meanwhile: what endAt's swap may not have seen goes
		// now.
		a.est.outstanding.Add(-int64(c.remaining.Swap(0)))
	}
}

// tooLate judges a step of c that ended at end: answered after the
// chain's deadline (ChainLate), or to a client that left (ChainGone; w is
// asked only in the second half of the budget); ChainCompleted when in
// time, or when the chain has no deadline.
func tooLate(c *chain, end time.Time, w Watcher) ChainOutcome {
	switch {
	case c.deadline.IsZero():
	case end.After(c.deadline):
		return ChainLate
	case 2*end.Sub(c.start) >= c.deadline.Sub(c.start) && clientGone(w):
		return ChainGone
	}
	return ChainCompleted
}

// clientGone asks w, if it can tell, whether its client left.
func clientGone(w Watcher) bool {
	g, ok := w.(GoneChecker)
	return ok && g.Gone()
}

// missed drops c, a chain with a deadline, with outcome o (ChainLate,
// ChainGone) at at, when a step's answer came too late for its client or
// its client left, and teaches admission's headroom how much more it
// should have kept.
func (a *admission) missed(c *chain, o ChainOutcome, at time.Time) {
	if c.ended.Load() {
		return
	}
	a.hr.missed(c, at)
	a.end(c, o, at)
}

// abandoned records a step of c that never ran because of err.
func (a *admission) abandoned(c *chain, inv *invocation.Invocation, err error) {
	if c.ended.Load() {
		return
	}
	now := a.now()
	if c.remote != nil {
		a.reportAbandoned(c, err) // remote.go
		return
	}
	if inv.Continuation {
		switch {
		case errors.Is(err, ErrDeadline):
			a.end(c, ChainDropped, now)
		case errors.Is(err, ErrClientGone) && c.run:
			// A run withdraws the invocations it no longer needs
			// (cancelled branches) and reports its own outcome at
			// EndRun.
		case errors.Is(err, ErrClientGone) && !c.deadline.IsZero():
			// Its client left while it waited, before sequoia's
			// deadline: the client's own came first.
			a.missed(c, ChainGone, now)
		default:
			c.failed.Store(true)
			c.lastEnd.Store(now.UnixNano()) // it may go quiet now
			if c.seq == 0 && !c.run && !c.watched.Load() && c.watched.CompareAndSwap(false, true) {
				a.idle.push(c)
			}
		}
		return
	}
	// The first step never ran: the chain never started. Its client
	// leaving while it waited says when that client gives up.
	if errors.Is(err, ErrClientGone) && !c.deadline.IsZero() {
		a.hr.missed(c, now)
	}
	a.end(c, ChainFailed, now)
	if inv.Chain != "" {
		a.forget(inv.Chain, c)
	}
}

// Estimate returns the current estimate of one invocation of fn's slot
// time ("" for the average over all functions).
func (s *Scheduler) Estimate(fn string) time.Duration {
	return s.adm.est.duration(fn)
}

// Observe feeds the estimator as if an invocation of fn had held its slot
// for d: for warming it from history, and for tests.
func (s *Scheduler) Observe(fn string, d time.Duration) {
	var f *flight
	if fn != "" {
		f = s.fnFlight.GetString(fn)
	}
	s.adm.est.observe(f, d, false)
}

// ChainStep numbers the next request of chain id: 1 when no admitted
// chain has that id (a new chain, one that ended or was forgotten, or one
// whose deadline passed), else one more than the requests admitted for it
// so far. It is what a policy sees as input.step. Cost: for an id sequoia
// assigned, one atomic load (the ring), else one shard lock and one map
// lookup; a request refused before admission does not count.
func (s *Scheduler) ChainStep(id string) int {
	if id == "" {
		return 1
	}
	now := s.adm.now()
	c, ok := s.adm.lookup(id, now)
	if !ok || !c.deadline.IsZero() && now.After(c.deadline) {
		return 1
	}
	return int(c.requests.Load()) + 1
}

// ActiveChains returns the number of chains started and not yet ended: a
// chain of known length ends with its last step, any other once its
// caller has gone quiet (quiet.go), and any chain when it is dropped or
// forgotten.
func (s *Scheduler) ActiveChains() int { return int(s.adm.live.Load()) }

// Headroom returns the fraction of each chain's budget admission keeps in
// reserve now: SEQUOIA_ADMISSION_HEADROOM, or more, learned from answers
// that came too late for their clients (headroom.go).
func (s *Scheduler) Headroom() float64 { return s.adm.hr.value() }

// ChainIDs is the generator of the chain ids the scheduler keeps in its
// ring: a caller that assigns ids to requests without one (the proxy)
// should take them from it.
func (s *Scheduler) ChainIDs() *ChainIDs { return s.adm.ids }

// Close stops the sweepers: chains are no longer forgotten after
// SEQUOIA_CHAIN_TTL, nor ended when their callers go quiet. Call it once
// the scheduler is done with.
func (s *Scheduler) Close() {
	s.adm.table.Close()
	s.adm.ring.Close()
	s.adm.close.Do(func() { close(s.adm.stop) })
	s.adm.stopped.Wait()
	if s.adm.expiry != nil {
		s.adm.expiry.close()
	}
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, as
// Retry-After wants.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// RetryAfterSeconds is the Retry-After value for err: the refusal's
// estimate, or 1. A refusal that is Never has none to give: callers
// answer it without Retry-After.
func RetryAfterSeconds(err error) int {
	var r *RefusedError
	if errors.As(err, &r) {
		return retryAfterSeconds(r.RetryAfter)
	}
	return 1
}
