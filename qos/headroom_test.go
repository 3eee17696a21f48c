package qos

import (
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// missedChain is a chain started at 0 with a budget of 1s, projected to
// finish at predicted, admitted with headroom h.
func missedChain(predicted time.Duration, h float64) *chain {
	start := time.Unix(0, 0)
	return &chain{start: start, deadline: start.Add(time.Second), predicted: predicted, headroom: h}
}

func TestHeadroomLearnsAndFades(t *testing.T) {
	var h headroom
	h.init(0.05, 0.5)
	if got := h.value(); got != 0.05 {
		t.Fatalf("starts at %v, want the floor 0.05", got)
	}
	// An answer 20ms late for a chain projected to finish at 950ms needs
	// 70ms + 1%: the headroom moves a quarter of the way to 8%.
	h.missed(missedChain(950*time.Millisecond, 0.05), time.Unix(0, int64(1020*time.Millisecond)))
	if got, want := h.value(), 0.05+(0.08-0.05)*headroomStep; math.Abs(got-want) > 1e-9 {
		t.Errorf("after a late answer: %v, want %v", got, want)
	}
	// One that would need 13% asks at most twice the 5% its chain was
	// admitted with.
	var capped headroom
	capped.init(0.05, 0.5)
	capped.missed(missedChain(900*time.Millisecond, 0.05), time.Unix(0, int64(1020*time.Millisecond)))
	if got, want := capped.value(), 0.05+(0.10-0.05)*headroomStep; math.Abs(got-want) > 1e-9 {
		t.Errorf("after a miss that needed 13%%: %v, want %v", got, want)
	}
	// A miss that needed less than is kept changes nothing.
	before := h.value()
	h.missed(missedChain(990*time.Millisecond, 0.05), time.Unix(0, int64(1001*time.Millisecond)))
	if h.value() != before {
		t.Errorf("a miss that needed 2.1%%: %v, want it unchanged at %v", h.value(), before)
	}
	// A client that left in the first half of its budget did not leave
	// for its deadline.
	h.missed(missedChain(300*time.Millisecond, 0.05), time.Unix(0, int64(400*time.Millisecond)))
	if h.value() != before {
		t.Errorf("an early departure: %v, want it unchanged at %v", h.value(), before)
	}
	// Misses never take it past the ceiling, however many bursts ask.
	for range 200 {
		h.missed(missedChain(100*time.Millisecond, h.value()), time.Unix(0, int64(2*time.Second)))
	}
	if got := h.value(); math.Abs(got-0.5) > 1e-6 || got > 0.5 {
		t.Errorf("after 200 large misses: %v, want about the ceiling 0.5", got)
	}
	// Chains completed in time bring it back to the floor, not below.
	for range 100 * headroomDecay {
		h.kept()
	}
	if got := h.value(); got != 0.05 {
		t.Errorf("after many chains in time: %v, want the floor 0.05", got)
	}

	// A ceiling at the floor keeps it fixed.
	var fixed headroom
	fixed.init(0.1, 0.1)
	fixed.missed(missedChain(900*time.Millisecond, 0.1), time.Unix(0, int64(1500*time.Millisecond)))
	if fixed.value() != 0.1 {
		t.Errorf("fixed headroom moved to %v", fixed.value())
	}
	// No ceiling configured: 0.5.
	var def headroom
	def.init(0.05, 0)
	if def.ceiling != defaultMaxHeadroom {
		t.Errorf("default ceiling %v, want %v", def.ceiling, defaultMaxHeadroom)
	}
}

// TestHeadroomConcurrent: misses and completions from many goroutines
// (run with -race) keep the headroom between its floor and its ceiling.
func TestHeadroomConcurrent(t *testing.T) {
	var h headroom
	h.init(0.05, 0.3)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				if (i+g)%7 == 0 {
					h.missed(missedChain(800*time.Millisecond, h.value()), time.Unix(0, int64(1100*time.Millisecond)))
				} else {
					h.kept()
				}
			}
		})
	}
	wg.Wait()
	if v := h.value(); v < 0.05 || v > 0.3 {
		t.Errorf("headroom %v, want within [0.05, 0.3]", v)
	}
}

// goneClient is a Watcher whose client has left (Gone), counting how often
// it was asked.
type goneClient struct {
	asked int
	mu    sync.Mutex
}

func (g *goneClient) WatchGone() <-chan struct{} { return nil }
func (g *goneClient) StopWatch()                 {}
func (g *goneClient) Gone() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.asked++
	return true
}

// TestGoneAskedLateInBudget: whether the client left is asked only for a
// step of a chain with a deadline that ends in the second half of its
// budget (it costs the proxy a system call), and an answer to a client
// that left then drops the chain.
func TestGoneAskedLateInBudget(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	step := func(d time.Duration) Invoker {
		return invokerFunc(func() { mu.Lock(); now = now.Add(d); mu.Unlock() })
	}
	ev := &recordEvents{}
	s := New(Config{Limit: 1, QueueCapacity: 1, QueueTimeout: time.Minute, DefaultEstimate: 10 * time.Millisecond,
		Now: clock, Events: ev})
	defer s.Close()
	g := &goneClient{}
	// No deadline: never asked.
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "free", Steps: 2}, g, step(10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// A 100ms budget: the first step ends at 10ms (not asked), the
	// second at 60ms (asked: gone).
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Steps: 2, Budget: 100 * time.Millisecond}, g, step(10*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if g.asked != 0 {
		t.Fatalf("asked %d times in the first half of budgets or without one, want 0", g.asked)
	}
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c"}, g, step(50*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if g.asked != 1 {
		t.Errorf("asked %d times for a step ending at 60%% of its budget, want 1", g.asked)
	}
	if got := ev.drain(); !strings.Contains(got, "chain client gone (interactive)") || !strings.Contains(got, "took 60ms") {
		t.Errorf("events:\n%s\nwant chain c dropped as client gone", got)
	}
	if s.Headroom() <= 0 {
		t.Errorf("headroom %v after a drop, want it learned above 0", s.Headroom())
	}
}
