package warmpool

import "time"

// The warm-up hold, measured instead of guessed.
//
// The platform hands a new invocation the most recent idle instance, so
// two warm-ups of one function reach distinct instances only if both hold
// theirs at one moment, and N warm-ups sent together keep N instances
// only if all N hold theirs at one common moment (intervals that overlap
// pairwise share a point). The pool cannot see the platform's side, only
// when each warm-up i was handed to the Invoker (t_i) and when its answer
// came back (r_i). A warm-up that paid no cold start occupied its instance
// for at least the hold h somewhere inside [t_i, r_i]: it started no
// later than r_i − h and ended no earlier than t_i + h. So all of them
// held at one moment if max(r_i) − h < min(t_i) + h, that is if the
// round's span max(r_i) − min(t_i) is below 2h, whatever way each round
// trip splits into sending and answering. The check is sufficient, not
// necessary: it charges each warm-up its whole round trip, where only the
// spread of arrivals at the platform matters.
//
// Writing each r_i as t_i + h + o_i (o_i: the round trip beyond the
// hold), the span is h + max(t_i − min t + o_i): the hold plus what the
// round needed, need = span − h (the spread of the sends plus the worst
// round trip), which does not depend on h. The check passes iff h > need.
//
// Warm-ups that paid a cold start occupied a fresh instance, distinct by
// construction, and their round trips carry the cold start: they are left
// out. Where the platform signals cold starts (the emulator's header, an
// OpenWhisk activation record; once seen, its absence means warm), the
// signal decides. Elsewhere a late answer may be a cold start or a slow
// network, and taking a slow warm-up for a cold one would verify a round
// that may have collapsed: so a warm-up is left out only if the pool
// expected it to be cold (it believed no idle instance was left for it)
// and its round trip beyond the hold is far above the function's lowest
// recent one (judged as real invocations' latencies are). An unexpected
// cold start then fails the round, which errs toward a longer hold.
// Failed warm-ups are left out too. A round needs two warm warm-ups to be
// checked. A warm-up answered sooner than its hold shows that the
// function does not hold: its round cannot be verified, and raising the
// hold would not help.
//
// Adapting. Per function, need is smoothed into an envelope that rises at
// once to a round's need and falls by an eighth of the gap per round; the
// hold is twice the envelope, in whole milliseconds rounded up, within
// [HoldMin, HoldMax]. Why these:
//
//   - A collapse costs re-created instances (a cold start each), far more
//     than the milliseconds of hold a round saves, so the hold follows the
//     worst recent rounds, not the average: it rises at once and falls
//     slowly (about 16 rounds to shed most of a spike).
//   - The margin of 2 lets a round's need reach twice the recent worst
//     and still verify. Needs vary by more than that only in rare spikes:
//     in `sequoia bench coldstart` (loopback, a shared 2-core machine,
//     rounds of 20) a round needed 1.8ms at the median, 3.2ms at the
//     90th percentile and 7.3ms at the 99th; about 2.5% of rounds failed
//     the check, against 13% at a fixed 3ms hold. A smaller margin would
//     trade a little hold for more failed rounds and resent ones.
//   - Nothing feeds back: need does not depend on the hold, so the hold
//     cannot oscillate; it only saws down after a spike.
//   - The starting hold is a guess: the first measured round replaces it.
//   - A failed round could have collapsed, and the instances it missed
//     were near expiry (keep-alive rounds go out a quarter of the
//     keep-alive before it): so when a keep-alive round fails and the
//     hold rose, the next Tick sends the round again with the new hold,
//     which costs N warm-ups and saves up to N − 1 cold starts. With a
//     fixed hold, or at HoldMax, a new round would fail the same way, and
//     none is sent.
//   - Whole milliseconds: functions commonly decode the hold as an
//     integer (a fraction would fail Go's or Java's int fields), Lambda
//     bills whole milliseconds, and timers in function runtimes are no
//     finer; rounding up keeps what is asked at least what was computed.

// holdDecay is the share of the gap by which the need envelope falls per
// round; holdMargin multiplies the envelope into the hold.
const (
	holdDecay  = 8
	holdMargin = 2
)

// ignoreAfter is how many checked rounds in a row must come back sooner
// than their hold for the function to be taken to ignore it.
const ignoreAfter = 3

// round is the warm-ups of one function that one warmLocked call sent
// together (two or more).
type round struct {
	f       *function
	why     Reason
	hold    time.Duration // what each warm-up asked for
	pending int           // warm-ups not yet answered; REQUIRES: f.mu
	answers []answer      // REQUIRES: f.mu
}

// answer is one warm-up's round trip: sent just before the request went
// to the Invoker, answered when the Invoker returned.
type answer struct {
	sent, answered time.Time
	ok             bool // a 2xx answer and no function error
	cold, known    bool // the platform's cold-start signal, if it gives one
	expected       bool // the pool believed an idle instance was left for it
}

// verdict is what a round's answers show.
type verdict uint8

const (
	unchecked  verdict = iota // fewer than two warm answers
	unverified                // they may have shared instances
	verified                  // they held distinct instances
)

// answeredLocked records a of r and, once every warm-up of r has
// answered, checks the round and adapts the function's hold.
// REQUIRES: r.f.mu.
func (p *Pool) answeredLocked(r *round, a answer) verdict {
	r.answers = append(r.answers, a)
	if r.pending--; r.pending > 0 {
		return unchecked
	}
	v, need, early := r.check(p.signal.Load())
	if v == unchecked {
		return v
	}
	f := r.f
	f.rounds[v-unverified]++
	switch {
	case v == verified:
		f.earlyRun = 0
	case early:
		f.early++
		if f.earlyRun++; f.earlyRun == ignoreAfter {
			p.cfg.Log.Warn("function ignores sequoia_warmup_hold_ms: its warm-ups answer sooner than the hold, so they land on one instance and only one stays warm",
				"function", f.name, "hold", r.hold, "rounds_in_a_row", f.earlyRun)
		}
	}
	if need >= f.need { // the first round too: need starts at 0
		f.need = need
	} else {
		f.need -= (f.need - need) / holdDecay
	}
	if p.cfg.HoldMin < p.cfg.HoldMax {
		old := f.hold
		f.hold = min(max(wholeMs(holdMargin*f.need), p.cfg.HoldMin), p.cfg.HoldMax)
		if v == unverified && f.hold > old && r.why == KeepAlive {
			f.redo = true
		}
	}
	if v == unverified {
		p.cfg.Log.Debug("warm-up round not verified", "function", f.name, "warmups", len(r.answers),
			"hold", r.hold, "need", need, "next_hold", f.hold)
	}
	return v
}

// check judges a round whose warm-ups have all answered, and returns the
// hold it needed (its span less its hold) and whether a warm warm-up came
// back sooner than its hold. signal says whether the platform flags cold
// starts (an answer without the flag is then warm).
func (r *round) check(signal bool) (verdict, time.Duration, bool) {
	f := r.f
	// Without the signal, a warm-up expected cold paid a cold start if its
	// round trip beyond the hold is far above the lowest recent one; the
	// round's lowest counts first, so that one warm warm-up among cold
	// ones sets the floor.
	excess := func(a answer) time.Duration { return max(a.answered.Sub(a.sent)-r.hold, time.Microsecond) }
	var lowest time.Duration
	for _, a := range r.answers {
		if a.ok && !a.known && (lowest == 0 || excess(a) < lowest) {
			lowest = excess(a)
		}
	}
	if lowest > 0 && (f.excess.min == 0 || lowest < f.excess.min) {
		f.excess.min = lowest
	}
	var first, last time.Time
	n, held := 0, true
	for _, a := range r.answers {
		if !a.ok {
			continue
		}
		cold := a.cold
		if !a.known && !signal {
			// Judged for every answer, so that warm ones move the floor.
			cold = f.excess.cold(excess(a)) && !a.expected
		}
		if cold {
			continue
		}
		if n == 0 || a.sent.Before(first) {
			first = a.sent
		}
		if n == 0 || a.answered.After(last) {
			last = a.answered
		}
		n++
		held = held && a.answered.Sub(a.sent) >= r.hold
	}
	if n < 2 {
		return unchecked, 0, false
	}
	span := last.Sub(first)
	need := max(span-r.hold, 0)
	if held && span < 2*r.hold {
		return verified, need, false
	}
	return unverified, need, !held
}

// ignoresHoldLocked reports whether f's warm-ups have come back sooner
// than their hold in ignoreAfter checked rounds in a row.
// REQUIRES: f.mu.
func (f *function) ignoresHoldLocked() bool { return f.earlyRun >= ignoreAfter }

// wholeMs rounds d up to whole milliseconds: the hold is sent as an
// integer.
func wholeMs(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Millisecond - 1).Truncate(time.Millisecond)
}

// latencyFloor is the lowest recent latency of something a cold start
// sometimes slows; 0 before the first.
type latencyFloor struct{ min time.Duration }

// cold classifies d (positive): cold when it exceeds the floor by more
// than the floor and by 50ms at least (a cold start adds a fixed delay; a
// warm run varies around its usual time). The floor drifts up slowly so
// that something that became slower is not taken for cold for ever.
func (l *latencyFloor) cold(d time.Duration) bool {
	if l.min == 0 || d < l.min {
		l.min = d
		return false
	}
	if d-l.min > max(l.min, 50*time.Millisecond) {
		return true
	}
	l.min += (d - l.min) / 64
	return false
}
