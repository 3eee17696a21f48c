package qos

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/queues"
)

// Errors that end a wait without a slot.
var (
	ErrQueueFull    = errors.New("qos: queue full")
	ErrQueueTimeout = errors.New("qos: timed out waiting for a worker slot")
	ErrClientGone   = errors.New("qos: client went away while queued")
	// ErrShutdown ends the waits that Abandon gave up on.
	ErrShutdown = errors.New("qos: shutting down: the wait for a worker slot was abandoned")
)

// Invoker performs one admitted invocation at the platform.
type Invoker interface {
	Invoke(inv *invocation.Invocation) error
}

// Watcher tells a waiting invocation that its caller went away.
type Watcher interface {
	// WatchGone is called only when the invocation has to queue. The
	// returned channel closes if the caller goes away; nil means the
	// caller cannot be watched.
	WatchGone() <-chan struct{}
	// StopWatch ends the watch WatchGone started; it returns once the
	// watch has let go of whatever it watched.
	StopWatch()
}

// Withdrawer is a Watcher whose caller may give up its invocation after it
// was granted a slot but before it is invoked: a DAG run's k-of-n branch
// that the k-th success made useless while it waited. Do asks after every
// grant; a withdrawn invocation gives its slot back at once, is never
// invoked, and ends with ErrClientGone.
type Withdrawer interface {
	Withdrawn() bool
}

// Config sizes a Scheduler.
type Config struct {
	Limit         int           // worker slots
	QueueCapacity int           // first steps that may wait; continuations are never refused
	QueueTimeout  time.Duration // longest wait for a slot

	// BatchShare is the share of dispatch turns the batch class gets when
	// both classes wait (0 < share < 1; 0 means 0.2). Interactive gets the
	// rest. A class alone takes every turn.
	BatchShare float64
	// TenantCap and FunctionCap bound the slots one tenant or one function
	// may hold; 0 means no cap. Caps make every Acquire take the lock. An
	// invocation may carry its own function cap (Invocation.FunctionCap,
	// from a policy): it then takes the lock, and counts against the
	// invocations of its function that carry one.
	TenantCap, FunctionCap int
	// MaxRate bounds invocations per second; 0 means none.
	MaxRate float64

	// Chains.
	ChainTTL        time.Duration // how long the table remembers a chain (default 5m)
	MaxChains       int           // the table's size (default 100000)
	DefaultDeadline time.Duration // budget of chains without X-Sequoia-Deadline-Ms; 0 = none
	DefaultEstimate time.Duration // an invocation's slot time before any is observed (default 100ms)
	// Headroom is the fraction of each chain's budget admission keeps in
	// reserve for delays it cannot observe (0 to 0.9): the least it keeps,
	// and where it starts. MaxHeadroom (Headroom to 0.9; 0 means 0.5) is
	// the most it learns to keep from answers that came too late for
	// their clients; MaxHeadroom = Headroom keeps it fixed.
	Headroom, MaxHeadroom float64
	// ShortestFirst orders waiters of one class and tenant by their
	// function's estimated duration (shortest job first) instead of by
	// deadline. Deadlines still end waits.
	ShortestFirst bool

	// Remote, in a cluster, knows the chains other replicas admitted
	// (remote.go); nil for a replica alone. SpreadReserve is what
	// admission keeps in reserve there for the load balancer's spread of
	// later steps, in standard deviations of it (chains.go, spread); 0:
	// none.
	Remote        Remote
	SpreadReserve float64

	Events Events           // where to report; nil for nowhere
	Now    func() time.Time // admission's clock; nil for time.Now

	// sweepEvery is how often idle chains are checked for quiet callers
	// (0: a quarter of quietFloor; negative: never, for tests that sweep
	// by hand).
	sweepEvery time.Duration
}

// Scheduler is the bounded worker pool, its two queues and chain admission.
type Scheduler struct {
	limit    atomic.Int64
	inflight atomic.Int64
	// waiting counts queued and parked waiters plus arrivals deciding
	// under mu whether to queue; Release takes the lock only when it is
	// non-zero.
	waiting atomic.Int64
	// gated is set when caps are configured: every Acquire and Release
	// then goes through mu to count slots per tenant and function.
	gated bool
	sjf   bool // order by estimated duration, not deadline

	mu       sync.Mutex
	queues   [NumQueues]*queues.Set // REQUIRES: mu
	capacity int
	caps     capCounts // REQUIRES: mu

	timeout time.Duration
	lim     *rate.Limiter
	adm     *admission
	ev      Events
	waiters sync.Pool

	// stop closes when Abandon is called: every waiter leaves with
	// ErrShutdown, and none queues any more.
	stop     chan struct{}
	stopOnce sync.Once

	// Slots held in Do per function, tenant and class, for the policy
	// snapshot (inflight.go).
	fnFlight, tenantFlight flightTable
	classFlight            [NumClasses]atomic.Int64
}

type waiter struct {
	entry   queues.Entry
	kind    QueueKind
	fn      string
	ready   chan struct{} // receives the grant; capacity 1
	timer   *time.Timer
	granted time.Time // when the grant was given
	fnCap   int       // the invocation's own function cap (0: none)
	parked  parkKind  // REQUIRES: Scheduler.mu
}

// New returns a Scheduler with cfg's sizes.
func New(cfg Config) *Scheduler {
	s := &Scheduler{timeout: cfg.QueueTimeout, capacity: cfg.QueueCapacity, stop: make(chan struct{})}
	s.limit.Store(int64(cfg.Limit))
	s.fnFlight, s.tenantFlight = newFlightTable(), newFlightTable()
	share := cfg.BatchShare
	if share <= 0 || share >= 1 {
		share = 0.2
	}
	for k := range s.queues {
		s.queues[k] = queues.NewSet(1-share, share)
	}
	s.gated = cfg.TenantCap > 0 || cfg.FunctionCap > 0
	s.sjf = cfg.ShortestFirst
	s.caps = newCapCounts(cfg.TenantCap, cfg.FunctionCap)
	if cfg.MaxRate > 0 {
		s.lim = rate.NewLimiter(rate.Limit(cfg.MaxRate), max(1, int(cfg.MaxRate/10)))
	}
	s.ev = cfg.Events
	if s.ev == nil {
		s.ev = nopEvents{}
	}
	cfg.Events = s.ev
	s.adm = newAdmission(cfg, s.Limit, s.fnFlight)
	s.waiters.New = func() any {
		w := &waiter{ready: make(chan struct{}, 1), timer: time.NewTimer(time.Hour)}
		w.timer.Stop()
		w.entry.Owner = w
		return w
	}
	return s
}

// Do admits inv (a new chain may be refused with a *RefusedError), waits
// for a slot, runs iv with it and gives it back. It returns how long the
// invocation waited and the error that ended the wait or the invocation.
func (s *Scheduler) Do(inv *invocation.Invocation, w Watcher, iv Invoker) (time.Duration, error) {
	// One map lookup each for the function and the tenant, and seven
	// atomic adds below, no lock (inflight.go); admission learns and reads
	// the function's averages through the same entry.
	fc := s.fnFlight.GetString(inv.Function)
	c, admitted, err := s.adm.admit(inv, fc, w)
	if err != nil {
		return 0, err
	}
	waited, granted, err := s.acquire(inv, w)
	kind := Pending
	if inv.Continuation {
		kind = ChainRunning
	}
	s.ev.Waited(kind, inv.Class, waited)
	if err != nil {
		s.adm.abandoned(c, inv, err)
		return waited, err
	}
	if wd, ok := w.(Withdrawer); ok && wd.Withdrawn() {
		s.Release(inv)
		s.adm.abandoned(c, inv, ErrClientGone)
		return waited, ErrClientGone
	}
	queued := !granted.IsZero()
	if !queued {
		granted = admitted // a free slot at once: no need to read the clock again
	}
	tc := s.tenantFlight.GetString(inv.Tenant)
	unplanned := s.adm.dispatched(c)
	if s.lim != nil {
		// Hold the slot while waiting for a token, so that invocations
		// still reach the platform in the scheduler's order.
		if d := s.lim.Reserve().Delay(); d > 0 {
			time.Sleep(d)
			granted = s.adm.now()
		}
	}
	cc := &s.classFlight[min(inv.Class, NumClasses-1)]
	fc.held.Add(1)
	tc.held.Add(1)
	cc.Add(1)
	err = iv.Invoke(inv)
	fc.held.Add(-1)
	fc.finished.Add(1)
	tc.held.Add(-1)
	cc.Add(-1)
	end := s.adm.now()
	s.Release(inv)
	if inv.RetryIn > 0 && inv.Chain != "" {
		// The invoker will send it again (a throttle, say): no step of
		// the chain ran, and its slot time was not a run.
		s.adm.retrying(c, unplanned)
		return waited, err
	}
	ok := err == nil && (inv.Resp == nil || inv.Resp.StatusCode() < 500 && inv.Resp.StatusCode() != 429)
	s.adm.finished(c, fc, end.Sub(granted), queued, ok, unplanned, end, w)
	return waited, err
}

// GiveUp records that the retry inv's last attempt planned (inv.RetryIn)
// will not be made because of err (its client left during the wait, say):
// that step of its chain ends as if it had never run, as Do ends one that
// waited in vain. It does nothing when no retry is pending.
func (s *Scheduler) GiveUp(inv *invocation.Invocation, err error) {
	if inv.RetryIn <= 0 || inv.Chain == "" {
		return
	}
	inv.RetryIn, inv.RetryReason = 0, ""
	a := s.adm
	if c, ok := a.lookup(inv.Chain, a.now()); ok {
		a.abandoned(c, inv, err)
	}
}

// Acquire takes a worker slot for inv, waiting in its queue (the
// chain-running queue if inv.Continuation, else the pending one) if none is
// free. On success the caller must call Release(inv) exactly once. Acquire
// does no chain admission: Do does.
//
// Hot-path cost with a free slot, nobody waiting and no caps: one atomic
// load and one compare-and-swap.
func (s *Scheduler) Acquire(inv *invocation.Invocation, w Watcher) (time.Duration, error) {
	waited, _, err := s.acquire(inv, w)
	return waited, err
}

func (s *Scheduler) acquire(inv *invocation.Invocation, w Watcher) (time.Duration, time.Time, error) {
	if !s.gated && inv.FunctionCap == 0 && s.waiting.Load() == 0 && s.tryAcquire() {
		return 0, time.Time{}, nil
	}
	return s.acquireSlow(inv, w)
}

func (s *Scheduler) tryAcquire() bool {
	for {
		n := s.inflight.Load()
		if n >= s.limit.Load() {
			return false
		}
		if s.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// TryAcquireIdle takes a worker slot for work of the lowest class (warm-ups)
// only if nobody waits in either queue and, once it is taken, at least
// headroom slots are still free. It never waits or queues; on success the
// caller must call ReleaseIdle exactly once. Such a slot counts against the
// limit but against no tenant or function cap.
//
// A waiter that announces itself while the slot is being taken makes it
// give the slot back at once, so the slot goes to the waiter. One that
// arrives later finds the headroom. Cost: two atomic loads, one
// compare-and-swap, one more load.
func (s *Scheduler) TryAcquireIdle(headroom int) bool {
	if s.waiting.Load() != 0 {
		return false
	}
	for {
		n := s.inflight.Load()
		if n+1+int64(max(headroom, 0)) > s.limit.Load() {
			return false
		}
		if s.inflight.CompareAndSwap(n, n+1) {
			break
		}
	}
	if s.waiting.Load() != 0 {
		s.ReleaseIdle()
		return false
	}
	return true
}

// ReleaseIdle gives back a slot TryAcquireIdle took and grants it to the
// next waiter, if any.
func (s *Scheduler) ReleaseIdle() {
	s.inflight.Add(-1)
	if s.waiting.Load() > 0 {
		s.dispatch()
	}
}

func (s *Scheduler) acquireSlow(inv *invocation.Invocation, w Watcher) (time.Duration, time.Time, error) {
	start := time.Now()
	kind := Pending
	if inv.Continuation {
		kind = ChainRunning
	}
	timeout, err := s.timeout, ErrQueueTimeout
	if inv.QueueTimeout > 0 {
		timeout = inv.QueueTimeout // the policy's, for this invocation
	}
	if !inv.Deadline.IsZero() {
		if d := inv.Deadline.Sub(s.adm.now()); d < timeout {
			timeout, err = d, ErrDeadline
		}
	}
	var sjfKey int64
	if s.sjf {
		sjfKey = int64(s.Estimate(inv.Function))
	}
	crq, pq := s.queues[ChainRunning], s.queues[Pending]
	wt := s.waiters.Get().(*waiter)
	s.mu.Lock()
	// Announce ourselves before looking at the slots: a Release that
	// misses this increment freed its slot before our look, so we see it.
	s.waiting.Add(1)
	if crq.Len() == 0 && (kind == ChainRunning || pq.Len() == 0) &&
		!s.caps.full(inv.Tenant, inv.Function, inv.FunctionCap) && s.tryAcquire() {
		s.caps.take(inv.Tenant, inv.Function, inv.FunctionCap)
		s.waiting.Add(-1)
		s.mu.Unlock()
		s.waiters.Put(wt)
		return time.Since(start), time.Time{}, nil
	}
	if s.stopped() {
		s.waiting.Add(-1)
		s.mu.Unlock()
		s.waiters.Put(wt)
		return 0, time.Time{}, ErrShutdown
	}
	if kind == Pending && pq.Len() >= s.capacity || timeout <= 0 {
		s.waiting.Add(-1)
		s.mu.Unlock()
		s.waiters.Put(wt)
		if timeout <= 0 {
			return 0, time.Time{}, err
		}
		return 0, time.Time{}, ErrQueueFull
	}
	wt.kind, wt.fn, wt.fnCap = kind, inv.Function, inv.FunctionCap
	wt.entry.Class, wt.entry.Tenant = min(inv.Class, NumClasses-1), inv.Tenant
	wt.entry.Priority = inv.Priority
	// Earliest deadline first; without one, the time the wait would
	// time out, which keeps arrival order among them.
	wt.entry.Key = s.adm.now().Add(timeout).UnixNano()
	if err == ErrDeadline {
		wt.entry.Key = inv.Deadline.UnixNano()
	}
	if s.sjf {
		wt.entry.Key = sjfKey
	}
	s.queues[kind].Push(&wt.entry)
	if s.gated || wt.fnCap > 0 {
		// Slots may be free while the waiters ahead are capped.
		s.dispatchLocked()
	}
	s.mu.Unlock()

	var gone <-chan struct{}
	if w != nil {
		gone = w.WatchGone()
	}
	wt.timer.Reset(timeout)
	var granted time.Time
	select {
	case <-wt.ready:
		err = nil
		granted = wt.granted
	case <-wt.timer.C:
	case <-gone:
		err = ErrClientGone
	case <-s.stop:
		err = ErrShutdown
	}
	wt.timer.Stop()
	if gone != nil {
		w.StopWatch()
	}
	if err != nil {
		s.mu.Lock()
		removed := s.removeLocked(wt)
		if removed {
			s.waiting.Add(-1)
		}
		s.mu.Unlock()
		if !removed {
			// A grant raced with the timeout or the departure: it is
			// already in ready. A timed-out waiter uses it; a departed
			// one passes it on.
			<-wt.ready
			granted = wt.granted
			if err == ErrClientGone || err == ErrShutdown {
				s.waiters.Put(wt)
				s.Release(inv)
				return time.Since(start), time.Time{}, err
			}
			err = nil
		}
	}
	s.waiters.Put(wt)
	return time.Since(start), granted, err
}

// removeLocked takes a waiter that gave up out of its queue or its parking
// place and reports whether it was still waiting.
//
// REQUIRES: s.mu held.
func (s *Scheduler) removeLocked(wt *waiter) bool {
	if wt.parked != notParked {
		return s.caps.unparkWaiter(wt)
	}
	return s.queues[wt.kind].Remove(&wt.entry)
}

// Release gives back the slot inv took and grants it to the next waiter,
// if any.
func (s *Scheduler) Release(inv *invocation.Invocation) {
	if s.gated || inv.FunctionCap > 0 {
		s.mu.Lock()
		s.caps.give(inv.Tenant, inv.Function, inv.FunctionCap)
		s.inflight.Add(-1)
		for _, wt := range s.caps.unblocked(inv.Tenant, inv.Function) {
			s.queues[wt.kind].Push(&wt.entry)
		}
		s.dispatchLocked()
		s.mu.Unlock()
		return
	}
	s.inflight.Add(-1)
	if s.waiting.Load() > 0 {
		s.dispatch()
	}
}

// dispatch grants free slots to waiters.
func (s *Scheduler) dispatch() {
	s.mu.Lock()
	s.dispatchLocked()
	s.mu.Unlock()
}

// dispatchLocked grants free slots to waiters: the chain-running queue
// first, then the pending one; inside each, by class share, then tenant
// fair share, then earliest deadline. A waiter whose tenant or function is
// at its cap is parked until one of its slots comes back.
//
// REQUIRES: s.mu held.
func (s *Scheduler) dispatchLocked() {
	if s.stopped() {
		return // Abandon wakes every waiter; none is granted a slot
	}
	var now time.Time
	for {
		q := s.queues[ChainRunning]
		if q.Len() == 0 {
			q = s.queues[Pending]
		}
		if q.Len() == 0 || !s.tryAcquire() {
			return
		}
		wt := q.Pop().Owner.(*waiter)
		if s.gated || wt.fnCap > 0 {
			if s.caps.park(wt) {
				s.inflight.Add(-1)
				continue
			}
			s.caps.take(wt.entry.Tenant, wt.fn, wt.fnCap)
		}
		if now.IsZero() {
			now = s.adm.now()
		}
		wt.granted = now
		s.waiting.Add(-1)
		wt.ready <- struct{}{}
	}
}

// Abandon ends every wait for a slot with ErrShutdown, and refuses every
// wait from now on with it; an invocation that finds a free slot at once
// still takes it. It is for shutdown, once the time given to the queues
// has run out, so that each waiting caller can be answered. It returns
// the number of waits it ended.
func (s *Scheduler) Abandon() int {
	n := s.Queued()
	s.stopOnce.Do(func() { close(s.stop) })
	return n
}

func (s *Scheduler) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// SetLimit changes the number of worker slots. Raising it grants waiters at
// once; lowering it lets in-flight invocations finish and admits no more
// until the count is under the new limit.
func (s *Scheduler) SetLimit(n int) {
	s.limit.Store(int64(n))
	s.dispatch()
}

// InFlight returns the number of slots held.
func (s *Scheduler) InFlight() int { return int(s.inflight.Load()) }

// Limit returns the number of worker slots.
func (s *Scheduler) Limit() int { return int(s.limit.Load()) }

// Queued returns the number of waiters, parked ones included.
func (s *Scheduler) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queues[ChainRunning].Len() + s.queues[Pending].Len() + s.caps.parkedLen()
}

// Depth returns the number of waiters in queue k of class c (parked
// waiters not included).
func (s *Scheduler) Depth(k QueueKind, c uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queues[k].ClassLen(int(c))
}

// QueueCapacity returns the most first steps the pending queue holds.
func (s *Scheduler) QueueCapacity() int { return s.capacity }

// QueueTimeout returns the longest wait for a slot.
func (s *Scheduler) QueueTimeout() time.Duration { return s.timeout }
