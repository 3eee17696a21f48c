package config

import (
	"strings"
	"testing"
	"time"
)

func TestWarmPoolDefaults(t *testing.T) {
	cfg, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.WarmPool
	if w.Prewarm || w.PrewarmMin != 0 || len(w.PrewarmFunctions) != 0 || !w.PrewarmBurst || !w.PrewarmChains {
		t.Errorf("defaults = %+v", w)
	}
}

func TestWarmPoolFunctions(t *testing.T) {
	cfg, err := LoadFrom([]string{"SEQUOIA_PREWARM_FUNCTIONS=guest/fn=3,other=1", "SEQUOIA_MAX_CONCURRENCY=10"})
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.WarmPool.PrewarmFunctions
	if len(got) != 2 || got["guest/fn"] != 3 || got["other"] != 1 {
		t.Errorf("PrewarmFunctions = %v, want guest/fn=3, other=1", got)
	}
}

func TestWarmPoolSwitchesPerFunction(t *testing.T) {
	cfg, err := LoadFrom([]string{
		"SEQUOIA_PREWARM_BURST_FUNCTIONS=guest/fn=false,other=true",
		"SEQUOIA_PREWARM_CHAINS_FUNCTIONS=guest/next=false",
	})
	if err != nil {
		t.Fatal(err)
	}
	w := cfg.WarmPool
	if b := w.PrewarmBurstFunctions; len(b) != 2 || b["guest/fn"] || !b["other"] {
		t.Errorf("PrewarmBurstFunctions = %v, want guest/fn=false, other=true", b)
	}
	if c := w.PrewarmChainsFunctions; len(c) != 1 || c["guest/next"] {
		t.Errorf("PrewarmChainsFunctions = %v, want guest/next=false", c)
	}
}

// TestWarmPoolHold: the hold starts at SEQUOIA_PREWARM_HOLD and adapts
// within its bounds by default; all three equal fix it.
func TestWarmPoolHold(t *testing.T) {
	for _, tc := range []struct {
		env          []string
		hold, lo, hi time.Duration
	}{
		{nil, 25 * time.Millisecond, time.Millisecond, 250 * time.Millisecond},
		{[]string{"SEQUOIA_PREWARM_HOLD=10ms", "SEQUOIA_PREWARM_HOLD_MIN=10ms", "SEQUOIA_PREWARM_HOLD_MAX=10ms"},
			10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
		{[]string{"SEQUOIA_PREWARM_HOLD=0s", "SEQUOIA_PREWARM_HOLD_MIN=0s", "SEQUOIA_PREWARM_HOLD_MAX=0s"}, 0, 0, 0},
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=400ms", "SEQUOIA_PREWARM_HOLD_MAX=100ms"},
			25 * time.Millisecond, time.Millisecond, 100 * time.Millisecond},
	} {
		cfg, err := LoadFrom(tc.env)
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		w := cfg.WarmPool
		if w.PrewarmHold != tc.hold || w.PrewarmHoldMin != tc.lo || w.PrewarmHoldMax != tc.hi {
			t.Errorf("%v: hold %v in [%v, %v], want %v in [%v, %v]", tc.env,
				w.PrewarmHold, w.PrewarmHoldMin, w.PrewarmHoldMax, tc.hold, tc.lo, tc.hi)
		}
	}
}

func TestWarmPoolBadValues(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string // the variable the error must name
	}{
		{[]string{"SEQUOIA_PREWARM_MIN=-1"}, "SEQUOIA_PREWARM_MIN"},
		{[]string{"SEQUOIA_MAX_CONCURRENCY=10", "SEQUOIA_PREWARM_MIN=11"}, "SEQUOIA_PREWARM_MIN"},
		{[]string{"SEQUOIA_PREWARM_MIN=three"}, "SEQUOIA_PREWARM_MIN"},
		{[]string{"SEQUOIA_PREWARM_FUNCTIONS=fn=-2"}, "SEQUOIA_PREWARM_FUNCTIONS"},
		{[]string{"SEQUOIA_MAX_CONCURRENCY=10", "SEQUOIA_PREWARM_FUNCTIONS=fn=3,big=1000"}, "SEQUOIA_PREWARM_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_FUNCTIONS=fn=many"}, "SEQUOIA_PREWARM_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_FUNCTIONS=fn"}, "SEQUOIA_PREWARM_FUNCTIONS"},
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=0s"}, "SEQUOIA_PLATFORM_KEEPALIVE"},
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=soon"}, "SEQUOIA_PLATFORM_KEEPALIVE"},
		{[]string{"SEQUOIA_PREWARM_HEADROOM=1"}, "SEQUOIA_PREWARM_HEADROOM"},
		{[]string{"SEQUOIA_PREWARM_MAX_FUNCTIONS=0"}, "SEQUOIA_PREWARM_MAX_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_BACKOFF=2s", "SEQUOIA_PREWARM_MAX_BACKOFF=1s"}, "SEQUOIA_PREWARM_MAX_BACKOFF"},
		{[]string{"SEQUOIA_PREWARM_HOLD=-1ms"}, "SEQUOIA_PREWARM_HOLD"},
		{[]string{"SEQUOIA_PREWARM_HOLD_MIN=-1ms"}, "SEQUOIA_PREWARM_HOLD_MIN"},
		{[]string{"SEQUOIA_PREWARM_HOLD_MAX=-1ms"}, "SEQUOIA_PREWARM_HOLD_MAX"},
		{[]string{"SEQUOIA_PREWARM_HOLD_MAX=soon"}, "SEQUOIA_PREWARM_HOLD_MAX"},
		{[]string{"SEQUOIA_PREWARM_HOLD_MIN=30ms", "SEQUOIA_PREWARM_HOLD_MAX=20ms"}, "SEQUOIA_PREWARM_HOLD_MIN"},
		{[]string{"SEQUOIA_PREWARM_HOLD=5ms", "SEQUOIA_PREWARM_HOLD_MIN=10ms"}, "SEQUOIA_PREWARM_HOLD"},
		{[]string{"SEQUOIA_PREWARM_HOLD=300ms"}, "SEQUOIA_PREWARM_HOLD"}, // above the default maximum
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=200ms"}, "SEQUOIA_PREWARM_HOLD_MAX"},
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=1s", "SEQUOIA_PREWARM_HOLD_MAX=1s"}, "SEQUOIA_PREWARM_HOLD_MAX"},
		{[]string{"SEQUOIA_PREWARM_BURST_FUNCTIONS=fn=maybe"}, "SEQUOIA_PREWARM_BURST_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_BURST_FUNCTIONS=fn"}, "SEQUOIA_PREWARM_BURST_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_BURST_FUNCTIONS==false"}, "SEQUOIA_PREWARM_BURST_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_CHAINS_FUNCTIONS=a=true,b=2"}, "SEQUOIA_PREWARM_CHAINS_FUNCTIONS"},
		{[]string{"SEQUOIA_PREWARM_CHAINS_FUNCTIONS==true"}, "SEQUOIA_PREWARM_CHAINS_FUNCTIONS"},
	} {
		_, err := LoadFrom(tc.env)
		if err == nil {
			t.Errorf("%v: no error, want one naming %s", tc.env, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not name %s", tc.env, err, tc.want)
		}
	}
}
