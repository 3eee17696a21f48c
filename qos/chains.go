package qos

import (
	"errors"
	"fmt"
	"math"
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
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%v (retry after %v)", ErrRefused, e.RetryAfter)
}

// Is makes errors.Is(err, ErrRefused) hold.
func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// ChainOutcome is how a chain ended.
type ChainOutcome uint8

// Chain outcomes.
const (
	ChainCompleted ChainOutcome = iota // every step it made was invoked
	ChainDropped                       // a continuation's deadline passed while it waited: work wasted
	ChainFailed                        // ended otherwise: first step never ran, platform error, client gone
	NumChainOutcomes
)

var outcomeNames = [NumChainOutcomes]string{"completed", "dropped", "failed"}

func (o ChainOutcome) String() string { return outcomeNames[o] }

// Events is how the scheduler reports what it does; metrics implements it.
// Methods are called on the request path and must be cheap.
type Events interface {
	// ChainStarted: a new chain was admitted.
	ChainStarted(class uint8)
	// ChainRefused: a new chain was refused at entry.
	ChainRefused(class uint8)
	// ChainEnded: an admitted chain ended. predicted is admission's
	// estimate of its duration, actual the time from its first request to
	// its end (meaningful for completed chains).
	ChainEnded(class uint8, o ChainOutcome, predicted, actual time.Duration)
	// Waited: an invocation left queue q, granted or not, after d.
	Waited(q QueueKind, class uint8, d time.Duration)
}

type nopEvents struct{}

func (nopEvents) ChainStarted(uint8)                                           {}
func (nopEvents) ChainRefused(uint8)                                           {}
func (nopEvents) ChainEnded(uint8, ChainOutcome, time.Duration, time.Duration) {}
func (nopEvents) Waited(QueueKind, uint8, time.Duration)                       {}

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

	booking booking // its slot's fields: REQUIRES booking.line.mu
	seq     uint64  // the id's counter if it is in the ring (ring.go); 0 in the table
	// remote is set when another replica of a cluster admitted the chain
	// (remote.go): its steps here report there.
	remote *remoteChain

	ended atomic.Bool // whoever sets it ends the chain (admission.end)

	done      atomic.Int32 // steps that ran
	remaining atomic.Int32 // of its reserved steps, not yet dispatched
	lastEnd   atomic.Int64 // unix nanoseconds its last step ended; 0 while one runs
	failed    atomic.Bool
	expires   atomic.Int64 // in the ring: unix nanoseconds it is forgotten
	// requests counts the chain's admitted requests (the first and its
	// continuations), for ChainStep.
	requests atomic.Int32
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
	// headroom is the fraction of a budget admission keeps in reserve.
	headroom float64
	// remote, in a cluster, knows the chains other replicas admitted
	// (remote.go), and expiry gives back what the chains admitted here
	// reserved and never used by their deadline; nil alone.
	remote Remote
	expiry *expiry
}

func newAdmission(cfg Config, limit func() int, fn flightTable) *admission {
	a := &admission{
		est:             newEstimator(cfg.DefaultEstimate, cfg.MaxRate, fn),
		ev:              cfg.Events,
		now:             cfg.Now,
		limit:           limit,
		defaultDeadline: cfg.DefaultDeadline,
		headroom:        min(max(cfg.Headroom, 0), 0.9),
		remote:          cfg.Remote,
	}
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
	a.table = ttlcache.NewWithClock(size, ttl, a.evicted, a.now)
	if a.remote != nil {
		a.expiry = newExpiry(a) // remote.go
	}
	a.ids = NewChainIDs()
	a.ring = newRing(size, ttl, a.now, func(c *chain) { a.evicted("", c) })
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
	o := ChainCompleted
	if done := int(c.done.Load()); c.failed.Load() || done == 0 || c.steps > 0 && done < c.steps {
		o = ChainFailed
	}
	a.end(c, o, a.now())
}

// end ends c with outcome o at now, unless it already ended. It takes a
// lock (its timeline line's) only if c ends before its booking does, to
// give the rest back (settle); the chain a table forgets long after its
// last step takes none.
func (a *admission) end(c *chain, o ChainOutcome, now time.Time) {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	// A booking's end only moves earlier (settle), so one already past
	// leaves nothing to give back.
	if c.booking.end > now.UnixNano() {
		a.est.settle(c.booking, now.UnixNano())
	}
	a.est.outstanding.Add(-int64(c.remaining.Swap(0)))
	if c.remote != nil {
		return // the replica that admitted it counts it
	}
	if o == ChainCompleted && c.entry != nil {
		a.est.learnSteps(c.entry, int(c.done.Load()))
	}
	a.ev.ChainEnded(c.class, o, c.predicted, now.Sub(c.start))
}

// admit classifies inv, an invocation of the function f stands for (its
// flight table entry), as the first step of a new chain or a continuation
// and, for a new chain, decides whether it may start. It sets
// inv.Continuation and inv.Deadline, and returns the time it read: a
// continuation takes no lock, a new chain one line of the timeline's.
func (a *admission) admit(inv *invocation.Invocation, f *flight) (*chain, time.Time, error) {
	now := a.now()
	var c *chain
	if inv.Chain != "" && !inv.ChainAssigned {
		c, _ = a.lookup(inv.Chain, now)
		if c == nil && a.remote != nil {
			c = a.adopt(inv, now) // remote.go: a chain another replica admitted
		}
	}
	if c != nil && (c.deadline.IsZero() || !now.After(c.deadline)) {
		if last := c.lastEnd.Swap(0); last != 0 && !c.run {
			// The caller's turnaround between two steps: the chain
			// holds no slot meanwhile, but its deadline runs.
			a.est.gap.add(float64(now.UnixNano() - last))
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
	steps := a.est.expectedSteps(f, inv.Steps)
	work := a.est.work(f, steps)
	limit := a.limit()
	bk, finish, deadline, err := a.place(limit, now, budget,
		func(ln *timeline) (int64, int64) { return a.est.project(ln, work, steps, limit, now.UnixNano()) },
		func(ln *timeline, start int64) booking { return a.est.reserve(ln, start, work, steps, limit) })
	if err != nil {
		a.ev.ChainRefused(inv.Class)
		return nil, now, err
	}
	c = &chain{booking: bk,
		entry: f, class: inv.Class, start: now, deadline: deadline,
		steps: inv.Steps, predicted: time.Duration(finish - now.UnixNano()),
	}
	c.remaining.Store(int32(steps))
	c.requests.Store(1)
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

// place books a new chain on the timeline for limit worker slots: on a
// line picked at random, or, if the chain does not fit there (fits with
// budget refuses it), on the first other line where it fits. project
// gives the chain's start and finish on a locked line, reserve books it
// there. It returns the booking, the projected finish and the deadline,
// or the refusal with the shortest wait over every line.
func (a *admission) place(limit int, now time.Time, budget time.Duration,
	project func(ln *timeline) (start, finish int64),
	reserve func(ln *timeline, start int64) booking) (booking, int64, time.Time, error) {
	_, lines := timelineSlots(limit)
	first := firstLine(lines)
	var refused *RefusedError
	for j := range lines {
		ln := a.est.lock(first+j, limit, now.UnixNano())
		start, finish := project(ln)
		deadline, err := a.fits(now, budget, finish)
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

// fits returns the deadline of a chain admitted at now with budget (zero:
// none) if its projected finish leaves the headroom kept for what sequoia
// cannot see (the caller's network and accept delays), else a
// *RefusedError: the same chain sent later by as much as it overshoots
// would fit, if nothing else is admitted meanwhile.
func (a *admission) fits(now time.Time, budget time.Duration, finish int64) (time.Time, error) {
	if budget <= 0 {
		return time.Time{}, nil
	}
	deadline := now.Add(budget)
	reserve := int64(a.headroom * float64(budget))
	if over := finish - (deadline.UnixNano() - reserve); over > 0 {
		return time.Time{}, &RefusedError{RetryAfter: time.Duration(over)}
	}
	return deadline, nil
}

// dispatched records, without a lock, that a step of c, an invocation of
// f (the flight table's entry for its function), got a worker slot: one
// of its reserved steps, or an unplanned one (a chain longer than
// expected), which the timeline's next reader books.
func (a *admission) dispatched(c *chain, f *flight) {
	for {
		r := c.remaining.Load()
		if r <= 0 {
			break
		}
		if c.remaining.CompareAndSwap(r, r-1) {
			a.est.outstanding.Add(-1)
			return
		}
	}
	if c.remote != nil {
		return // remote.go: the origin's reservation stands for it
	}
	a.est.extend(f)
}

// finished records a step of c, an invocation of f (the flight table's
// entry for its function), that ran and ended at end: it held its slot
// for hold. A chain of known length ends with its last step.
func (a *admission) finished(c *chain, f *flight, hold time.Duration, ok bool, end time.Time) {
	a.est.observe(f, hold)
	if c.remote != nil {
		a.reportStep(c, ok) // remote.go
		return
	}
	if !ok {
		c.failed.Store(true)
	}
	c.lastEnd.Store(end.UnixNano())
	done := int(c.done.Add(1))
	if c.steps <= 0 || done < c.steps {
		return
	}
	o := ChainCompleted
	if c.failed.Load() {
		o = ChainFailed
	}
	a.end(c, o, end)
}

// abandoned records a step of c that never ran because of err.
func (a *admission) abandoned(c *chain, inv *invocation.Invocation, err error) {
	if c.ended.Load() {
		return
	}
	if c.remote != nil {
		a.reportAbandoned(c, err) // remote.go
		return
	}
	if inv.Continuation {
		switch {
		case errors.Is(err, ErrDeadline):
			a.end(c, ChainDropped, a.now())
		case !c.run || !errors.Is(err, ErrClientGone):
			// A run withdraws the invocations it no longer needs
			// (cancelled branches) and reports its own outcome at
			// EndRun.
			c.failed.Store(true)
		}
		return
	}
	// The first step never ran: the chain never started.
	a.end(c, ChainFailed, a.now())
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
	s.adm.est.observe(f, d)
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

// ActiveChains returns the number of chains remembered (in the table and
// the ring), ended ones not yet forgotten included.
func (s *Scheduler) ActiveChains() int { return s.adm.table.Len() + int(s.adm.ring.live.Load()) }

// ChainIDs is the generator of the chain ids the scheduler keeps in its
// ring: a caller that assigns ids to requests without one (the proxy)
// should take them from it.
func (s *Scheduler) ChainIDs() *ChainIDs { return s.adm.ids }

// Close stops the chain table's sweeper: chains are no longer forgotten
// after SEQUOIA_CHAIN_TTL. Call it once the scheduler is done with.
func (s *Scheduler) Close() {
	s.adm.table.Close()
	s.adm.ring.Close()
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
// estimate, or 1.
func RetryAfterSeconds(err error) int {
	var r *RefusedError
	if errors.As(err, &r) {
		return retryAfterSeconds(r.RetryAfter)
	}
	return 1
}
