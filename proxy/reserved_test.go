package proxy

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestReservedCapsLearnAndProbe(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	r := newReservedCaps(time.Second, clock.now)
	if got := r.capOf("f"); got != 0 {
		t.Fatalf("cap before any throttle: %d", got)
	}
	st := r.state("f")
	st.inFlight.Store(6) // five others running, and the throttled call
	r.throttled(st)
	if got := r.capOf("f"); got != 5 {
		t.Errorf("learned cap %d, want 5", got)
	}
	if got := r.capOf("g"); got != 0 {
		t.Errorf("another function is capped: %d", got)
	}
	clock.add(999 * time.Millisecond)
	if got := r.capOf("f"); got != 5 {
		t.Errorf("cap before a quiet period %d, want 5", got)
	}
	clock.add(2 * time.Second)
	if got := r.capOf("f"); got != 7 {
		t.Errorf("cap after ~3 quiet periods %d, want 7 (one more per period)", got)
	}
	// A throttle while probing sets it back to what ran, never higher
	// than the cap in force.
	st.inFlight.Store(7)
	r.throttled(st)
	if got := r.capOf("f"); got != 6 {
		t.Errorf("cap after a throttle while probing %d, want 6", got)
	}
	st.inFlight.Store(40) // calls sent before the cap applied
	r.throttled(st)
	if got := r.capOf("f"); got != 6 {
		t.Errorf("a throttle with more in flight raised the cap to %d", got)
	}
	st.inFlight.Store(1) // only the throttled call: the floor is 1
	r.throttled(st)
	if got := r.capOf("f"); got != 1 {
		t.Errorf("cap %d, want the floor 1", got)
	}
	clock.add(maxLearnedCap * time.Second)
	if got := r.capOf("f"); got != 0 {
		t.Errorf("a cap probed past %d is not forgotten: %d", maxLearnedCap, got)
	}
}

func TestEffectiveCap(t *testing.T) {
	for _, tt := range []struct{ policy, learned, want int }{
		{0, 0, 0}, {0, 3, 3}, {5, 3, 3}, {2, 3, 2}, {4, 0, 4},
	} {
		if got := effectiveCap(tt.policy, tt.learned); got != tt.want {
			t.Errorf("effectiveCap(%d, %d) = %d, want %d", tt.policy, tt.learned, got, tt.want)
		}
	}
}

// TestReservedCapsConcurrent: throttles, reads and new functions at once
// (run with -race); the cap stays within what was ever in flight.
func TestReservedCapsConcurrent(t *testing.T) {
	r := newReservedCaps(time.Hour, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			fn := []string{"a", "b"}[i%2]
			for range 500 {
				st := r.state(fn)
				st.inFlight.Add(1)
				if r.capOf(fn) < 0 {
					t.Error("negative cap")
				}
				r.throttled(st)
				st.inFlight.Add(-1)
			}
		})
	}
	wg.Wait()
	for _, fn := range []string{"a", "b"} {
		if c := r.capOf(fn); c < 1 || c > 4 {
			t.Errorf("%s: cap %d, want 1..4 (at most 4 calls were in flight)", fn, c)
		}
		if n := r.state(fn).inFlight.Load(); n != 0 {
			t.Errorf("%s: %d in flight after all returned", fn, n)
		}
	}
}
