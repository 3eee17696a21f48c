package qos

import (
	"errors"
	"iter"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Remote is how admission meets the other replicas of a cluster (package
// cluster implements it): chains another replica admitted, whose steps
// land here, and the reports that tell that replica what became of them.
// Its methods are called on the request path: Admitted and Step must not
// wait on the network (they queue what they send); Resolve may, at most
// once per chain, for a chain id the client chose (a ticket, carried by
// the ids sequoia assigns, is read without a look-up).
type Remote interface {
	// Resolve says whether inv's chain, which this replica does not
	// know, was admitted by another replica, and what it was promised.
	Resolve(inv *invocation.Invocation) (RemoteChain, bool)
	// Admitted tells that inv started a new chain here, expected to make
	// steps invocations; inv.Deadline is its deadline.
	Admitted(inv *invocation.Invocation, steps int)
	// Step reports what became of a step of c run here.
	Step(c RemoteChain, o StepOutcome)
	// Replicas counts the live replicas, this one included.
	Replicas() int
}

// RemoteChain is a chain another replica admitted.
type RemoteChain struct {
	// Origin is where the admitting replica hears its reports; ID the
	// chain's id there.
	Origin, ID string
	Deadline   time.Time // zero: none
	Steps      int       // 0: not told
}

// StepOutcome is what became of a step of a chain another replica
// admitted.
type StepOutcome uint8

// Step outcomes.
const (
	StepRan     StepOutcome = iota // it ran, and the platform answered
	StepFailed                     // it failed: a platform error, a 5xx or 429, or it never got a slot
	StepDropped                    // its chain's deadline passed while it waited
	StepLate                       // it was answered after its chain's deadline
	StepGone                       // its client left before its answer (with a deadline, as a local step's would be dropped)
)

// stepDrops are the step outcomes that drop a chain, and how.
var stepDrops = map[StepOutcome]ChainOutcome{StepDropped: ChainDropped, StepLate: ChainLate, StepGone: ChainGone}

// remoteChain marks a chain record that stands for a chain another replica
// admitted: it is a continuation here, reports its steps to the origin,
// and reports no chain events of its own (the origin counts the chain).
type remoteChain struct {
	RemoteChain
}

// adopt returns a record for inv's chain, unknown here, if another
// replica admitted it (Remote.Resolve) and its deadline has not passed:
// stored like any chain, so that the chain's later steps here find it
// without asking again. It books nothing: the chain's reservation is the
// origin's, and its steps here are booked when dispatched (unplanned
// steps), while the origin gives back what they took there on their
// reports (RemoteStep).
func (a *admission) adopt(inv *invocation.Invocation, now time.Time) *chain {
	rc, ok := a.remote.Resolve(inv)
	if !ok || !rc.Deadline.IsZero() && now.After(rc.Deadline) {
		return nil
	}
	rc.ID = inv.Chain
	c := &chain{class: inv.Class, start: now, deadline: rc.Deadline, steps: rc.Steps,
		remote: &remoteChain{RemoteChain: rc}}
	c.requests.Store(1) // at least one step was admitted there
	a.store(inv.Chain, c, false, now)
	return c
}

// reportStep reports a step of c, a chain another replica admitted, that
// ran here and ended at end (ok: the platform answered without a
// failure), as finished judges a local one: an answer after the chain's
// deadline, or to a client that left (w, asked in the second half of the
// budget as this replica saw it), drops the chain.
func (a *admission) reportStep(c *chain, ok bool, end time.Time, w Watcher) {
	o := StepRan
	switch tooLate(c, end, w) {
	case ChainLate:
		o = StepLate
	case ChainGone:
		o = StepGone
	default:
		if !ok {
			o = StepFailed
		}
	}
	a.remote.Step(c.remote.RemoteChain, o)
}

// reportAbandoned reports a step of c, a chain another replica admitted,
// that never ran here because of err: a passed deadline drops the chain,
// and so does a client that left while the step waited (when the chain
// has a deadline); anything else (a full queue, a timed-out wait) fails
// it.
func (a *admission) reportAbandoned(c *chain, err error) {
	o := StepFailed
	switch {
	case errors.Is(err, ErrDeadline):
		o = StepDropped
	case errors.Is(err, ErrClientGone) && !c.deadline.IsZero():
		o = StepGone
	}
	a.remote.Step(c.remote.RemoteChain, o)
}

// RemoteStep records what another replica reports of a step of a chain
// this one admitted (the chain id as assigned or given here): a step that
// ran there takes one of the chain's reserved steps as if dispatched here
// and counts as done; the chain ends with its last told step, or dropped.
// A drop there teaches this replica's headroom, as a late answer or a
// departed client here would: a step that waited past its deadline on
// another replica is work this one's projection did not see (the load
// balancer's spread), so it counts too. A chain already ended or
// forgotten is left alone.
func (s *Scheduler) RemoteStep(id string, o StepOutcome) {
	a := s.adm
	now := a.now()
	c, ok := a.lookup(id, now)
	if !ok || c.remote != nil || c.ended.Load() {
		return
	}
	if drop, ok := stepDrops[o]; ok {
		a.missed(c, drop, now)
		return
	}
	a.takeReserved(c)
	c.requests.Add(1)
	c.lastEnd.Store(0) // the turnaround to the next step was not seen here
	if o == StepFailed {
		c.failed.Store(true)
	}
	done := int(c.done.Add(1))
	if c.steps <= 0 || done < c.steps {
		return
	}
	out := ChainCompleted
	if c.failed.Load() {
		out = ChainFailed
	}
	a.end(c, out, now)
}

// SetRate changes the rate limit (SEQUOIA_MAX_RATE's share a cluster
// lease grants), for dispatch and for admission's projections. It does
// nothing when the scheduler was made without a rate limit.
func (s *Scheduler) SetRate(r float64) {
	if s.lim == nil {
		return
	}
	r = max(r, 1e-3) // a zero limit would let the burst through
	s.lim.SetLimit(rate.Limit(r))
	s.lim.SetBurst(max(1, int(r/10)))
	s.adm.est.rateBits.Store(math.Float64bits(r))
}

// Committed returns how many worker slots admitted work is booked on past
// now, by admission's reservation timeline: a lease may shrink to no fewer
// without breaking a promise made to a chain already admitted. It takes
// each line's lock in turn: for a background reader, not the request path.
func (s *Scheduler) Committed() int {
	a := s.adm
	limit := max(a.limit(), 1)
	n, lines := timelineSlots(limit)
	now := a.now().UnixNano()
	busy := 0
	for i := range lines {
		ln := &a.est.lines[i]
		ln.mu.Lock()
		for _, sl := range ln.slots {
			if sl.free > now {
				busy++
			}
		}
		ln.mu.Unlock()
	}
	if limit > n {
		busy = (busy*limit + n - 1) / n
	}
	return min(busy, limit)
}

// Estimates is what admission learned, to share with other replicas: per
// function, its slot time and the length of the chains it enters; over
// all functions, the slot time and the callers' turnaround between steps.
// Zero means not learned.
type Estimates struct {
	Slot       time.Duration
	Turnaround time.Duration
	Functions  map[string]FunctionEstimate
}

// FunctionEstimate is what admission learned of one function.
type FunctionEstimate struct {
	Slot  time.Duration
	Steps float64
}

// Estimates returns what admission learned, for at most limit functions
// (those with the most finished invocations first is not promised: the
// table's order). It walks the function table: for a background reader.
func (s *Scheduler) Estimates(limit int) Estimates {
	e := s.adm.est
	out := Estimates{Functions: map[string]FunctionEstimate{}}
	if v, ok := e.all.value(); ok {
		out.Slot = time.Duration(v)
	}
	if v, ok := e.gap.value(); ok {
		out.Turnaround = time.Duration(v)
	}
	for name, f := range s.fnFlight.All() {
		if len(out.Functions) >= limit {
			break
		}
		var fe FunctionEstimate
		if v, ok := f.slot.value(); ok {
			fe.Slot = time.Duration(v)
		}
		if v, ok := f.steps.value(); ok {
			fe.Steps = v
		}
		if fe != (FunctionEstimate{}) {
			out.Functions[name] = fe
		}
	}
	return out
}

// Seed takes what another replica learned as a starting point for what
// this one has not learned yet: a value learned here is never replaced.
// functions yields the names and estimates to take.
func (s *Scheduler) Seed(slot, turnaround time.Duration, functions iter.Seq2[string, FunctionEstimate]) {
	e := s.adm.est
	seed := func(m *ewma, v float64) {
		if _, ok := m.value(); !ok && v > 0 {
			m.add(v)
		}
	}
	seed(&e.all, float64(slot))
	seed(&e.gap, float64(turnaround))
	for name, fe := range functions {
		f := s.fnFlight.GetString(name)
		seed(&f.slot, float64(fe.Slot))
		seed(&f.steps, fe.Steps)
	}
}

// Prefix is what every id g assigns starts with ("sq-<16 hex>-"): unique
// to this process, so that another replica can tell whose id it is.
func (g *ChainIDs) Prefix() string { return g.prefix }

// clusterAdmitted tells the cluster that c, a new chain, was admitted here
// for inv, and has what it reserved given back at its deadline if its
// steps do not come back here to use it (expiry).
func (a *admission) clusterAdmitted(inv *invocation.Invocation, c *chain, steps int) {
	a.remote.Admitted(inv, steps)
	if !c.deadline.IsZero() && a.expiry != nil {
		a.expiry.add(c)
	}
}

// expiry gives back, at each chain's deadline, the steps it reserved and
// no replica used: in a cluster a chain's later steps may run at another
// replica, which reports them (RemoteStep), but a report can be lost (that
// replica killed, NATS away, a client-chosen id not found there), and a
// chain cannot come back after its deadline anyway. So the fluid bound
// never counts work that will not come. Chains are kept in shards, each
// under its own lock (a new chain takes one); a sweeper walks them.
type expiry struct {
	a      *admission
	shards [expiryShards]expiryShard
	next   atomic.Uint32
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

const (
	expiryShards = 16
	expiryEvery  = 50 * time.Millisecond
)

type expiryShard struct {
	mu     sync.Mutex
	chains []*chain // REQUIRES mu
	_      [40]byte // keeps two shards' locks off one cache line
}

func newExpiry(a *admission) *expiry {
	x := &expiry{a: a, stop: make(chan struct{}), done: make(chan struct{})}
	go x.run()
	return x
}

// add keeps c until its deadline. Cost: one shard's lock, an append.
func (x *expiry) add(c *chain) {
	sh := &x.shards[x.next.Add(1)%expiryShards]
	sh.mu.Lock()
	sh.chains = append(sh.chains, c)
	sh.mu.Unlock()
}

func (x *expiry) run() {
	defer close(x.done)
	t := time.NewTicker(expiryEvery)
	defer t.Stop()
	for {
		select {
		case <-x.stop:
			return
		case <-t.C:
			x.sweep(x.a.now())
		}
	}
}

// sweep gives back the reserved steps of the chains whose deadline passed
// by now, and forgets them and the ended ones.
func (x *expiry) sweep(now time.Time) {
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		keep := sh.chains[:0]
		for _, c := range sh.chains {
			switch {
			case c.ended.Load():
			case now.After(c.deadline):
				x.a.est.outstanding.Add(-int64(c.remaining.Swap(0)))
			default:
				keep = append(keep, c)
			}
		}
		clear(sh.chains[len(keep):])
		sh.chains = keep
		sh.mu.Unlock()
	}
}

func (x *expiry) close() {
	x.once.Do(func() {
		close(x.stop)
		<-x.done
	})
}
