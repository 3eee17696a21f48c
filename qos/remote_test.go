package qos

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// testRemote is a cluster as admission sees it: the chains other replicas
// admitted (by id), and what was reported and admitted here.
type testRemote struct {
	mu       sync.Mutex
	chains   map[string]RemoteChain
	steps    []string
	admitted []string
	resolves int
	replicas int // 0: one
}

func (r *testRemote) Replicas() int { return max(1, r.replicas) }

func (r *testRemote) Resolve(inv *invocation.Invocation) (RemoteChain, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolves++
	rc, ok := r.chains[inv.Chain]
	return rc, ok
}

func (r *testRemote) Admitted(inv *invocation.Invocation, steps int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.admitted = append(r.admitted, inv.Chain)
}

func (r *testRemote) Step(c RemoteChain, o StepOutcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, c.Origin+"/"+c.ID+":"+[]string{"ran", "failed", "dropped", "late", "gone"}[o])
}

// TestRemoteChainIsContinuation: a chain another replica admitted is a
// continuation here, even where a new chain would be refused; it starts
// and ends no chain here, is resolved once, and its steps are reported to
// its origin.
func TestRemoteChainIsContinuation(t *testing.T) {
	now := time.Unix(1000, 0)
	ev := &recordEvents{}
	r := &testRemote{chains: map[string]RemoteChain{"x": {Origin: "o", Deadline: now.Add(time.Hour), Steps: 3}}}
	// Default deadline 1ns: any new chain is refused.
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, Events: ev, Remote: r,
		DefaultDeadline: time.Nanosecond, Now: func() time.Time { return now }})
	defer s.Close()
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "new"}, nil, invokerFunc(func() {})); !errors.Is(err, ErrRefused) {
		t.Fatalf("a new chain: %v, want refused", err)
	}
	for i := range 2 {
		inv := &invocation.Invocation{Function: "f", Chain: "x"}
		if _, err := s.Do(inv, nil, invokerFunc(func() {})); err != nil {
			t.Fatalf("step %d of a remote chain: %v", i+2, err)
		}
		if !inv.Continuation || !inv.Deadline.Equal(now.Add(time.Hour)) {
			t.Errorf("step %d: continuation %v, deadline %v", i+2, inv.Continuation, inv.Deadline)
		}
	}
	if got := ev.drain(); strings.Contains(got, "started") || strings.Contains(got, "chain completed") {
		t.Errorf("events %q: a remote chain started or ended here", got)
	}
	if r.resolves != 2 || strings.Join(r.steps, " ") != "o/x:ran o/x:ran" {
		t.Errorf("resolved %d times (want 2: the refused new chain and x once), steps %v", r.resolves, r.steps)
	}
	if strings.Join(r.admitted, " ") != "" {
		t.Errorf("admitted %v here", r.admitted)
	}
	if n := s.ChainStep("x"); n != 4 {
		t.Errorf("ChainStep after its first step elsewhere and two here = %d, want 4", n)
	}
}

// TestRemoteChainPastDeadline: a remote chain whose deadline passed is a
// new chain; one whose deadline passes while its step waits is dropped,
// and the drop is reported.
func TestRemoteChainPastDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &testRemote{chains: map[string]RemoteChain{
		"old":  {Origin: "o", Deadline: now.Add(-time.Second)},
		"soon": {Origin: "o", Deadline: now.Add(30 * time.Millisecond)},
	}}
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, Remote: r})
	defer s.Close()
	s.adm.now = func() time.Time { return now }
	old := &invocation.Invocation{Function: "f", Chain: "old"}
	if _, err := s.Do(old, nil, invokerFunc(func() {})); err != nil || old.Continuation {
		t.Fatalf("a remote chain past its deadline: %v, continuation %v; want a new chain", err, old.Continuation)
	}
	s.adm.now = time.Now
	r.chains["soon"] = RemoteChain{Origin: "o", Deadline: time.Now().Add(30 * time.Millisecond)}
	release := holdSlots(t, s)
	defer release()
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "soon"}, nil, invokerFunc(func() {})); !errors.Is(err, ErrDeadline) {
		t.Fatalf("waiting past the deadline: %v", err)
	}
	if strings.Join(r.steps, " ") != "o/soon:dropped" {
		t.Errorf("reports %v, want the drop", r.steps)
	}
}

// TestRemoteStepEndsChain: steps another replica ran of a chain admitted
// here take its reserved steps and end it with its last; a reported drop
// drops it.
func TestRemoteStepEndsChain(t *testing.T) {
	ev := &recordEvents{}
	r := &testRemote{}
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Hour, Events: ev, Remote: r})
	defer s.Close()
	for _, id := range []string{"a", "b"} {
		if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: id, Steps: 3, Budget: time.Hour}, nil, invokerFunc(func() {})); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.adm.est.outstanding.Load(); got != 4 {
		t.Fatalf("outstanding after two first steps of 3-step chains = %d, want 4", got)
	}
	if strings.Join(r.admitted, " ") != "a b" {
		t.Errorf("admitted %v, want a b", r.admitted)
	}
	ev.drain()
	s.RemoteStep("a", StepRan)
	if got := ev.drain(); strings.Contains(got, "completed") {
		t.Errorf("after 2 of 3 steps: %q", got)
	}
	s.RemoteStep("a", StepRan)
	if got := ev.drain(); !strings.Contains(got, "chain completed") {
		t.Errorf("after the last step ran elsewhere: %q, want completed", got)
	}
	s.RemoteStep("b", StepDropped)
	if got := ev.drain(); !strings.Contains(got, "chain dropped") {
		t.Errorf("after a reported drop: %q", got)
	}
	if got := s.adm.est.outstanding.Load(); got != 0 {
		t.Errorf("outstanding after both ended = %d, want 0", got)
	}
	s.RemoteStep("unknown", StepRan) // nothing to do, nothing breaks
}

// TestCommitted: the slots admitted chains are booked on past now, which
// pass as the clock does.
func TestCommitted(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Hour, Now: func() time.Time { return now }})
	defer s.Close()
	s.Observe("f", time.Second)
	if n := s.Committed(); n != 0 {
		t.Fatalf("committed before any chain = %d", n)
	}
	for _, id := range []string{"a", "b"} {
		if _, _, err := s.adm.admit(&invocation.Invocation{Function: "f", Chain: id, Steps: 2, Budget: time.Hour}, s.fnFlight.GetString("f"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Committed(); n != 2 {
		t.Errorf("committed with two chains booked = %d, want 2", n)
	}
	now = now.Add(time.Hour)
	if n := s.Committed(); n != 0 {
		t.Errorf("committed once their bookings passed = %d, want 0", n)
	}
}

// TestSetRate: a lease's share of the rate limit bounds dispatch and
// admission's projections.
func TestSetRate(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Hour, MaxRate: 100})
	defer s.Close()
	s.SetRate(10)
	if got := s.adm.est.rate(); got != 10 {
		t.Errorf("admission's rate = %v, want 10", got)
	}
	if got := float64(s.lim.Limit()); got != 10 {
		t.Errorf("dispatch's rate = %v, want 10", got)
	}
	none := New(Config{Limit: 4})
	defer none.Close()
	none.SetRate(10) // without a rate limit: nothing to share
	if none.adm.est.rate() != 0 {
		t.Error("a scheduler without a rate limit got one")
	}
}

// TestEstimatesSeed: what one scheduler learned seeds another that has
// not learned it, and never replaces what it has.
func TestEstimatesSeed(t *testing.T) {
	a := New(Config{Limit: 4})
	defer a.Close()
	a.Observe("f", 40*time.Millisecond)
	a.Observe("g", 10*time.Millisecond)
	est := a.Estimates(10)
	if est.Functions["f"].Slot != 40*time.Millisecond || est.Slot == 0 {
		t.Fatalf("estimates %+v", est)
	}
	b := New(Config{Limit: 4})
	defer b.Close()
	b.Observe("g", 99*time.Millisecond)
	b.Seed(est.Slot, est.Turnaround, func(yield func(string, FunctionEstimate) bool) {
		for k, v := range est.Functions {
			if !yield(k, v) {
				return
			}
		}
	})
	if got := b.Estimate("f"); got != 40*time.Millisecond {
		t.Errorf("seeded f = %v, want 40ms", got)
	}
	if got := b.Estimate("g"); got != 99*time.Millisecond {
		t.Errorf("g, learned here = %v, want 99ms kept", got)
	}
}

// TestExpiryGivesBackAtDeadline: in a cluster, what a chain reserved and
// no replica used is given back at its deadline (its later steps may have
// run elsewhere unreported).
func TestExpiryGivesBackAtDeadline(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &testRemote{}
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Hour, Remote: r, Now: func() time.Time { return now }})
	defer s.Close()
	for _, tc := range []struct {
		id     string
		budget time.Duration
	}{{"soon", time.Second}, {"later", time.Hour}} {
		if _, _, err := s.adm.admit(&invocation.Invocation{Function: "f", Chain: tc.id, Steps: 3, Budget: tc.budget}, s.fnFlight.GetString("f"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.adm.est.outstanding.Load(); got != 6 {
		t.Fatalf("outstanding = %d, want 6", got)
	}
	s.adm.expiry.sweep(now.Add(500 * time.Millisecond))
	if got := s.adm.est.outstanding.Load(); got != 6 {
		t.Errorf("outstanding before any deadline = %d, want 6", got)
	}
	s.adm.expiry.sweep(now.Add(2 * time.Second))
	if got := s.adm.est.outstanding.Load(); got != 3 {
		t.Errorf("outstanding past the first deadline = %d, want 3", got)
	}
}

// TestRemoteStepLateOrGone: a step of a remote chain answered after its
// deadline is reported late, one whose client left (in the second half of
// the budget) gone, and the origin drops the chain for either, learning
// its headroom from it as from a local miss.
func TestRemoteStepLateOrGone(t *testing.T) {
	clk := newFakeClock() // the sweepers read it too
	clock, start := clk.now, clk.now()
	r := &testRemote{chains: map[string]RemoteChain{
		"late": {Origin: "o", Deadline: start.Add(time.Second)},
		"gone": {Origin: "o", Deadline: start.Add(time.Second)},
	}}
	s := New(Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Hour, Remote: r, Now: clock})
	defer s.Close()
	// The step runs past the deadline.
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "late"}, nil,
		invokerFunc(func() { clk.advance(2 * time.Second) })); err != nil {
		t.Fatal(err)
	}
	clk.ns.Store(start.UnixNano())
	// Its client left while it ran, late in the budget.
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "gone"}, &goneClient{},
		invokerFunc(func() { clk.advance(600 * time.Millisecond) })); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.steps, " "); got != "o/late:late o/gone:gone" {
		t.Errorf("reports %q", got)
	}

	// At the origin.
	ev := &recordEvents{}
	origin := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Hour, Events: ev, Remote: &testRemote{}, Now: clock})
	defer origin.Close()
	for _, id := range []string{"a", "b", "c"} {
		if _, err := origin.Do(&invocation.Invocation{Function: "f", Chain: id, Steps: 2, Budget: time.Second}, nil, invokerFunc(func() {})); err != nil {
			t.Fatal(err)
		}
	}
	ev.drain()
	before := origin.Headroom()
	clk.advance(1100 * time.Millisecond)
	origin.RemoteStep("a", StepLate)
	origin.RemoteStep("b", StepGone)
	origin.RemoteStep("c", StepDropped)
	got := ev.drain()
	for _, want := range []string{"chain late", "chain client gone", "chain dropped"} {
		if !strings.Contains(got, want) {
			t.Errorf("events %q: want %q", got, want)
		}
	}
	if origin.Headroom() <= before {
		t.Errorf("headroom %v after three drops elsewhere, want above %v", origin.Headroom(), before)
	}
}

// TestSpreadMargin: in a cluster, admission keeps in reserve the
// balancer's spread of the steps outstanding (2 deviations of a binomial,
// in slot time over the slots): a chain that fits alone, or in a cluster
// of one, is refused in a cluster of three with that much work ahead of
// it, and one with room for the margin too is admitted.
func TestSpreadMargin(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, replicas := range []int{1, 3} {
		r := &testRemote{replicas: replicas}
		s := New(Config{Limit: 10, QueueCapacity: 100, QueueTimeout: time.Hour, Remote: r, SpreadReserve: 2,
			DefaultEstimate: 100 * time.Millisecond, Now: func() time.Time { return now }})
		// 100 steps outstanding (the first steps of admitted chains,
		// waiting): the fluid bound spreads them over the 10 slots, 1 s.
		s.adm.est.outstanding.Store(100)
		want := time.Duration(0)
		if replicas > 1 {
			want = time.Duration(2 * math.Sqrt(100*(1-1.0/3)) * float64(100*time.Millisecond) / 10) // 163 ms
		}
		if got := s.adm.spread(10); got != want {
			t.Errorf("%d replicas: spread %v, want %v", replicas, got, want)
		}
		f := s.fnFlight.GetString("f")
		// A one-step chain of 100 ms, projected to finish after the
		// 100 steps ahead and its own spread over the slots: 1.01 s.
		tight := &invocation.Invocation{Function: "f", Chain: "tight", Steps: 1, Budget: 1100 * time.Millisecond}
		_, _, err := s.adm.admit(tight, f, nil)
		if refused := err != nil; refused != (replicas > 1) {
			t.Errorf("%d replicas: 90 ms to spare: refused %v", replicas, refused)
		}
		roomy := &invocation.Invocation{Function: "f", Chain: "roomy", Steps: 1, Budget: 1300 * time.Millisecond}
		if _, _, err := s.adm.admit(roomy, f, nil); err != nil {
			t.Errorf("%d replicas: 290 ms to spare: %v", replicas, err)
		}
		s.Close()
	}
}
