package adaptive

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestLimitConcurrent: workers reporting at once keep the limit within its
// bounds, and the scheduler ends up with the last value, the effective one.
func TestLimitConcurrent(t *testing.T) {
	var applied atomic.Int64
	var inflight atomic.Int64
	l := New(Config{Ceiling: 40, Cooldown: time.Nanosecond, Quiet: time.Nanosecond},
		func(n int) { applied.Store(int64(n)) }, func() int { return int(inflight.Load()) }, nil)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				inflight.Add(1)
				switch {
				case (i+w)%50 == 0:
					l.OnThrottle()
				case i%300 == 0:
					l.Hold(time.Millisecond)
				default:
					l.OnSuccess("f", int(inflight.Load()), time.Now().Add(-time.Duration(1+i%7)*time.Millisecond))
				}
				if n := l.Limit(); n < 1 || n > 40 {
					t.Errorf("limit %d out of [1, 40]", n)
				}
				inflight.Add(-1)
			}
		})
	}
	wg.Wait()
	// A hold's expiry gives its slot back, then applies: wait for both.
	// (A minute bounds no speed: it turns a stale limit into a failure.)
	for end := time.Now().Add(time.Minute); l.Held() != 0 || int(applied.Load()) != l.Effective(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("scheduler limit %d, want the effective %d (held %d)", applied.Load(), l.Effective(), l.Held())
		}
	}
	if got := l.Throttles(); got != 8*2000/50 {
		t.Errorf("throttles %d, want %d", got, 8*2000/50)
	}
}

// TestHoldTakesSlots: background holds lower the scheduler's limit and give
// the slots back when they expire; the limit never goes under 1.
func TestHoldTakesSlots(t *testing.T) {
	var applied atomic.Int64
	l := New(Config{Ceiling: 3}, func(n int) { applied.Store(int64(n)) }, func() int { return 0 }, nil)
	l.Hold(time.Hour) // never expires within the test
	if got := applied.Load(); got != 2 {
		t.Errorf("after one hold: %d, want 2", got)
	}
	for range 4 {
		l.Hold(time.Hour)
	}
	if got := applied.Load(); got != 1 {
		t.Errorf("after five holds of three slots: %d, want 1", got)
	}

	l2 := New(Config{Ceiling: 3}, func(n int) { applied.Store(int64(n)) }, func() int { return 0 }, nil)
	l2.Hold(time.Millisecond)
	for end := time.Now().Add(time.Minute); l2.Held() != 0 || applied.Load() != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("a minute after a 1ms hold: limit %d, held %d; want 3, 0", applied.Load(), l2.Held())
		}
	}
}

func TestCollectors(t *testing.T) {
	l := New(Config{Ceiling: 10}, func(int) {}, func() int { return 0 }, nil)
	l.OnThrottle()
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collectors("sequoia")...)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 6 {
		t.Fatalf("%d families, %v", len(mfs), err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sequoia_adaptive_limit" {
			if got := mf.GetMetric()[0].GetGauge().GetValue(); got != 9 {
				t.Errorf("sequoia_adaptive_limit %v, want 9", got)
			}
		}
	}
}
