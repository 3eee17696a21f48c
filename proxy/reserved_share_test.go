package proxy

import (
	"maps"
	"testing"
	"time"
)

// TestReservedCapsShared: the caps one replica learned reach another that
// learned none for the function, and never replace one it learned itself.
func TestReservedCapsShared(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a, b := &Proxy{}, &Proxy{}
	a.plat.reserved = newReservedCaps(time.Minute, clock.now)
	b.plat.reserved = newReservedCaps(time.Minute, clock.now)
	st := a.plat.reserved.state("f")
	st.inFlight.Store(4)
	a.plat.reserved.throttled(st)
	st = b.plat.reserved.state("g")
	st.inFlight.Store(9)
	b.plat.reserved.throttled(st)

	learned := a.LearnedCaps()
	if want := map[string]int{"f": 3}; !maps.Equal(learned, want) {
		t.Fatalf("learned %v, want %v", learned, want)
	}
	for fn, n := range learned {
		b.AdoptCap(fn, n)
	}
	b.AdoptCap("g", 1) // b learned its own
	if got := b.plat.reserved.capOf("f"); got != 3 {
		t.Errorf("b's cap for f = %d, want a's 3", got)
	}
	if got := b.plat.reserved.capOf("g"); got != 8 {
		t.Errorf("b's cap for g = %d, want its own 8", got)
	}
	clock.add(2 * time.Minute)
	if got := b.plat.reserved.capOf("f"); got != 5 {
		t.Errorf("an adopted cap after two quiet periods = %d, want 5 (it grows back)", got)
	}
	if (&Proxy{}).LearnedCaps() != nil {
		t.Error("a proxy that learns no caps shared some")
	}
	(&Proxy{}).AdoptCap("f", 3) // nothing to adopt into, nothing breaks
}
