package qos

import "time"

// RunPlan describes a workflow run (package dag) that is admitted as one
// chain: all its invocations carry Chain and, once admitted, go to the
// chain-running queue.
type RunPlan struct {
	Chain string
	Class uint8
	// Budget is the run's deadline from now; 0 means the configured
	// default chain deadline (and none if that is 0).
	Budget time.Duration
	// Critical is the estimated length of the run's critical path: the
	// longest chain of invocations that must follow one another.
	Critical time.Duration
	// Work is the estimated slot time of all its invocations together,
	// and Steps their number.
	Work  time.Duration
	Steps int
	// Tenant and Name (the DAG's) say whose run it is when it ends
	// (ChainEnd's Tenant and Function).
	Tenant, Name string
}

// AdmitRun decides whether a run may start, the way a chain's first step
// is admitted, but before any of its invocations is made: it fits if its
// critical path, started once the work admitted ahead of it is projected
// done (the earliest free slot on the timeline, and the outstanding steps
// spread over every slot), and all of its own work spread over the pool
// after that, finish within the budget less the headroom.
// On success the run is in the chain table (its invocations are
// continuations) and AdmitRun returns its deadline (zero: none); the
// caller must end it with EndRun. A refusal is a *RefusedError.
func (s *Scheduler) AdmitRun(p RunPlan) (time.Time, error) {
	a := s.adm
	now := a.now()
	budget := p.Budget
	if budget <= 0 {
		budget = a.defaultDeadline
	}
	steps := max(p.Steps, 1)
	limit := max(a.limit(), 1)
	// The run's first invocations wait behind the work admitted ahead of
	// it (continuations are served earliest deadline first, and those of
	// runs admitted earlier have earlier deadlines): until a slot is
	// projected free, and until the steps admitted ahead, spread over
	// every slot, are done. Its critical path follows.
	project := func(ln *timeline) (int64, int64) {
		out := a.est.ahead()
		ahead := int64(out * float64(a.est.drain()) / float64(limit))
		start := max(now.UnixNano(), ln.slots[0].free, now.UnixNano()+ahead)
		finish := start + int64(p.Critical)
		// And all of its own work spread over the pool, after that ahead.
		finish = max(finish, now.UnixNano()+ahead+int64(p.Work)/int64(limit))
		if r := a.est.rate(); r > 0 {
			finish = max(finish, now.UnixNano()+int64((out+float64(steps))/r*float64(time.Second)))
		}
		return start, finish
	}
	headroom := a.hr.value()
	bk, finish, deadline, err := a.place(limit, now, now, budget, headroom, 0, project, // a run's steps all run here
		func(ln *timeline, start int64) booking { return a.est.reserve(ln, start, p.Critical, steps, limit) })
	if err != nil {
		if a.est.observed(nil) {
			a.hopeless(err, budget, max(p.Critical, p.Work/time.Duration(limit)), steps)
		}
		a.ev.ChainRefused(p.Class)
		return time.Time{}, err
	}
	c := &chain{booking: bk, class: p.Class, start: now, deadline: deadline, headroom: headroom,
		predicted: time.Duration(finish - now.UnixNano()), run: true, tenant: p.Tenant, function: p.Name}
	c.remaining.Store(int32(steps))
	a.live.Add(1)
	a.store(p.Chain, c, false, now) // ends a forgotten chain of that id, if any
	a.ev.ChainStarted(p.Class)
	return deadline, nil
}

// EndRun ends a run AdmitRun admitted; failed marks it so in the chain
// outcome.
func (s *Scheduler) EndRun(chain string, failed bool) {
	a := s.adm
	c, ok := a.lookup(chain, a.now())
	if ok && failed {
		c.failed.Store(true)
	}
	a.forget(chain, c) // ends it (evicted)
}

// TouchRun keeps a run admitted by AdmitRun in the chain table for another
// SEQUOIA_CHAIN_TTL, so that a run longer than the TTL keeps its place:
// its invocations stay continuations. Cost: the table's lock, briefly.
func (s *Scheduler) TouchRun(chain string) {
	a := s.adm
	now := a.now()
	if c, ok := a.lookup(chain, now); ok {
		a.renew(chain, c, now)
	}
}

// SkipRunSteps gives back n of the steps AdmitRun reserved for the run
// chain that it will never make (the branches a k-of-n fan-out cancelled),
// so that admission stops counting them as work ahead of later chains.
// It gives back no more than are still reserved. Cost: a few atomic
// operations and the chain table's lock, briefly.
func (s *Scheduler) SkipRunSteps(chain string, n int) {
	a := s.adm
	c, ok := a.lookup(chain, a.now())
	if !ok || n <= 0 {
		return
	}
	for {
		r := c.remaining.Load()
		k := min(int32(n), r)
		if k <= 0 {
			return
		}
		if c.remaining.CompareAndSwap(r, r-k) {
			a.est.outstanding.Add(-int64(k))
			return
		}
	}
}
