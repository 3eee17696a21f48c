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

// receivedClient is a Watcher whose request reached the host ago before
// it was read, counting how often it was asked and with which budget.
type receivedClient struct {
	ago     time.Duration
	now     func() time.Time
	asked   int
	budgets []time.Duration
}

func (r *receivedClient) WatchGone() <-chan struct{} { return nil }
func (r *receivedClient) StopWatch()                 {}
func (r *receivedClient) Received(budget time.Duration) time.Time {
	r.asked++
	r.budgets = append(r.budgets, budget)
	return r.now().Add(-r.ago)
}

// TestReceivedAskedForNewChainsOnly: when its request reached the host is
// asked (a system call in the proxy) only for the first step of a chain
// with a budget, the request's or the default one, and that chain's
// deadline runs from then.
func TestReceivedAskedForNewChainsOnly(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	s := New(Config{Limit: 1, QueueCapacity: 1, QueueTimeout: time.Minute, DefaultEstimate: time.Millisecond,
		Now: clock, DefaultDeadline: time.Minute})
	defer s.Close()
	r := &receivedClient{ago: time.Second, now: clock}
	do := func(inv *invocation.Invocation) {
		t.Helper()
		if _, err := s.Do(inv, r, invokerFunc(func() {})); err != nil {
			t.Fatal(err)
		}
	}
	first := &invocation.Invocation{Function: "f", Chain: "c", Steps: 3, Budget: 10 * time.Second}
	do(first)
	if want := now.Add(9 * time.Second); !first.Deadline.Equal(want) {
		t.Errorf("deadline %v after the request reached the host a second early, want %v", first.Deadline.Sub(now), want.Sub(now))
	}
	do(&invocation.Invocation{Function: "f", Chain: "c"})
	do(&invocation.Invocation{Function: "f", Chain: "c", Budget: 10 * time.Second})
	if r.asked != 1 || r.budgets[0] != 10*time.Second {
		t.Fatalf("asked %d times (budgets %v) for a new chain and two continuations, want once with 10s", r.asked, r.budgets)
	}
	// The default budget of a chain that names none.
	do(&invocation.Invocation{Function: "f", Chain: "d", Steps: 2})
	if r.asked != 2 || r.budgets[1] != time.Minute {
		t.Errorf("asked %d times (budgets %v), want a second time with the default 1m", r.asked, r.budgets)
	}
}

// TestReceivedNotAskedWithoutBudget: a chain without a budget has no
// deadline to run from anywhere, so nobody is asked.
func TestReceivedNotAskedWithoutBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 1, QueueCapacity: 1, QueueTimeout: time.Minute, DefaultEstimate: time.Millisecond,
		Now: func() time.Time { return now }})
	defer s.Close()
	r := &receivedClient{ago: time.Second, now: func() time.Time { return now }}
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Steps: 2}, r, invokerFunc(func() {})); err != nil {
		t.Fatal(err)
	}
	if r.asked != 0 {
		t.Errorf("asked %d times for a chain without a budget, want 0", r.asked)
	}
}
