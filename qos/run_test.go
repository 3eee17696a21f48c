package qos

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

func TestAdmitRun(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Second, Now: func() time.Time { return now }})
	s.Observe("f", 100*time.Millisecond)

	// A critical path longer than the budget is refused.
	_, err := s.AdmitRun(RunPlan{Chain: "r0", Budget: 250 * time.Millisecond, Critical: 300 * time.Millisecond, Work: 300 * time.Millisecond, Steps: 3})
	var ref *RefusedError
	if !errors.As(err, &ref) || ref.RetryAfter <= 0 {
		t.Fatalf("AdmitRun = %v, want a refusal with a retry-after", err)
	}
	if s.ActiveChains() != 0 {
		t.Errorf("a refused run is in the chain table")
	}

	// One that fits is admitted, with its deadline, as a chain.
	plan := RunPlan{Chain: "r1", Budget: time.Second, Critical: 200 * time.Millisecond, Work: 400 * time.Millisecond, Steps: 4}
	deadline, err := s.AdmitRun(plan)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := deadline, now.Add(time.Second); !got.Equal(want) {
		t.Errorf("deadline %v, want %v", got, want)
	}
	if s.ActiveChains() != 1 {
		t.Errorf("active chains %d, want 1", s.ActiveChains())
	}
	// Its 4 outstanding steps (400ms over 2 slots) are ahead of the next
	// run: 200ms of wait, then the same plan's 200ms critical path, is
	// past a 350ms budget, though the plan alone would fit it.
	plan.Chain, plan.Budget = "r2", 350*time.Millisecond
	if _, err := s.AdmitRun(plan); !errors.Is(err, ErrRefused) {
		t.Errorf("second run: %v, want refused behind the first", err)
	}
	// Once the first run ends, its booking is released.
	s.EndRun("r1", false)
	if s.ActiveChains() != 0 {
		t.Errorf("EndRun left the chain in the table")
	}
	if _, err := s.AdmitRun(plan); err != nil {
		t.Errorf("second run after the first ended: %v", err)
	}
}

func TestTouchRunOutlivesTheTTL(t *testing.T) {
	const ttl = 200 * time.Millisecond
	// The table's clock is the test's: a touch every twentieth of the TTL
	// is one however long the machine takes between two.
	var clock atomic.Int64 // read by the table's sweeper too
	clock.Store(time.Unix(1000, 0).UnixNano())
	s := New(Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Second, ChainTTL: ttl,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	defer s.Close()
	if _, err := s.AdmitRun(RunPlan{Chain: "long", Critical: time.Millisecond, Steps: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdmitRun(RunPlan{Chain: "untouched", Critical: time.Millisecond, Steps: 1}); err != nil {
		t.Fatal(err)
	}
	for range 60 { // three TTLs
		clock.Add(int64(ttl / 20))
		s.TouchRun("long")
	}
	if _, ok := s.adm.table.Get("long"); !ok {
		t.Error("a touched run was forgotten after its TTL")
	}
	if _, ok := s.adm.table.Get("untouched"); ok {
		t.Error("an untouched run outlived three TTLs")
	}
	s.TouchRun("never-admitted")
	if _, ok := s.adm.table.Get("never-admitted"); ok {
		t.Error("TouchRun added a chain")
	}
}

// TestRunsLearnNoChainLength: a DAG run that ends completed teaches no
// chain length: it has no entry function (its steps are given), and its id
// must not become one in the per-function table, which every run would
// otherwise grow by a name until it is full.
func TestRunsLearnNoChainLength(t *testing.T) {
	s := New(Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Second})
	defer s.Close()
	for i := range 50 {
		id := "run-" + strconv.Itoa(i)
		if _, err := s.AdmitRun(RunPlan{Chain: id, Critical: time.Millisecond, Work: time.Millisecond, Steps: 1}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Do(&invocation.Invocation{Function: "node", Chain: id}, nil, invokerFunc(func() {})); err != nil {
			t.Fatal(err)
		}
		s.EndRun(id, false)
	}
	for name := range s.fnFlight.All() {
		if strings.HasPrefix(name, "run-") {
			t.Fatalf("the per-function table holds the run id %q", name)
		}
	}
}

// TestRunRetriedNodeCompletes: a run's invocation the platform throttled
// (or whose function failed) and that the runner tried again does not fail
// the run: EndRun says how it ended.
func TestRunRetriedNodeCompletes(t *testing.T) {
	ev := &countEvents{}
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Minute, Events: ev})
	defer s.Close()
	if _, err := s.AdmitRun(RunPlan{Chain: "run", Budget: time.Minute, Critical: time.Millisecond, Work: time.Millisecond, Steps: 1}); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{429, 200} {
		inv := &invocation.Invocation{Function: "f", Chain: "run", Resp: &fasthttp.Response{}}
		if _, err := s.Do(inv, nil, &retryInvoker{codes: []int{code}}); err != nil {
			t.Fatal(err)
		}
	}
	s.EndRun("run", false)
	if ev.ended.Load() != 1 || ev.completed.Load() != 1 {
		t.Errorf("ended %d, completed %d; want the run completed", ev.ended.Load(), ev.completed.Load())
	}
}
