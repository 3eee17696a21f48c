package warmpool

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/qos"
)

// TestRoundCheck judges rounds of answers on a made-up timeline: a round
// is verified only if its warm answers span less than twice the hold, and
// the hold it needed is the span less the hold.
func TestRoundCheck(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1e9, 0)
	// warm: sent at s ms, answered at r ms, no cold start (signal known).
	warm := func(s, r float64) answer {
		return answer{sent: t0.Add(time.Duration(s * float64(ms))), answered: t0.Add(time.Duration(r * float64(ms))), ok: true, known: true}
	}
	cold := func(s, r float64) answer { a := warm(s, r); a.cold = true; return a }
	failed := func(s, r float64) answer { a := warm(s, r); a.ok = false; return a }
	// No signal: silent was expected warm (the pool believed an idle
	// instance left for it), fresh expected cold.
	silent := func(s, r float64) answer { a := warm(s, r); a.known, a.expected = false, true; return a }
	fresh := func(s, r float64) answer { a := silent(s, r); a.expected = false; return a }
	for _, tc := range []struct {
		name    string
		hold    time.Duration
		answers []answer
		signal  bool // the platform flags cold starts
		want    verdict
		need    time.Duration
		early   bool
	}{
		{"close together", 10 * ms, []answer{warm(0, 11), warm(1, 12), warm(2, 13)}, true, verified, 3 * ms, false},
		{"span of twice the hold", 10 * ms, []answer{warm(0, 11), warm(5, 20)}, true, unverified, 10 * ms, false},
		{"a late send", 10 * ms, []answer{warm(0, 11), warm(30, 41)}, true, unverified, 31 * ms, false},
		{"a cold start is left out", 10 * ms, []answer{warm(0, 11), warm(1, 12), cold(0, 512)}, true, verified, 2 * ms, false},
		{"a failure is left out", 10 * ms, []answer{warm(0, 11), warm(1, 12), failed(0, 90)}, true, verified, 2 * ms, false},
		{"one warm: nothing to check", 10 * ms, []answer{warm(0, 11), cold(0, 512), cold(1, 513)}, true, unchecked, 0, false},
		{"answered sooner than the hold: the function does not hold", 10 * ms, []answer{warm(0, 2), warm(1, 3)}, true, unverified, 0, true},
		{"one answered sooner than the hold", 10 * ms, []answer{warm(0, 11), warm(1, 3)}, true, unverified, 1 * ms, true},
		{"no hold: nothing holds", 0, []answer{warm(0, 1), warm(0, 1)}, true, unverified, 1 * ms, false},
		{"signal seen: no flag is warm, however late", 10 * ms, []answer{silent(0, 11), fresh(1, 12), fresh(1, 515)}, true, unverified, 505 * ms, false},
		{"no signal: an expected cold start, by round trip, is left out", 10 * ms, []answer{silent(0, 12), fresh(1, 12), fresh(1, 515)}, false, verified, 2 * ms, false},
		{"no signal: a late warm-up expected warm counts", 10 * ms, []answer{silent(0, 12), silent(1, 12), silent(1, 515)}, false, unverified, 505 * ms, false},
		{"no signal, all alike: all warm", 10 * ms, []answer{fresh(0, 40), fresh(1, 41)}, false, unverified, 31 * ms, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &round{f: &function{}, hold: tc.hold, answers: tc.answers}
			got, need, early := r.check(tc.signal)
			if got != tc.want || need != tc.need || early != tc.early {
				t.Errorf("verdict %d, need %v, early %v; want %d, %v, %v", got, need, early, tc.want, tc.need, tc.early)
			}
		})
	}
}

// TestHoldAdapts feeds rounds of known need to a function and follows its
// hold: the first round replaces the starting guess, a larger need raises
// the hold at once, a smaller one lowers it by an eighth of the gap per
// round; the hold is twice the need in whole milliseconds, within the
// bounds. A fixed hold never moves.
func TestHoldAdapts(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1e9, 0)
	// roundOf returns a round of two warm-ups at hold h, one answered (sent
	// at t0, answered h later); second(h, d) is the other's answer, sent d
	// after the first and answered h after that, so the round needs d.
	roundOf := func(f *function, h time.Duration) *round {
		r := &round{f: f, why: KeepAlive, hold: h, pending: 1}
		r.answers = []answer{{sent: t0, answered: t0.Add(h), ok: true, known: true}}
		return r
	}
	second := func(h, d time.Duration) answer {
		return answer{sent: t0.Add(d), answered: t0.Add(d + h), ok: true, known: true}
	}
	sched := qos.New(qos.Config{Limit: 10, QueueCapacity: 10, QueueTimeout: time.Minute})
	for _, tc := range []struct {
		name     string
		min, max time.Duration
		needs    []time.Duration
		want     []time.Duration // the hold after each round
	}{
		{"adaptive", ms, 100 * ms,
			[]time.Duration{3 * ms, 1500 * time.Microsecond, 20 * ms, 4 * ms, 4 * ms, 200 * ms, 0},
			// 3 → 6; env 3-0.1875=2.8125 → 5.625 → 6; 20 → 40; env 20-2=18 → 36;
			// 18-1.75=16.25 → 32.5 → 33; 200 → 400 → max 100; 200-25 → 350 → 100.
			[]time.Duration{6 * ms, 6 * ms, 40 * ms, 36 * ms, 33 * ms, 100 * ms, 100 * ms}},
		{"floor", 5 * ms, 100 * ms,
			[]time.Duration{100 * time.Microsecond, 0},
			[]time.Duration{5 * ms, 5 * ms}},
		{"fixed", 25 * ms, 25 * ms,
			[]time.Duration{3 * ms, 80 * ms},
			[]time.Duration{25 * ms, 25 * ms}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Config{Platform: invocation.OpenWhisk, Hold: 25 * ms, HoldMin: tc.min, HoldMax: tc.max}, sched, &fakeInvoker{})
			defer p.Close()
			f := p.function("guest/fn", 0)
			f.mu.Lock()
			defer f.mu.Unlock()
			for i, d := range tc.needs {
				h := f.hold
				v := p.answeredLocked(roundOf(f, h), second(h, d))
				if wantV := map[bool]verdict{true: verified, false: unverified}[d < h]; v != wantV {
					t.Errorf("round %d (need %v, hold %v): verdict %d, want %d", i, d, h, v, wantV)
				}
				if f.hold != tc.want[i] {
					t.Errorf("round %d (need %v): hold %v, want %v", i, d, f.hold, tc.want[i])
				}
				// A keep-alive round that failed and raised the hold is
				// sent again.
				if want := d >= h && f.hold > h; f.redo != want {
					t.Errorf("round %d: redo %v, want %v", i, f.redo, want)
				}
				f.redo = false
			}
		})
	}
}

// delayInvoker holds back every second warm-up by delay before sending
// it, as a slow or jittery network would.
type delayInvoker struct {
	iv    Invoker
	n     atomic.Int64
	delay time.Duration
}

func (d *delayInvoker) Invoke(inv *invocation.Invocation) error {
	if d.n.Add(1)%2 == 0 {
		time.Sleep(d.delay)
	}
	return d.iv.Invoke(inv)
}

// TestHoldRisesWhenRoundTripsOutlastIt sends keep-alive rounds of 3
// warm-ups to 3 warm instances on the emulator, every second warm-up held
// back 100ms: a 5ms hold cannot cover that, so the round is not verified.
// An adaptive hold rises past the delay and the round goes again at once
// with it, and verifies; a fixed hold stays put, and nothing is resent.
func TestHoldRisesWhenRoundTripsOutlastIt(t *testing.T) {
	const n, hold, delay = 3, 5 * time.Millisecond, 100 * time.Millisecond
	for _, tc := range []struct {
		name     string
		min, max time.Duration
	}{
		{"adaptive", time.Millisecond, time.Second},
		{"fixed", hold, hold},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, addr, up, sched := emulated(t, emulator.Config{Limit: 20, ExecTime: 50 * time.Millisecond, KeepAlive: time.Hour})
			p := New(Config{Platform: invocation.OpenWhisk, Min: n, KeepAlive: time.Hour,
				Hold: hold, HoldMin: tc.min, HoldMax: tc.max}, sched, &delayInvoker{iv: up, delay: delay})
			defer p.Close()

			burstAt(t, p, addr, n) // n warm instances, believed idle
			// Expire them in the pool's model only: the emulator keeps
			// them, so every warm-up of the round is warm.
			f := remembered(t, p, "guest/fn")
			f.mu.Lock()
			f.idle = f.idle[:0]
			f.mu.Unlock()
			p.Tick()
			p.sending.Wait()

			fs := p.Status(1).List[0]
			if fs.Rounds != (RoundCounts{Unverified: 1}) {
				t.Fatalf("rounds %+v, want 1 unverified: every second warm-up came %v late for a %v hold", fs.Rounds, delay, hold)
			}
			if fs.NeedMs == nil || *fs.NeedMs < float64(delay/time.Millisecond) {
				t.Errorf("need %v ms, want at least the delay %v", fs.NeedMs, delay)
			}
			if st := emu.Stats().Functions["guest/fn"]; st.Warmups != n || st.WarmupColdStarts != 0 {
				t.Fatalf("emulator: %d warm-ups, %d cold; want %d warm ones", st.Warmups, st.WarmupColdStarts, n)
			}

			// The instances are believed fresh: only a resent round goes.
			p.Tick()
			p.sending.Wait()
			st := emu.Stats().Functions["guest/fn"]
			after := p.Status(1).List[0]
			switch tc.name {
			case "fixed":
				if fs.HoldMs != 5 || after.HoldMs != 5 {
					t.Errorf("fixed hold went %d ms, then %d ms; want 5 ms", fs.HoldMs, after.HoldMs)
				}
				if st.Warmups != n {
					t.Errorf("%d warm-ups after the failed round, want none: a fixed hold would fail the same way", st.Warmups-n)
				}
			case "adaptive":
				if fs.HoldMs < 2*int64(delay/time.Millisecond) {
					t.Errorf("hold %d ms after the failed round, want at least twice the delay", fs.HoldMs)
				}
				if st.Warmups != 2*n {
					t.Errorf("%d warm-ups after the failed round, want the round resent (%d)", st.Warmups-n, n)
				}
				if after.Rounds != (RoundCounts{Unverified: 1, Verified: 1}) {
					t.Errorf("rounds %+v, want the resent round verified with the %d ms hold", after.Rounds, fs.HoldMs)
				}
			}
		})
	}
}

// TestAdaptiveHoldFallsAndKeepsNWarm keeps 3 instances warm on the
// emulator across several keep-alive periods, starting from a 100ms hold
// that the emulator on loopback does not need: the hold falls below it,
// rounds verify, and yet no warm-up has to re-create an instance and a
// burst of 3 afterwards pays no cold start.
func TestAdaptiveHoldFallsAndKeepsNWarm(t *testing.T) {
	const n, keepAlive, start = 3, time.Second, 100 * time.Millisecond
	emu, addr, up, sched := emulated(t, emulator.Config{Limit: 20, ExecTime: 10 * time.Millisecond,
		ColdStart: 100 * time.Millisecond, KeepAlive: keepAlive})
	p := New(Config{Platform: invocation.OpenWhisk, Min: n, KeepAlive: keepAlive,
		Hold: start, HoldMin: time.Millisecond, HoldMax: 200 * time.Millisecond}, sched, up)
	stopRounds := running(p)
	defer func() { stopRounds(); p.Close() }()

	burstAt(t, p, addr, n) // n instances, seen by the pool
	fn := func() emulator.FunctionStats { return emu.Stats().Functions["guest/fn"] }
	status := func() FunctionStatus { return p.Status(1).List[0] }
	// Watch until three rounds have been checked and then for two more
	// keep-alive periods: the warm instances never fall below n.
	minWarm := n
	for status().Rounds.Verified+status().Rounds.Unverified < 3 {
		minWarm = min(minWarm, fn().LiveInstances)
		time.Sleep(keepAlive / 20)
	}
	for deadline := time.Now().Add(2 * keepAlive); time.Now().Before(deadline); {
		minWarm = min(minWarm, fn().LiveInstances)
		time.Sleep(keepAlive / 20)
	}
	st, fs := fn(), status()
	if fs.HoldMs >= start.Milliseconds() {
		t.Errorf("hold %d ms after %+v rounds, want below the starting %v", fs.HoldMs, fs.Rounds, start)
	}
	if fs.Rounds.Verified == 0 {
		t.Errorf("rounds %+v, want some verified", fs.Rounds)
	}
	if minWarm < n {
		t.Errorf("warm instances fell to %d, want >= %d", minWarm, n)
	}
	if st.WarmupColdStarts != 0 {
		t.Errorf("warm-ups paid %d cold starts: instances expired (hold %d ms, rounds %+v)", st.WarmupColdStarts, fs.HoldMs, fs.Rounds)
	}
	cold := st.ColdStarts
	stopRounds()
	burstAt(t, p, addr, n)
	if got := fn().ColdStarts - cold; got != 0 {
		t.Errorf("a burst of %d after %+v rounds at a %d ms hold paid %d cold starts, want 0", n, fs.Rounds, fs.HoldMs, got)
	}
	t.Logf("hold %d ms, need %.3f ms, rounds %+v, %d warm-ups", fs.HoldMs, *fs.NeedMs, fs.Rounds, st.Warmups)
}

// TestIgnoresHoldDetected: a function whose rounds of warm-ups come back
// sooner than their hold, three checked rounds in a row, is taken to
// ignore sequoia_warmup_hold_ms; a verified round clears it, and rounds
// that are early but not in a row do not set it.
func TestIgnoresHoldDetected(t *testing.T) {
	const ms = time.Millisecond
	t0 := time.Unix(1e9, 0)
	round := func(f *function) *round { return &round{f: f, why: KeepAlive, hold: 20 * ms, pending: 2} }
	at := func(d time.Duration) answer {
		return answer{sent: t0, answered: t0.Add(d), ok: true, known: true}
	}
	sched := qos.New(qos.Config{Limit: 10, QueueCapacity: 10, QueueTimeout: time.Minute})
	p := New(Config{Platform: invocation.OpenWhisk, Hold: 20 * ms, HoldMin: 20 * ms, HoldMax: 20 * ms}, sched, &fakeInvoker{})
	defer p.Close()
	f := p.function("guest/fn", 0)
	f.mu.Lock()
	defer f.mu.Unlock()
	feed := func(d time.Duration) {
		r := round(f)
		p.answeredLocked(r, at(d))
		p.answeredLocked(r, at(d))
	}
	for i, step := range []struct {
		answered time.Duration
		want     bool
	}{
		{ms, false}, {ms, false}, {ms, true}, // three early in a row
		{ms, true},
		{21 * ms, false},                                        // verified: it held this time
		{ms, false}, {ms, false}, {21 * ms, false}, {ms, false}, // never three in a row
	} {
		feed(step.answered)
		if got := f.ignoresHoldLocked(); got != step.want {
			t.Errorf("round %d (answered after %v): ignores hold %v, want %v", i, step.answered, got, step.want)
		}
	}
	if f.early != 7 {
		t.Errorf("early rounds %d, want 7", f.early)
	}
}

// TestIgnoresHoldOnTheEmulator keeps 3 instances of a function warm on an
// emulator whose function ignores the hold: its warm-ups land on one
// instance, and the pool's status says the function ignores the hold.
// Against the same function honouring it, the status says nothing.
func TestIgnoresHoldOnTheEmulator(t *testing.T) {
	for _, ignore := range []bool{true, false} {
		emu, addr, up, sched := emulated(t, emulator.Config{Limit: 20, ExecTime: 10 * time.Millisecond,
			ColdStart: 50 * time.Millisecond, KeepAlive: time.Minute, IgnoreHold: ignore})
		// A hold far above a loopback round trip, so that a warm-up
		// that ignores it answers sooner however loaded the machine.
		const hold = 200 * time.Millisecond
		p := New(Config{Platform: invocation.OpenWhisk, Min: 3, KeepAlive: time.Minute, Hold: hold,
			HoldMin: hold, HoldMax: hold}, sched, up)
		burstAt(t, p, addr, 1)
		// Keep-alive rounds, each sent as a redo would be: the instances
		// are believed to expire now.
		for range 6 {
			f := p.function("guest/fn", 0)
			f.mu.Lock()
			f.redo = true
			f.mu.Unlock()
			p.Tick()
			p.sending.Wait()
		}
		st := p.Status(10)
		p.Close()
		if len(st.List) != 1 {
			t.Fatalf("status lists %d functions", len(st.List))
		}
		fs := st.List[0]
		t.Logf("ignore=%v: status %+v; emulator warm instances %d", ignore, fs, emu.Stats().Functions["guest/fn"].WarmInstances)
		if fs.IgnoresHold != ignore {
			t.Errorf("function ignoring the hold: %v; status ignores_hold %v", ignore, fs.IgnoresHold)
		}
	}
}
