package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// TestBenchColdstartSmall runs `sequoia bench coldstart --json` on a small,
// fast workload: without the pool every invocation of the burst after the
// idle period pays a cold start; with it fewer do, warm-ups are sent, and
// the steady run reports its cost.
func TestBenchColdstartSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	var out bytes.Buffer
	err := runBenchColdstart(context.Background(), []string{"-short", "--json"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep coldReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if sp := rep.Spec; sp.Chains != 4 || sp.Steady != 2*time.Second || sp.SteadyKeepAlive != 400*time.Millisecond || !sp.SteadyBaseline {
		t.Errorf("-short ran %+v, want 4 chains, a 2s steady run at a 400ms keep-alive, with the baseline", sp)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].WarmPool || !rep.Rows[1].WarmPool {
		t.Fatalf("rows = %+v, want without then with the pool", rep.Rows)
	}
	without, with := rep.Rows[0], rep.Rows[1]
	if without.Completed != 4 || with.Completed != 4 {
		t.Errorf("completed %d and %d chains, want 4 each", without.Completed, with.Completed)
	}
	if without.ColdStarts != 8 || without.Warmups != 0 {
		t.Errorf("without the pool: %d cold starts, %d warm-ups; want 8 (every instance expired) and 0", without.ColdStarts, without.Warmups)
	}
	if with.ColdStarts >= without.ColdStarts || with.Warmups == 0 {
		t.Errorf("with the pool: %d cold starts, %d warm-ups; want fewer than %d and some warm-ups", with.ColdStarts, with.Warmups, without.ColdStarts)
	}
	st := rep.Steady
	if st == nil || st.Invocations == 0 || st.Warmups == 0 {
		t.Fatalf("steady row = %+v, want invocations and warm-ups", st)
	}
	// The three measures of cost agree with the counts they come from.
	if st.ByReason["keepalive"] == 0 || st.KeepAlivePerPeriod <= 0 {
		t.Errorf("steady: %v warm-ups by reason, %.1f keep-alive per function per period; want keep-alive warm-ups (-prewarm 4)",
			st.ByReason, st.KeepAlivePerPeriod)
	}
	if want := float64(st.Warmups) / float64(st.Warmups+st.Invocations); st.WarmupShare != want {
		t.Errorf("share by count %v, want %v", st.WarmupShare, want)
	}
	if st.WarmupSlotTime < time.Duration(st.Warmups)*time.Millisecond || st.RealSlotTime < time.Duration(st.Invocations)*10*time.Millisecond {
		t.Errorf("slot-time: warm-ups %v for %d (want at least the hold each), real %v for %d (at least 10ms each)",
			st.WarmupSlotTime, st.Warmups, st.RealSlotTime, st.Invocations)
	}
	// The hold adapts: each warm-up counts at the mean hold asked, which
	// the report gives with the hold each function settled on.
	h := st.Holds
	if h == nil || len(h.ByFunction) != 2 || h.Mean < time.Millisecond || h.Rounds.Verified+h.Rounds.Unverified == 0 {
		t.Fatalf("steady holds %+v, want a hold for each of the 2 functions, the mean asked (1ms at least) and rounds checked", h)
	}
	if want := time.Duration(st.Warmups)*h.Mean + time.Duration(st.WarmupColdStarts)*100*time.Millisecond; st.WarmupSlotTime != want {
		t.Errorf("warm-up slot-time %v, want %v: %d warm-ups at the mean hold %v plus %d cold starts", st.WarmupSlotTime, want,
			st.Warmups, h.Mean, st.WarmupColdStarts)
	}
	if want := time.Duration(st.WarmupColdStarts) * 100 * time.Millisecond; st.WarmupCreateTime != want {
		t.Errorf("slot-time creating instances %v, want %v: %d warm-up cold starts of 100ms", st.WarmupCreateTime, want, st.WarmupColdStarts)
	}
	if without.Holds != nil || with.Holds == nil {
		t.Errorf("burst holds %+v without the pool and %+v with it, want none and some", without.Holds, with.Holds)
	}
	if want := float64(st.WarmupSlotTime) / float64(st.WarmupSlotTime+st.RealSlotTime); st.SlotTimeShare != want || want <= 0 || want >= 1 {
		t.Errorf("share by slot-time %v, want %v in (0, 1)", st.SlotTimeShare, want)
	}
	// -steady-baseline: the same steady run without the pool, and what the
	// pool added to occupied slot-time against it.
	base := rep.SteadyBaseline
	if base == nil || base.Target != "steady, no pool" || base.Invocations == 0 || base.Warmups != 0 || base.ColdStarts == 0 {
		t.Fatalf("baseline row = %+v, want real invocations, cold starts and no warm-ups", base)
	}
	occupied := st.WarmupSlotTime + st.RealSlotTime
	if want := float64(occupied-base.RealSlotTime) / float64(occupied); rep.NetSlotTime != want {
		t.Errorf("net slot-time share %v, want %v", rep.NetSlotTime, want)
	}
}
