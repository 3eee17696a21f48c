package warmpool

import (
	"bytes"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
)

// Slots is the worker pool's entry for the lowest class (qos.Scheduler):
// a slot only when one is free, nobody waits, and headroom slots stay free.
type Slots interface {
	TryAcquireIdle(headroom int) bool
	ReleaseIdle()
	Limit() int
	// Estimate is the scheduler's estimate of one invocation of fn's
	// slot time.
	Estimate(fn string) time.Duration
}

// Invoker sends one request to the platform (platform.Client).
type Invoker interface {
	Invoke(inv *invocation.Invocation) error
}

// Reporter hears what the pool does and sees (metrics.WarmPool).
type Reporter interface {
	// Warmup reports one warm-up's end.
	Warmup(reason Reason, ok bool)
	// ColdStart reports a cold start paid by a real invocation.
	ColdStart(function string)
	// Held reports the hold one warm-up asked for: its slot-time at the
	// platform, a cold start aside.
	Held(hold time.Duration)
	// Round reports a round of warm-ups sent together and checked (hold.go):
	// verified when their answers prove they held distinct instances.
	Round(verified bool)
}

// Reason is why a warm-up was sent.
type Reason uint8

// Reasons, the values of the "reason" label.
const (
	KeepAlive Reason = iota // keep N instances from expiring
	Burst                   // demand beyond the instances believed warm
	Chain                   // the next step of a chain that started
	NumReasons
)

var reasonNames = [NumReasons]string{"keepalive", "burst", "chain"}

func (r Reason) String() string { return reasonNames[r] }

// Config configures a Pool. Zero durations take the defaults noted.
type Config struct {
	Platform invocation.Platform
	// Min is the warm count of every function seen recently; Functions
	// overrides it per function, and a function listed with 0 gets no
	// warm-up of any kind. A policy's pre-warm hint (Invocation.Prewarm)
	// raises the count for its function, and switches a function listed
	// with 0 back on.
	Min       int
	Functions map[string]int
	// Burst and Chains switch burst and chain pre-warm on; BurstFunctions
	// and ChainFunctions override them per function (chain pre-warm by
	// the function it would warm: the next step's). A policy's pre-warm
	// hint switches both on for its function.
	Burst, Chains                  bool
	BurstFunctions, ChainFunctions map[string]bool
	// KeepAlive is the platform's idle-instance lifetime (10m).
	KeepAlive time.Duration
	// MaxFunctions bounds the functions remembered (1000); MaxChains the
	// chains whose last function is remembered to learn successors
	// (10000). Each bound is split over up to 16 shards of 64 entries at
	// least (a bound below 128 keeps one): the least recently used entry
	// of a shard goes first, so eviction is least recently used overall
	// only approximately.
	MaxFunctions, MaxChains int
	// Headroom is the fraction of the limit warm-ups leave free; at least
	// one slot is always left.
	Headroom float64
	// Hold is how long a warm-up first asks the function to keep its
	// instance busy, so that concurrent warm-ups reach distinct
	// instances. The pool adapts it per function within [HoldMin,
	// HoldMax] from what each round of warm-ups shows it needed
	// (hold.go); with HoldMin == HoldMax, or HoldMax 0, it stays Hold.
	// Holds are whole milliseconds, rounded up; an adaptive one is 1ms
	// at least.
	Hold, HoldMin, HoldMax time.Duration
	// Backoff is the first pause after a failed warm-up of a function
	// (1s), doubled per further failure up to MaxBackoff (5m).
	Backoff, MaxBackoff time.Duration
	Reporter            Reporter
	Log                 *slog.Logger
	Now                 func() time.Time // nil: time.Now
}

// Pool keeps functions warm. Its methods are safe for concurrent use.
//
// Nothing on the request path (Arrived, Finished) takes a lock that all
// requests share: functions and chains sit in sharded LRUs (shard.go), each
// function's state has its own mutex, and the flags are atomic.
type Pool struct {
	cfg   Config
	slots Slots
	iv    Invoker

	fns    shards[*function]
	chains shards[*function] // chain id → its last function
	signal atomic.Bool       // the platform flags cold starts itself
	closed atomic.Bool
	// closing orders Close against a warm-up about to be sent: a sender
	// adds itself to sending under the read lock, after checking closed;
	// Close sets closed under the write lock, then waits for sending.
	// Only sends take it, never a request that sends nothing.
	closing sync.RWMutex
	sending sync.WaitGroup
	// epoch is when the pool was made. Functions are stamped when seen
	// with the monotonic clock's time since, not Config.Now's: a test's
	// clock may stand still, and Status orders functions across shards by
	// their stamps. ownClock says Config.Now is not time.Now.
	epoch    time.Time
	ownClock bool
}

// function is what the pool believes about one function's instances.
// Its fields are guarded by mu, but for name (fixed), seen and gone
// (atomic).
type function struct {
	mu   sync.Mutex
	name string
	seen atomic.Int64 // when Arrived last saw it (Pool.stamp), for Status's order
	// gone says the pool has forgotten it (evicted): a pointer kept to it
	// (a chain's last step, a successor) no longer is name's state.
	gone atomic.Bool

	qualifier string
	host      string // http: the Host the function was called with
	path      string // http: "/" or "/name" (path routing)
	auth      string // the Authorization its callers sent (openwhisk, http)
	hint      int    // the policy's latest pre-warm hint

	real int // real invocations arrived and not finished
	// uncovered counts the arrivals in a row that found no idle instance
	// (since one did, or since nothing ran), the first at streakAt;
	// sustained those of them that came an invocation's time later.
	uncovered, sustained int
	streakAt             time.Time
	warming              int         // warm-ups in flight
	idle                 []time.Time // when each idle instance last finished, oldest first

	next   string // the function that most often follows it in a chain
	votes  int
	nextFn *function // next's state as last looked up; nil: look it up

	fails   int       // consecutive failed warm-ups
	retryAt time.Time // no warm-up before this

	sent [NumReasons]int64 // warm-ups sent, by reason
	cold int64             // cold starts real invocations paid

	lat latencyFloor // lowest recent latency (warm), for cold detection

	// hold is what its warm-ups ask for now; need what its rounds showed
	// they needed, smoothed (hold.go), 0 before the first; excess the
	// lowest recent round trip beyond the hold of a warm warm-up, for
	// cold detection without the platform's signal. rounds counts the
	// rounds checked, unverified and verified; redo asks Tick to send the
	// last keep-alive round again with a hold it raised.
	hold, need time.Duration
	excess     latencyFloor
	rounds     [2]int64
	redo       bool
	// early counts the checked rounds in which a warm warm-up came back
	// sooner than its hold; earlyRun those in a row, with no round
	// verified since. From ignoreAfter in a row the function is taken to
	// ignore sequoia_warmup_hold_ms (hold.go).
	early, earlyRun int64
}

// New returns a Pool that takes slots from slots and sends warm-ups with iv.
func New(cfg Config, slots Slots, iv Invoker) *Pool {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Minute
	}
	if cfg.MaxFunctions <= 0 {
		cfg.MaxFunctions = 1000
	}
	if cfg.MaxChains <= 0 {
		cfg.MaxChains = 10000
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = max(cfg.Backoff, 5*time.Minute)
	}
	cfg.Hold, cfg.HoldMin, cfg.HoldMax = wholeMs(cfg.Hold), wholeMs(cfg.HoldMin), wholeMs(cfg.HoldMax)
	if cfg.HoldMax <= 0 {
		cfg.HoldMin, cfg.HoldMax = cfg.Hold, cfg.Hold
	}
	if cfg.HoldMin < cfg.HoldMax {
		cfg.HoldMin = max(cfg.HoldMin, time.Millisecond)
	}
	cfg.HoldMin = min(cfg.HoldMin, cfg.HoldMax)
	cfg.Hold = min(max(cfg.Hold, cfg.HoldMin), cfg.HoldMax)
	ownClock := cfg.Now != nil
	if !ownClock {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Reporter == nil {
		cfg.Reporter = nopReporter{}
	}
	return &Pool{cfg: cfg, slots: slots, iv: iv, epoch: time.Now(), ownClock: ownClock,
		fns:    newShards(cfg.MaxFunctions, func(_ string, f *function) { f.gone.Store(true) }),
		chains: newShards[*function](cfg.MaxChains, nil)}
}

// Arrived records a real invocation before it queues: it counts as demand,
// teaches the pool which function follows which in a chain, and may send
// burst and chain warm-ups into idle capacity.
//
// Cost: the function's shard and its own mutex, one at a time (the
// shard's LRU reordered at most once per touchEvery); in a chain, also the
// chain's shard and the mutexes of the previous step's function and of the
// next step's (found by pointer, their shards only once forgotten), and an
// LRU insert (one allocation) for a chain id not seen before. No lock that
// other functions' requests need, and never two locks at once. It leaves
// the function's state in inv.Warm for Finished.
func (p *Pool) Arrived(inv *invocation.Invocation) {
	now := p.cfg.Now()
	if p.closed.Load() {
		return
	}
	f := p.function(inv.Function, p.stamp(now))
	inv.Warm = f
	if inv.Chain != "" {
		// Learnt even where chain pre-warm is off: a policy's hint may
		// switch it on for the next function at any time.
		if pf := p.chainStep(inv.Chain, f); pf != nil && pf.name != f.name {
			if pf.gone.Load() {
				pf, _ = p.fns.peek(pf.name)
			}
			if pf != nil {
				pf.mu.Lock()
				pf.vote(f.name)
				pf.mu.Unlock()
			}
		}
	}
	f.mu.Lock()
	p.learnLocked(f, inv)
	f.hint = inv.Prewarm // the latest decision's; 0 when the policy gives none
	f.real++
	if f.takeLocked(now, p.cfg.KeepAlive) {
		f.uncovered, f.sustained = 0, 0
	} else if switched(f, p.cfg.BurstFunctions, p.cfg.Burst) {
		// This invocation starts an instance of its own (cold): a
		// warm-up sent now is no faster, so it helps only arrivals still
		// to come, and an instantaneous burst has none. Demand is
		// outgrowing the warm instances only if arrivals keep finding
		// none for longer than an invocation usually holds its slot
		// (the first of them would have freed theirs if warm): from
		// then on, one warm-up per such arrival, less those in flight.
		if f.uncovered == 0 {
			f.streakAt = now
		}
		f.uncovered++
		if f.uncovered > 1 && now.Sub(f.streakAt) >= p.slots.Estimate(f.name) {
			f.sustained++
			p.warmLocked(f, f.sustained-f.warming, Burst, now)
		}
	}
	var next string
	var s *function
	if f.votes > 0 {
		next, s = f.next, f.nextFn
	}
	running := f.real
	f.mu.Unlock()
	if inv.Chain == "" || next == "" {
		return
	}
	if s == nil || s.gone.Load() {
		var ok bool
		if s, ok = p.fns.peek(next); !ok {
			return
		}
		f.mu.Lock()
		if f.next == next {
			f.nextFn = s
		}
		f.mu.Unlock()
	}
	if s == f {
		return
	}
	// f's lock is released before s's is taken: never two at once. f may
	// have moved on meanwhile; the warm-ups below are an estimate anyway.
	s.mu.Lock()
	defer s.mu.Unlock()
	if !switched(s, p.cfg.ChainFunctions, p.cfg.Chains) {
		return
	}
	// Each invocation of f running now will call s. New instances come
	// only from warm-ups that outnumber the idle ones (the platform hands
	// idle ones out first), and those warm-ups hold every idle instance
	// for a moment, just before s's callers arrive: worth it only when
	// most are missing.
	want, live := running+s.real, s.instancesLive(now, p.cfg.KeepAlive)
	if short, idle := want-live, live-s.real-s.warming; short > 0 && short >= idle {
		p.warmLocked(s, want-s.real-s.warming, Chain, now)
	}
}

// Finished records the end of a real invocation Arrived saw: the instance
// goes back to idle, and a cold start is detected from the platform's
// signal (inv.Resp) or the latency at the platform.
//
// Cost: the function's own mutex (Arrived left its state in inv.Warm).
func (p *Pool) Finished(inv *invocation.Invocation, latency time.Duration, err error) {
	now := p.cfg.Now()
	sig, known := coldSignal(inv)
	f, ok := inv.Warm.(*function)
	if !ok {
		return // Arrived did not count it (the pool was closing)
	}
	f.mu.Lock()
	if f.real == 0 {
		f.mu.Unlock()
		return
	}
	f.real--
	if f.real == 0 {
		f.uncovered, f.sustained = 0, 0
	}
	if err == nil {
		f.release(now)
	}
	if known {
		p.sawSignal()
	}
	cold := sig
	if !p.signal.Load() && err == nil && latency > 0 {
		cold = f.lat.cold(latency)
	}
	if cold {
		f.cold++
	}
	f.mu.Unlock()
	if cold {
		p.cfg.Reporter.ColdStart(inv.Function)
	}
}

// stamp is the monotonic time since the pool was made, read from now
// when it is time.Now's.
func (p *Pool) stamp(now time.Time) int64 {
	if p.ownClock {
		now = time.Now()
	}
	return int64(now.Sub(p.epoch))
}

// sawSignal records that the platform flags cold starts; the flag is
// written once, so that requests do not all write its cache line.
func (p *Pool) sawSignal() {
	if !p.signal.Load() {
		p.signal.Store(true)
	}
}

// Tick runs one keep-alive round: every function with a warm count whose
// instances would expire within a quarter of the keep-alive, or whose last
// round failed the hold check and raised the hold, gets as many warm-ups
// in flight together as it lacks.
func (p *Pool) Tick() {
	now := p.cfg.Now()
	margin := p.cfg.KeepAlive / 4
	if p.closed.Load() {
		return
	}
	for _, f := range p.fns.values() {
		f.mu.Lock()
		if n := p.wantLocked(f); n > 0 && (f.redo || f.instancesLive(now.Add(margin), p.cfg.KeepAlive) < n) {
			// N warm-ups in flight together keep N instances: fewer would
			// reuse the most recent ones and let the oldest expire. A
			// round that may have collapsed goes again with the raised
			// hold while the instances it missed are still warm.
			f.redo = false
			p.warmLocked(f, n-f.real-f.warming, KeepAlive, now)
		}
		f.mu.Unlock()
	}
}

// Run calls Tick about every eighth of the keep-alive until stop closes.
//
// The gaps are drawn at random (tickGap), so that rounds do not lock onto
// periodic traffic. A round holds every idle instance of its function
// for the hold, and a real invocation arriving then finds none and pays a
// cold start (or takes one a warm-up then has to create). With a fixed
// period, a caller at a fixed rate meets the rounds at a phase that
// drifts by the same step each time, so whole runs of rounds hit it: in
// bench coldstart (a call every 200ms, a tick every 250ms, a round every
// seventh tick) every fourth round did. At a random phase a round meets a
// periodic caller with a chance of about the hold over its period.
func (p *Pool) Run(stop <-chan struct{}) {
	every := min(max(p.cfg.KeepAlive/8, 10*time.Millisecond), 30*time.Second)
	t := time.NewTimer(tickGap(every))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.Tick()
			t.Reset(tickGap(every))
		}
	}
}

// tickGap draws the gap before the next Tick: between three quarters and
// five quarters of every, every on average. The seven or so gaps between
// two rounds of a function add up to a spread of about a tenth of the
// keep-alive, enough to scatter the rounds' phase against any caller
// faster than that; and the longest gap, five quarters of an eighth of
// the keep-alive, leaves three eighths of it to spare within the quarter
// a round goes out ahead of expiry (a fixed tick left half of it), for a
// round that sequoia, starved of CPU, sends late.
func tickGap(every time.Duration) time.Duration {
	return every*3/4 + rand.N(every/2)
}

// SetReporter sets where the pool reports; call it before the pool is used.
// It exists because the reporter (metrics) reads the pool back.
func (p *Pool) SetReporter(r Reporter) {
	if r == nil {
		r = nopReporter{}
	}
	p.cfg.Reporter = r
}

// Close stops sending warm-ups and waits for those in flight.
func (p *Pool) Close() {
	p.closing.Lock()
	p.closed.Store(true)
	p.closing.Unlock()
	p.sending.Wait()
}

// Warm reports, per function remembered, the instances believed warm:
// running, warming, or idle and not yet expired.
func (p *Pool) Warm(yield func(function string, n int)) {
	now := p.cfg.Now()
	for _, f := range p.fns.values() {
		f.mu.Lock()
		n := f.instancesLive(now, p.cfg.KeepAlive)
		f.mu.Unlock()
		yield(f.name, n)
	}
}

// wantLocked is f's warm count. REQUIRES: f.mu.
func (p *Pool) wantLocked(f *function) int {
	n, ok := p.cfg.Functions[f.name]
	if !ok {
		n = p.cfg.Min
	}
	return max(n, f.hint)
}

// offLocked reports whether every warm-up of f is switched off: listed
// with 0 in Functions, and no pre-warm hint from the policy.
// REQUIRES: f.mu.
func (p *Pool) offLocked(f *function) bool {
	n, ok := p.cfg.Functions[f.name]
	return ok && n == 0 && f.hint == 0
}

// switched reports whether burst or chain pre-warm is on for f: the
// policy's hint, else f's entry in byFunction (BurstFunctions or
// ChainFunctions), else on (Burst or Chains). Chain pre-warm is switched
// by the function it would warm. REQUIRES: f.mu (f.hint).
func switched(f *function, byFunction map[string]bool, on bool) bool {
	if f.hint > 0 {
		return true
	}
	if v, ok := byFunction[f.name]; ok {
		return v
	}
	return on
}

// touchEvery is how often a function's recency is refreshed: its place in
// the LRU and its stamp for Status are that much out of date at most.
const touchEvery = time.Millisecond

// function returns name's state, remembering name as used at stamp
// (Pool.stamp).
func (p *Pool) function(name string, stamp int64) *function {
	sh := p.fns.of(name)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if f, ok := sh.lru.Peek(name); ok {
		// Moved to the LRU's front, and stamped, at most once per
		// touchEvery: the move writes list pointers other cores read.
		if stamp-f.seen.Load() >= int64(touchEvery) {
			sh.lru.Get(name)
			f.seen.Store(stamp)
		}
		return f
	}
	f := &function{name: name, hold: p.cfg.Hold}
	f.seen.Store(stamp)
	sh.lru.Add(name, f)
	return f
}

// chainStep records f as chain's last function, and returns the one
// before it (nil for the chain's first step).
func (p *Pool) chainStep(chain string, f *function) *function {
	sh := p.chains.of(chain)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	prev, _ := sh.lru.Peek(chain)
	sh.lru.Add(chain, f) // marks it used, as Get did
	return prev
}

// learnLocked remembers where inv's function is called from and how.
// REQUIRES: f.mu.
func (p *Pool) learnLocked(f *function, inv *invocation.Invocation) {
	if inv.Qualifier != f.qualifier {
		f.qualifier = inv.Qualifier
	}
	if req := inv.Req; req != nil && p.cfg.Platform != invocation.Lambda {
		// Warm-ups are sent with the credentials the function's own
		// callers use (Lambda's are sequoia's: they are re-signed).
		if a := req.Header.Peek("Authorization"); string(a) != f.auth {
			f.auth = string(a)
		}
		if p.cfg.Platform == invocation.HTTP {
			if h := req.Header.Host(); string(h) != f.host {
				f.host = string(h)
			}
			path := "/"
			if rest, ok := bytes.CutPrefix(req.URI().Path(), []byte("/"+f.name)); ok && (len(rest) == 0 || rest[0] == '/') {
				path = "/" + f.name
			}
			f.path = path
		}
	}
}

// vote counts next as f's successor once (a majority vote over what was
// seen: the successor changes only when another one is seen more often).
// REQUIRES: f.mu.
func (f *function) vote(next string) {
	switch {
	case f.next == next:
		f.votes = min(f.votes+1, 16)
	case f.votes == 0:
		f.next, f.votes, f.nextFn = next, 1, nil
	default:
		f.votes--
	}
}

// takeLocked moves an idle instance, if any is still warm, to busy: the
// most recent one, as platforms reuse them. It reports whether there was
// one. REQUIRES: f.mu.
func (f *function) takeLocked(now time.Time, keepAlive time.Duration) bool {
	f.expire(now, keepAlive)
	n := len(f.idle)
	if n == 0 {
		return false
	}
	f.idle = f.idle[:n-1]
	return true
}

// maxIdle bounds the idle instances remembered per function.
const maxIdle = 4096

// release records an instance that became idle at now.
func (f *function) release(now time.Time) {
	if len(f.idle) >= maxIdle {
		f.idle = append(f.idle[:0], f.idle[1:]...)
	}
	f.idle = append(f.idle, now)
}

// expire drops the idle instances the platform has reclaimed by now.
func (f *function) expire(now time.Time, keepAlive time.Duration) {
	i := 0
	for i < len(f.idle) && now.Sub(f.idle[i]) >= keepAlive {
		i++
	}
	if i > 0 {
		f.idle = append(f.idle[:0], f.idle[i:]...)
	}
}

// instancesLive counts those that are still warm at t.
func (f *function) instancesLive(t time.Time, keepAlive time.Duration) int {
	n := f.real + f.warming
	for _, last := range f.idle {
		if t.Sub(last) < keepAlive {
			n++
		}
	}
	return n
}

// coldSignal reads the platform's own cold-start flag from inv's answer
// (platform.ColdStart).
func coldSignal(inv *invocation.Invocation) (cold, known bool) {
	return platform.ColdStart(inv.Platform, inv.Resp)
}

type nopReporter struct{}

func (nopReporter) Warmup(Reason, bool) {}
func (nopReporter) ColdStart(string)    {}
func (nopReporter) Held(time.Duration)  {}
func (nopReporter) Round(bool)          {}
