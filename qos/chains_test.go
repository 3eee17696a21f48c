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

// TestContinuationDeadlineIsMidChainDrop: a continuation whose chain
// deadline passes while it waits fails with ErrDeadline, is never invoked,
// and the chain counts as dropped.
func TestContinuationDeadlineIsMidChainDrop(t *testing.T) {
	ev := &recordEvents{}
	// Admission's clock stands still: however long the machine takes
	// between the two steps, the second comes before the deadline and is
	// the chain's continuation; its wait for a slot (the real clock) then
	// outlasts the 50ms left.
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, Events: ev, DefaultEstimate: time.Millisecond,
		Now: func() time.Time { return now }})
	first := &invocation.Invocation{Function: "f", Chain: "c", Budget: 50 * time.Millisecond, Steps: 2}
	if _, err := s.Do(first, nil, invokerFunc(func() {})); err != nil {
		t.Fatalf("first step: %v", err)
	}
	release := holdSlots(t, s)
	defer release()
	inv := &countingInvoker{}
	cont := &invocation.Invocation{Function: "g", Chain: "c"}
	if _, err := s.Do(cont, nil, inv); !errors.Is(err, ErrDeadline) {
		t.Fatalf("continuation: err = %v, want ErrDeadline", err)
	}
	if !cont.Continuation {
		t.Error("second sighting of the chain was not a continuation")
	}
	if inv.calls.Load() != 0 {
		t.Error("a continuation past its deadline was invoked")
	}
	got := ev.drain()
	if want := "chain started (interactive)\nchain dropped"; len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("events = %q, want a start then a drop", got)
	}
	if s.Queued() != 0 {
		t.Errorf("queued = %d, want 0", s.Queued())
	}
}

// TestFirstStepPastDeadlineIsNotADrop: a first step that waits past its
// deadline never started any work: its chain fails, it is not dropped.
func TestFirstStepPastDeadlineIsNotADrop(t *testing.T) {
	ev := &recordEvents{}
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, Events: ev, DefaultEstimate: time.Nanosecond})
	release := holdSlots(t, s)
	defer release()
	_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Budget: 20 * time.Millisecond}, nil, invokerFunc(func() {}))
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("err = %v, want ErrDeadline", err)
	}
	if got := ev.drain(); !strings.Contains(got, "chain failed") || strings.Contains(got, "dropped") {
		t.Errorf("events = %q, want the chain to fail", got)
	}
	if s.ActiveChains() != 0 {
		t.Errorf("a chain whose first step never ran stayed in the table")
	}
}

func TestRefusalRetryAfter(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, Now: func() time.Time { return now }})
	s.Observe("f", time.Second)
	release := holdSlots(t, s)
	// The first chain is admitted (finishes at 1s, within 2s) and queues
	// behind the held slot.
	done := make(chan error, 1)
	go func() {
		_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "a", Budget: 2 * time.Second}, nil, invokerFunc(func() {}))
		done <- err
	}()
	waitQueued(t, s, 1)
	// The second would finish at 2s, 500ms past its 1.5s budget.
	_, err := s.Do(&invocation.Invocation{Function: "f", Chain: "b", Budget: 1500 * time.Millisecond}, nil, invokerFunc(func() {}))
	var r *RefusedError
	if !errors.As(err, &r) || !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want a RefusedError", err)
	}
	if r.RetryAfter != 500*time.Millisecond {
		t.Errorf("RetryAfter = %v, want 500ms", r.RetryAfter)
	}
	if got := RetryAfterSeconds(err); got != 1 {
		t.Errorf("RetryAfterSeconds = %d, want 1 (rounded up)", got)
	}
	if got := RetryAfterSeconds(&RefusedError{RetryAfter: 2100 * time.Millisecond}); got != 3 {
		t.Errorf("RetryAfterSeconds(2.1s) = %d, want 3", got)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("admitted chain: %v", err)
	}
}

// TestFastPathAllocatesNothing: Acquire and Release with a free slot and
// nobody waiting allocate nothing.
func TestFastPathAllocatesNothing(t *testing.T) {
	s := New(Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Second})
	inv := &invocation.Invocation{Function: "f", Tenant: "t"}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := s.Acquire(inv, nil); err != nil {
			t.Fatal(err)
		}
		s.Release(inv)
	})
	if allocs != 0 {
		t.Errorf("allocs per Acquire+Release = %v, want 0", allocs)
	}
}

// TestChainsConcurrent runs many two-step chains of several tenants and
// classes through a small pool under -race and checks that every chain
// completes, the limit holds and nothing leaks.
func TestChainsConcurrent(t *testing.T) {
	ev := &countEvents{}
	s := New(Config{Limit: 3, QueueCapacity: 1000, QueueTimeout: time.Minute, Events: ev, TenantCap: 2})
	inv := &countingInvoker{}
	const chains = 200
	errs := make(chan error, chains)
	for i := range chains {
		go func() {
			id := string(rune('a'+i%26)) + string(rune('0'+i/26))
			class := uint8(i % 2)
			tenant := []string{"t1", "t2", "t3"}[i%3]
			for step := range 2 {
				in := &invocation.Invocation{Function: "f", Tenant: tenant, Chain: id, Class: class, Steps: 2}
				if _, err := s.Do(in, nil, inv); err != nil {
					errs <- err
					return
				}
				if (step == 1) != in.Continuation {
					errs <- errors.New("step 2 was not a continuation, or step 1 was")
					return
				}
			}
			errs <- nil
		}()
	}
	for range chains {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := inv.peak.Load(); got > 3 {
		t.Errorf("peak = %d, want <= 3", got)
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Errorf("in flight %d, queued %d; want 0, 0", s.InFlight(), s.Queued())
	}
	if ev.started.Load() != chains || ev.completed.Load() != chains {
		t.Errorf("started %d, completed %d; want %d each", ev.started.Load(), ev.completed.Load(), chains)
	}
}

type countEvents struct {
	started, completed, ended atomic.Int64
}

func (c *countEvents) ChainStarted(uint8) { c.started.Add(1) }
func (c *countEvents) ChainRefused(uint8) {}
func (c *countEvents) ChainEnded(e ChainEnd) {
	c.ended.Add(1)
	if e.Outcome == ChainCompleted {
		c.completed.Add(1)
	}
}
func (c *countEvents) Waited(QueueKind, uint8, time.Duration) {}

// BenchmarkDoChains measures Do with chain bookkeeping and a free slot:
// each op a new chain (table insert, admission), or a continuation of a
// known one (table lookup).
func BenchmarkDoChains(b *testing.B) {
	nop := invokerFunc(func() {})
	b.Run("new-chain", func(b *testing.B) {
		s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second, MaxChains: 1 << 20})
		ids := make([]string, 1<<16)
		for i := range ids {
			ids[i] = "chain-" + strconv.Itoa(i)
		}
		inv := &invocation.Invocation{Function: "f", Budget: time.Minute, Steps: 1}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			inv.Chain = ids[i%len(ids)] // ids repeat (as continuations) only after 64k chains
			i++
			if _, err := s.Do(inv, nil, nop); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("continuation", func(b *testing.B) {
		s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second})
		inv := &invocation.Invocation{Function: "f", Chain: "c"}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Do(inv, nil, nop); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHugeLimitTimelineBounded: the reservation timeline does not grow with
// the worker-slot limit.
func TestHugeLimitTimelineBounded(t *testing.T) {
	s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second})
	for i := range 200 { // enough to try every line
		inv := &invocation.Invocation{Function: "f", Chain: "c" + strconv.Itoa(i), Budget: time.Second, Steps: 3}
		if _, err := s.Do(inv, nil, invokerFunc(func() {})); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range s.adm.est.lines {
		ln := &s.adm.est.lines[i]
		if got := len(ln.slots); got != maxTimelineSlots/maxLines {
			t.Errorf("line %d: %d slots, want %d", i, got, maxTimelineSlots/maxLines)
		}
		n += len(ln.slots)
	}
	if n != maxTimelineSlots {
		t.Errorf("timeline slots = %d, want %d", n, maxTimelineSlots)
	}
}

// TestPolicyQueueTimeout: an invocation's own QueueTimeout (set by the
// policy) bounds its wait instead of the configured one.
func TestPolicyQueueTimeout(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour})
	release := holdSlots(t, s)
	defer release()
	_, err := s.Acquire(&invocation.Invocation{QueueTimeout: 5 * time.Millisecond}, nil)
	if !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("err = %v, want ErrQueueTimeout after the invocation's own 5ms", err)
	}
}

// TestPolicyFunctionCapConcurrent: invocations carrying a function cap never
// exceed it, under -race, while uncapped ones share the rest of the pool;
// nothing stays counted or parked afterwards.
func TestPolicyFunctionCapConcurrent(t *testing.T) {
	s := New(Config{Limit: 6, QueueCapacity: 1000, QueueTimeout: time.Minute})
	capped, free := &countingInvoker{}, &countingInvoker{}
	errs := make(chan error, 300)
	for i := range 300 {
		go func() {
			inv, iv := &invocation.Invocation{Function: "free"}, free
			if i%2 == 0 {
				inv, iv = &invocation.Invocation{Function: "capped", FunctionCap: 2}, capped
			}
			_, err := s.Do(inv, nil, invokerFunc(func() {
				n := iv.cur.Add(1)
				for p := iv.peak.Load(); n > p && !iv.peak.CompareAndSwap(p, n); p = iv.peak.Load() {
				}
				time.Sleep(200 * time.Microsecond)
				iv.cur.Add(-1)
			}))
			errs <- err
		}()
	}
	for range 300 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := capped.peak.Load(); got > 2 {
		t.Errorf("capped function peak = %d, want <= 2", got)
	}
	if s.InFlight() != 0 || s.Queued() != 0 {
		t.Errorf("in flight %d, queued %d; want 0, 0", s.InFlight(), s.Queued())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.caps.fns) != 0 || s.caps.parked != 0 {
		t.Errorf("counts left: %v, parked %d", s.caps.fns, s.caps.parked)
	}
}

// TestChainStep: ChainStep numbers a chain's next request from the
// requests admitted for it; a refused first request does not count, so its
// retry is step 1 again, and a chain whose deadline passed starts over.
func TestChainStep(t *testing.T) {
	var clock atomic.Int64 // read by the chain table's sweeper too
	clock.Store(time.Unix(1000, 0).UnixNano())
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour, DefaultEstimate: 100 * time.Millisecond,
		Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	defer s.Close()
	nop := invokerFunc(func() {})
	if got := s.ChainStep(""); got != 1 {
		t.Errorf("no chain id: step %d, want 1", got)
	}
	if got := s.ChainStep("c"); got != 1 {
		t.Errorf("unknown chain: step %d, want 1", got)
	}
	// A first request that cannot meet its budget is refused: not counted.
	if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Budget: time.Millisecond, Steps: 5}, nil, nop); !errors.Is(err, ErrRefused) {
		t.Fatalf("tight budget: err = %v, want ErrRefused", err)
	}
	if got := s.ChainStep("c"); got != 1 {
		t.Errorf("after a refused first request: step %d, want 1", got)
	}
	for want := 2; want <= 4; want++ {
		if _, err := s.Do(&invocation.Invocation{Function: "f", Chain: "c", Budget: time.Minute}, nil, nop); err != nil {
			t.Fatal(err)
		}
		if got := s.ChainStep("c"); got != want {
			t.Errorf("after %d admitted requests: step %d, want %d", want-1, got, want)
		}
	}
	clock.Add(int64(2 * time.Minute)) // past the chain's deadline
	if got := s.ChainStep("c"); got != 1 {
		t.Errorf("past the deadline: step %d, want 1", got)
	}
}

// TestAssignedChainID: a chain id the proxy assigned to the request is
// started without a lookup and entered in the table; the flag is then
// cleared, so a retry of the same invocation is its chain's continuation.
func TestAssignedChainID(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Hour})
	defer s.Close()
	nop := invokerFunc(func() {})
	inv := &invocation.Invocation{Function: "f", Chain: "sq-fresh-1", ChainAssigned: true}
	if _, err := s.Do(inv, nil, nop); err != nil {
		t.Fatal(err)
	}
	if inv.Continuation || inv.ChainAssigned {
		t.Errorf("first request: continuation %v, still assigned %v; want a new chain, flag cleared", inv.Continuation, inv.ChainAssigned)
	}
	if got := s.ChainStep("sq-fresh-1"); got != 2 {
		t.Errorf("the chain is not in the table: next step %d, want 2", got)
	}
	if _, err := s.Do(inv, nil, nop); err != nil || !inv.Continuation {
		t.Errorf("retry of the same invocation: continuation %v, err %v; want a continuation", inv.Continuation, err)
	}
}

// BenchmarkDoPassthrough is the passthrough case: every request is a new
// chain of unknown length, so each stays remembered until capacity evicts
// it (at the default size). "assigned": ids from the scheduler's generator,
// as the proxy assigns them (the ring); "given": ids the callers gave (the
// chain table).
func BenchmarkDoPassthrough(b *testing.B) {
	nop := invokerFunc(func() {})
	for _, given := range []bool{false, true} {
		name := "assigned"
		if given {
			name = "given"
		}
		b.Run(name, func(b *testing.B) {
			s := New(Config{Limit: 1 << 30, QueueCapacity: 1, QueueTimeout: time.Second})
			defer s.Close()
			var n atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				inv := &invocation.Invocation{Function: "f"}
				buf := make([]byte, 0, 32)
				for pb.Next() {
					if given {
						buf = strconv.AppendInt(append(buf[:0], "caller-0123456789abcdef-"...), n.Add(1), 36)
					} else {
						buf = s.ChainIDs().Next(buf[:0])
					}
					inv.Chain, inv.ChainAssigned = string(buf), !given
					if _, err := s.Do(inv, nil, nop); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// retryInvoker answers each attempt with the next of its codes and plans a
// retry (inv.RetryIn) after every attempt but the last, as the proxy's
// retry loop does.
type retryInvoker struct{ codes []int }

func (r *retryInvoker) Invoke(inv *invocation.Invocation) error {
	inv.Resp.SetStatusCode(r.codes[0])
	r.codes = r.codes[1:]
	if len(r.codes) > 0 {
		inv.RetryIn = time.Millisecond
	}
	return nil
}

// TestRetriedAttemptIsNoStep: an attempt the invoker will send again is
// no step of its chain: a told chain whose steps were each throttled
// before they ran completes with its last step, each retry gives back the
// reserved step it took, and GiveUp ends a chain whose planned retry is
// not made. No outstanding or unplanned work is left behind.
func TestRetriedAttemptIsNoStep(t *testing.T) {
	ev := &countEvents{}
	s := New(Config{Limit: 4, QueueCapacity: 10, QueueTimeout: time.Minute, Events: ev})
	defer s.Close()
	// do runs inv's attempts, checking the steps still reserved while
	// each retry waits.
	do := func(inv *invocation.Invocation, reserved int64, codes ...int) {
		t.Helper()
		iv := &retryInvoker{codes: codes}
		for range codes {
			inv.Resp = &fasthttp.Response{}
			if _, err := s.Do(inv, nil, iv); err != nil {
				t.Fatal(err)
			}
			if got := s.adm.est.outstanding.Load(); inv.RetryIn > 0 && got != reserved {
				t.Fatalf("%d steps outstanding while a retry waits, want %d", got, reserved)
			}
			inv.Attempt++
		}
	}
	do(&invocation.Invocation{Function: "a", Chain: "told", Steps: 2, Budget: time.Minute}, 2, 429, 429, 200)
	if ev.ended.Load() != 0 {
		t.Fatal("the chain ended after its first step")
	}
	if n := s.ChainStep("told"); n != 2 {
		t.Errorf("next request is step %d, want 2", n)
	}
	do(&invocation.Invocation{Function: "b", Chain: "told"}, 1, 503, 200)
	if ev.ended.Load() != 1 || ev.completed.Load() != 1 {
		t.Fatalf("ended %d, completed %d; want the chain completed", ev.ended.Load(), ev.completed.Load())
	}
	// A planned retry given up: the chain (its first step never ran) ends.
	inv := &invocation.Invocation{Function: "a", Chain: "given-up", Steps: 2, Budget: time.Minute, Resp: &fasthttp.Response{}}
	if _, err := s.Do(inv, nil, &retryInvoker{codes: []int{429, 200}}); err != nil {
		t.Fatal(err)
	}
	s.GiveUp(inv, ErrClientGone)
	if ev.ended.Load() != 2 || s.ActiveChains() != 0 {
		t.Errorf("ended %d, active %d; want the given-up chain ended", ev.ended.Load(), s.ActiveChains())
	}
	if n := s.adm.est.outstanding.Load() + s.adm.est.unplanned.Load(); n != 0 {
		t.Errorf("outstanding and unplanned steps %d, want 0", n)
	}
}

// TestQueuedHoldIsFullPoolPace: only an invocation that waited for its
// slot is a sample of the full pool's pace; one that found a slot free
// is not.
func TestQueuedHoldIsFullPoolPace(t *testing.T) {
	s := New(Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute})
	release := make(chan struct{})
	first := make(chan struct{})
	done := make(chan error, 2)
	go func() {
		_, err := s.Do(&invocation.Invocation{Function: "f"}, nil, invokerFunc(func() { close(first); <-release }))
		done <- err
	}()
	<-first
	go func() {
		_, err := s.Do(&invocation.Invocation{Function: "f"}, nil, invokerFunc(func() {}))
		done <- err
	}()
	for end := time.Now().Add(time.Minute); s.Queued() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the second invocation never queued")
		}
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := s.adm.est.busyN.Load(); n != 1 {
		t.Errorf("%d samples of the full pool's pace, want 1 (the invocation that waited)", n)
	}
	if _, ok := s.adm.est.busy.value(); !ok {
		t.Error("no full pool's pace after an invocation that waited")
	}
}
