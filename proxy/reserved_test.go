package proxy

import (
	"encoding/json"
	"reflect"
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

// TestReservedCapsStatus: the status section lists the functions held to
// a learned cap, most recently throttled first, with the cap now, the one
// learned, and when it last changed (the throttle, else its last growth
// step); functions without a cap are left out and the list is bounded.
func TestReservedCapsStatus(t *testing.T) {
	t0 := time.Unix(1000, 0).UTC()
	clock := &fakeClock{t: t0}
	r := newReservedCaps(time.Second, clock.now)
	throttle := func(fn string, inFlight int64) {
		st := r.state(fn)
		st.inFlight.Store(inFlight)
		r.throttled(st)
		st.inFlight.Store(0)
	}
	r.state("never") // invoked, never throttled: no cap
	throttle("a", 6) // learns 5 at t0
	clock.add(time.Second)
	throttle("c", 3) // learns 2 at t0+1s
	clock.add(1500 * time.Millisecond)

	got := r.status(10)
	want := ReservedCaps{Quiet: "1s", Functions: 2, Shown: 2, List: []ReservedCap{
		{Function: "c", Cap: 3, Learned: 2, Throttled: t0.Add(time.Second), Changed: t0.Add(2 * time.Second)},
		{Function: "a", Cap: 7, Learned: 5, Throttled: t0, Changed: t0.Add(2 * time.Second)},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status(10) =\n%+v\nwant\n%+v", got, want)
	}
	if got := r.status(1); got.Functions != 2 || got.Shown != 1 || len(got.List) != 1 || got.List[0].Function != "c" {
		t.Errorf("status(1) = %+v, want c alone of 2", got)
	}

	// A cap just learned has changed at its throttle.
	throttle("a", 2)
	if got := r.status(10).List[0]; got.Function != "a" || got.Cap != 1 || !got.Changed.Equal(t0.Add(2500*time.Millisecond)) {
		t.Errorf("after a new throttle: %+v, want a at 1, changed now", got)
	}

	// Caps grown past the bound are forgotten; the list is then empty,
	// not null.
	clock.add(2 * maxLearnedCap * time.Second)
	b, err := json.Marshal(r.status(10))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"grows_every":"1s","functions":0,"shown":0,"by_function":[]}` {
		t.Errorf("status with no cap = %s", b)
	}
}

// TestReservedCapsNotLearned: a proxy that does not learn caps has no
// such status section.
func TestReservedCapsNotLearned(t *testing.T) {
	p := &Proxy{}
	if st := p.ReservedCaps(10); st != nil {
		t.Errorf("status %+v from a proxy that does not learn caps", st)
	}
	p.plat.reserved = newReservedCaps(time.Minute, nil)
	if st := p.ReservedCaps(10); st == nil || st.Quiet != "1m0s" || st.Functions != 0 {
		t.Errorf("status %+v, want an empty section", st)
	}
}
