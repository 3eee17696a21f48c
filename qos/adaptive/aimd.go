package adaptive

import (
	"fmt"
	"math"
	"time"
)

// Config tunes the limit. Zero values take the defaults.
type Config struct {
	// Ceiling is the most the limit may reach (SEQUOIA_MAX_CONCURRENCY).
	// Required.
	Ceiling int
	// Floor is the least the limit may fall to; default 1.
	Floor int
	// Initial is where the limit starts (SEQUOIA_ADAPTIVE_INITIAL): it
	// grows by one per success while in use, doubling each round trip
	// (TCP's slow start), until the first throttle or queueing sign or
	// the Ceiling. 0, or at least Ceiling, starts at the Ceiling.
	Initial int
	// Backoff multiplies the limit on a concurrency throttle, at most
	// once per Cooldown; default 0.9. The throttle's bound (the calls in
	// flight when it came, less one) applies on every throttle.
	Backoff float64
	// Cooldown is the least time between two multiplicative decreases:
	// the throttles of one overshoot arrive together. Default 100ms.
	Cooldown time.Duration
	// Quiet is how long after the last throttle or queueing cut the limit
	// starts probing back up. Default 1s.
	Quiet time.Duration
	// Tolerance is the latency ratio (a call's round trip over its
	// function's least recent one) from which the platform is taken to be
	// queueing: every call of a window at least this slow, and at least
	// MinExcess slower than its function's least, while sent with more
	// calls in flight than the platform seems to run. Default 1.5; a
	// negative value turns the latency signal off.
	Tolerance float64
	// Window is the least time over which latency is judged; a window
	// also needs MinSamples calls. Default 100ms.
	Window time.Duration
}

// Defaults.
const (
	DefaultBackoff   = 0.9
	DefaultCooldown  = 100 * time.Millisecond
	DefaultQuiet     = time.Second
	DefaultTolerance = 1.5
	DefaultWindow    = 100 * time.Millisecond
)

// The latency signal's constants.
const (
	// MinSamples is the least number of calls a latency window judges.
	MinSamples = 5
	// MinExcess is the least a round trip must exceed its function's
	// least to count as slow: below it, scheduling and network noise.
	MinExcess = 2 * time.Millisecond
	// epochLen is how long a least round trip is remembered: a function's
	// baseline is the least of this epoch and the one before.
	epochLen = 10 * time.Second
	// maxFunctions bounds the baselines kept; functions past it are not
	// judged (their names are bounded upstream, by SEQUOIA_MAX_FUNCTIONS).
	maxFunctions = 10000
	// responded is how far a verifying window's ratio must fall, against
	// the cut's, for the latency to have followed concurrency down.
	responded = 0.75
)

func (c Config) withDefaults() Config {
	if c.Floor <= 0 {
		c.Floor = 1
	}
	if c.Ceiling < c.Floor {
		c.Ceiling = c.Floor
	}
	if c.Initial <= 0 || c.Initial > c.Ceiling {
		c.Initial = c.Ceiling
	}
	c.Initial = max(c.Initial, c.Floor)
	if !(c.Backoff > 0 && c.Backoff < 1) {
		c.Backoff = DefaultBackoff
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultCooldown
	}
	if c.Quiet <= 0 {
		c.Quiet = DefaultQuiet
	}
	if c.Tolerance == 0 || (c.Tolerance > 0 && c.Tolerance <= 1) || math.IsNaN(c.Tolerance) {
		c.Tolerance = DefaultTolerance
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	return c
}

// Sample is what one answer the platform ran tells about latency.
type Sample struct {
	// Function is whose call it was; "" gives no latency sample.
	Function string
	// RTT is from sending the call to its answer; 0 gives no latency
	// sample (202s, function errors, answers that are not the function's
	// run).
	RTT time.Duration
	// InFlight is how many calls were in flight when it was sent, itself
	// included.
	InFlight int
}

// AIMD is the algorithm alone, driven by explicit times: additive increase
// (after a slow start), and two kinds of decrease, on throttles and on
// queueing. Its zero value is not usable: make one with NewAIMD. Not safe
// for concurrent use: Limit wraps it for that.
type AIMD struct {
	cfg          Config
	limit        float64
	slowStart    bool
	lastDecrease time.Time // the last multiplicative decrease
	lastSignal   time.Time // the last throttle or queueing cut
	successes    int       // in the current increase window

	// The latency signal.
	epoch      int64
	epochStart time.Time
	base       map[string]*baseline
	win        window
	verifying  bool      // a queueing cut waits for latency to follow
	cutAt      time.Time // when the last cut was made
	cutFrom    int       // the limit before it
	cutRatio   float64   // the window ratio that made it
	throttled  bool      // a throttle came since the cut
	lastMean   float64   // the last judged window's mean ratio
	lastJudged time.Time // when it was judged

	// How often the limit moved, and why.
	Decreases, Increases int
	// Cuts counts queueing cuts; Reverted, cuts undone because latency
	// did not follow concurrency down (the function got slower, or
	// instances were cold), after which the baselines start over.
	Cuts, Reverted int
	// Unproven counts the cuts among Reverted undone because no window of
	// calls sent at the cut's limit came within Quiet of it: the load
	// that made the cut had ended (a burst over, a host's CPU freed), and
	// calls sent with fewer in flight, or long after, show nothing about
	// queueing then.
	Unproven int
	// Bound is the least throttle bound seen (0: none): the real limit is
	// at most this.
	Bound int
}

// baseline is one function's least round trip in this epoch and the one
// before.
type baseline struct {
	epoch     int64
	cur, prev time.Duration // 0: none yet
}

// window gathers the latency samples judged together.
type window struct {
	start    time.Time
	n        int
	minRatio float64 // the least queueing ratio of the window
	nAtMin   int     // the calls in flight when that one was sent
	minSlowN int     // the fewest in flight a slow call was sent with; 0: none slow
	maxN     int     // the most in flight a call was sent with
	sumRatio float64 // for the mean
}

// NewAIMD returns the algorithm at cfg.Initial.
func NewAIMD(cfg Config) AIMD {
	cfg = cfg.withDefaults()
	return AIMD{cfg: cfg, limit: float64(cfg.Initial), slowStart: cfg.Initial < cfg.Ceiling,
		base: map[string]*baseline{}}
}

// Limit returns the current limit.
func (a *AIMD) Limit() int { return int(a.limit) }

// Verifying reports whether the last queueing cut still waits for the
// calls sent after it to show that latency followed (judge undoes it if
// not).
func (a *AIMD) Verifying() bool { return a.verifying }

// SlowStart reports whether the limit is still in its first growth, before
// any sign of the platform's limit.
func (a *AIMD) SlowStart() bool { return a.slowStart }

// Throttle records a concurrency throttle at now that came while inFlight
// calls were in flight, itself included (0: not known), and reports
// whether the limit changed. The platform refused a call with at most
// inFlight-1 others of ours running, so the limit drops to that at once;
// and, at most once per Cooldown, by Backoff.
func (a *AIMD) Throttle(now time.Time, inFlight int) bool {
	a.lastSignal = now
	a.successes = 0
	a.slowStart = false
	a.throttled = true
	before, prev := a.Limit(), a.limit
	if inFlight > 0 {
		bound := max(inFlight-1, a.cfg.Floor)
		if a.Bound == 0 || bound < a.Bound {
			a.Bound = bound
		}
		a.limit = min(a.limit, float64(bound))
	}
	if a.lastDecrease.IsZero() || now.Sub(a.lastDecrease) >= a.cfg.Cooldown {
		md := max(float64(a.cfg.Floor), prev*a.cfg.Backoff)
		if int(md) == before && before > a.cfg.Floor {
			md = float64(before - 1) // always a step down while above the floor
		}
		a.limit = min(a.limit, md)
		a.lastDecrease = now
	}
	if a.Limit() != before {
		a.Decreases++
		return true
	}
	return false
}

// Success records an invocation the platform ran, answered at now while
// used slots (held and reserved) were in use, with what its latency tells
// (s may have only InFlight, the calls in flight when it was sent), and
// reports whether the limit changed.
func (a *AIMD) Success(now time.Time, used int, s Sample) bool {
	changed := false
	if s.RTT > 0 && s.Function != "" && a.cfg.Tolerance > 0 {
		changed = a.observe(now, s)
	}
	return a.grow(now, max(used, s.InFlight)) || changed
}

// inUse is the share of the limit in use from which it is taken to hold
// the work back: below the warm pool's headroom (a tenth of the limit, at
// least a slot), so that warm-ups filling the idle slots count.
const inUse = 0.8

// grow raises the limit when it is what holds the work back (at least
// inUse of it in use when the call was sent or answered), not within
// Quiet of the last throttle or cut: by one per success in the slow start,
// else by one per window of `limit` successes (one step per round of the
// pool, like TCP's congestion avoidance).
func (a *AIMD) grow(now time.Time, used int) bool {
	if a.limit >= float64(a.cfg.Ceiling) {
		a.slowStart = false
		return false
	}
	if !a.lastSignal.IsZero() && now.Sub(a.lastSignal) < a.cfg.Quiet {
		return false
	}
	if float64(used) < inUse*a.limit {
		return false
	}
	if a.slowing(now) {
		return false
	}
	if !a.slowStart {
		a.successes++
		if a.successes < a.Limit() {
			return false
		}
		a.successes = 0
	}
	a.limit = min(float64(a.cfg.Ceiling), float64(a.Limit()+1))
	a.Increases++
	return true
}

// slowing reports whether the last window, judged within ten windows of
// now, saw calls slower on average than halfway to the Tolerance: latency
// is rising, and growing would only fill a queueing platform's queue (or
// create more cold instances). The limit holds; the cut comes if every
// call slows down.
func (a *AIMD) slowing(now time.Time) bool {
	return a.cfg.Tolerance > 0 && !a.lastJudged.IsZero() && now.Sub(a.lastJudged) < 10*a.cfg.Window &&
		a.lastMean >= 1+(a.cfg.Tolerance-1)/2
}

// observe adds one latency sample to the window and judges the window when
// it is complete. A window in which every call was slow (Tolerance times
// its function's least round trip, and MinExcess more), none of them sent
// with fewer calls in flight than the platform then seems to run, is
// queueing: the platform runs about inFlight/ratio at once and holds the
// rest. The limit is cut to that, and the next window of calls sent after
// the cut checks that latency followed; if it did not (a function grown
// slower, cold instances), the cut is undone and the baselines start over.
func (a *AIMD) observe(now time.Time, s Sample) bool {
	ratio, ok := a.ratio(now, s.Function, s.RTT)
	if !ok {
		return false
	}
	// A call sent before the cut being verified says nothing about it.
	beforeCut := func() bool { return a.verifying && now.Add(-s.RTT).Before(a.cutAt) }
	if beforeCut() {
		return false
	}
	changed := false
	if w := &a.win; w.n >= MinSamples && now.Sub(w.start) >= a.cfg.Window {
		changed = a.judge(now)
		if beforeCut() {
			return changed // the cut's own window's last call
		}
	}
	w := &a.win
	if w.n == 0 {
		*w = window{start: now, minRatio: math.Inf(1)}
	}
	w.n++
	w.sumRatio += ratio
	if ratio < w.minRatio {
		w.minRatio, w.nAtMin = ratio, s.InFlight
	}
	if ratio >= a.cfg.Tolerance && (w.minSlowN == 0 || s.InFlight < w.minSlowN) {
		w.minSlowN = s.InFlight
	}
	w.maxN = max(w.maxN, s.InFlight)
	return changed
}

// judge judges the window, complete at now, and starts the next.
func (a *AIMD) judge(now time.Time) bool {
	w := &a.win
	r, nAt, slowN, n, maxN := w.minRatio, w.nAtMin, w.minSlowN, w.n, w.maxN
	w.n = 0
	a.lastMean, a.lastJudged = w.sumRatio/float64(max(n, 1)), now
	if a.verifying {
		switch {
		case now.Sub(a.cutAt) >= a.cfg.Quiet:
			// No window at the cut's limit came within Quiet of it (the
			// traffic stopped, or stayed low): unproven.
			a.Unproven++
			return a.undoCut()
		case float64(maxN) < inUse*a.limit:
			// Sent with fewer in flight than the cut allows, fast
			// answers would not show that the platform queued (the load
			// that made the cut may have ended): wait for a window at
			// the cut's limit.
			return false
		case r >= a.cfg.Tolerance && r > responded*a.cutRatio:
			// Fewer calls in flight, no faster: not queueing.
			a.epoch += 2 // every baseline starts over
			return a.undoCut()
		}
		a.verifying = false
	}
	if r < a.cfg.Tolerance {
		return false
	}
	target := max(a.cfg.Floor, int(math.Ceil(float64(nAt)/r)))
	if slowN <= target || target >= a.Limit() {
		// A call sent with no more in flight than the platform seems to
		// run was slow too: not queueing (cold instances, a slower
		// function); or the cut would change nothing.
		return false
	}
	a.cutFrom, a.cutAt, a.cutRatio = a.Limit(), now, r
	a.verifying, a.throttled, a.slowStart = true, false, false
	a.limit = float64(target)
	a.lastSignal = now
	a.successes = 0
	a.Cuts++
	a.Decreases++
	return true
}

// undoCut ends the verification of the last queueing cut by undoing it:
// the limit goes back to where the cut took it from, unless a throttle
// came since. It reports whether the limit changed.
func (a *AIMD) undoCut() bool {
	a.verifying = false
	a.Reverted++
	if !a.throttled && a.cutFrom > a.Limit() {
		a.limit = float64(a.cutFrom)
		return true
	}
	return false
}

// ratio updates fn's baseline with rtt and returns the queueing ratio of
// rtt: rtt over the baseline, or 1 when the excess is under MinExcess.
func (a *AIMD) ratio(now time.Time, fn string, rtt time.Duration) (float64, bool) {
	if a.epochStart.IsZero() {
		a.epochStart = now
	}
	for now.Sub(a.epochStart) >= epochLen {
		a.epoch++
		a.epochStart = a.epochStart.Add(epochLen)
		if now.Sub(a.epochStart) >= 2*epochLen {
			a.epochStart = now // idle: no need to step through each epoch
		}
	}
	b := a.base[fn]
	if b == nil {
		if len(a.base) >= maxFunctions {
			return 0, false
		}
		b = &baseline{epoch: a.epoch}
		a.base[fn] = b
	}
	switch {
	case b.epoch == a.epoch:
	case b.epoch == a.epoch-1:
		b.prev, b.cur, b.epoch = b.cur, 0, a.epoch
	default:
		b.prev, b.cur, b.epoch = 0, 0, a.epoch
	}
	if b.cur == 0 || rtt < b.cur {
		b.cur = rtt
	}
	least := b.cur
	if b.prev > 0 && b.prev < least {
		least = b.prev
	}
	if rtt-least < MinExcess {
		return 1, true
	}
	return float64(rtt) / float64(least), true
}

// String renders the state for tests and logs.
func (a *AIMD) String() string {
	s := fmt.Sprintf("limit=%d decreases=%d increases=%d", a.Limit(), a.Decreases, a.Increases)
	if a.Bound > 0 {
		s += fmt.Sprintf(" bound=%d", a.Bound)
	}
	if a.Cuts > 0 || a.Reverted > 0 {
		s += fmt.Sprintf(" cuts=%d reverted=%d", a.Cuts, a.Reverted)
	}
	if a.verifying {
		s += " verifying"
	}
	if a.slowStart {
		s += " slow-start"
	}
	return s
}
