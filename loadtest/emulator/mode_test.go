package emulator

import (
	"sync"
	"testing"
	"time"
)

// TestModeRefuse: of-watchdog's max_inflight answers a call over the limit
// with 429 and its plain-text message, whatever the API shape.
func TestModeRefuse(t *testing.T) {
	e, base := start(t, Config{Limit: 2, Mode: ModeRefuse})
	hold := `{"exec_ms":60000}`
	for range 2 {
		wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/guest/actions/hold", hold), 202)
	}
	for _, path := range []string{"/fn", "/api/v1/namespaces/guest/actions/other?blocking=true", "/2015-03-31/functions/other/invocations"} {
		r := do(t, "POST", base+path, "")
		wantStatus(t, r, 429)
		if got, want := string(r.body), "Concurrent request limit exceeded. Max concurrent requests: 2\n"; got != want {
			t.Errorf("%s: body %q, want %q", path, got, want)
		}
	}
	if s := e.Stats(); s.Throttles != 3 || s.Mode != "refuse" || s.PeakConcurrency != 2 {
		t.Errorf("stats %+v mode %q", s.Counters, s.Mode)
	}
}

// TestModeSerial: the Lambda Runtime Interface Emulator runs one
// invocation at a time and answers a second with an empty 400.
func TestModeSerial(t *testing.T) {
	e, base := start(t, Config{Limit: 50, Mode: ModeSerial})
	if got := e.Config().Limit; got != 1 {
		t.Fatalf("limit %d, want 1 in serial mode", got)
	}
	e.SetLimit(8)
	if got := e.Config().Limit; got != 1 {
		t.Fatalf("SetLimit(8) made the limit %d, want 1 in serial mode", got)
	}
	wantStatus(t, do(t, "POST", base+"/2015-03-31/functions/f/invocations", `{"exec_ms":60000}`, "X-Amz-Invocation-Type", "Event"), 202)
	r := do(t, "POST", base+"/2015-03-31/functions/f/invocations", `{}`)
	wantStatus(t, r, 400)
	if len(r.body) != 0 {
		t.Errorf("body %q, want none", r.body)
	}
	if s := e.Stats(); s.Throttles != 1 || s.InFlight != 1 {
		t.Errorf("stats %+v", s.Counters)
	}
}

// TestModeQueue: Knative's queue-proxy runs Limit at once, lets Queue
// more wait first come first served, and refuses beyond with 503 "pending
// request queue full". The waiting calls run in their order of arrival.
func TestModeQueue(t *testing.T) {
	const limit, queue = 2, 3
	e, base := start(t, Config{Limit: limit, Queue: queue, Mode: ModeQueue})
	// Hold both slots a while: background runs, answered 202 by
	// OpenWhisk's non-blocking shape.
	for range limit {
		wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/guest/actions/hold", `{"exec_ms":300}`), 202)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b", "c"} {
		eventually(t, "the earlier calls to queue", func() bool { return e.Waiting() == i })
		wg.Go(func() {
			r := do(t, "POST", base+"/"+name, `{}`)
			wantStatus(t, r, 200)
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
		})
	}
	eventually(t, "three calls to queue", func() bool { return e.Waiting() == queue })
	r := do(t, "POST", base+"/d", `{}`)
	wantStatus(t, r, 503)
	if string(r.body) != "pending request queue full" {
		t.Errorf("refusal body %q", r.body)
	}
	wg.Wait()
	s := e.Stats()
	if s.Throttles != 1 || s.Queued != queue || s.PeakConcurrency != limit || s.Waiting != 0 || s.Mode != "queue" {
		t.Errorf("stats %+v waiting %d mode %q", s.Counters, s.Waiting, s.Mode)
	}
	// With no execution time, each finishes as soon as it runs: the slots
	// pass in arrival order, one waiter each.
	if len(order) != queue {
		t.Fatalf("order %v", order)
	}
	eventually(t, "the background calls to end", func() bool { return e.Stats().InFlight == 0 })
}

// TestModeQueueFIFO: under a burst, the calls that wait run in the order
// they arrived: each one's wait is at least the one before it.
func TestModeQueueFIFO(t *testing.T) {
	e := New(Config{Limit: 1, Queue: 100, Mode: ModeQueue})
	defer e.Shutdown() //nolint:errcheck
	var got []int
	var mu sync.Mutex
	n, _, _ := e.acquireQueued()
	if n != 1 {
		t.Fatalf("first acquire: %d in flight", n)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		for e.Waiting() != i {
			time.Sleep(time.Millisecond)
		}
		wg.Go(func() {
			if _, ok, _ := e.acquireQueued(); !ok {
				t.Errorf("call %d refused", i)
				return
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
			e.releaseSlot()
		})
	}
	for e.Waiting() != 10 {
		time.Sleep(time.Millisecond)
	}
	e.releaseSlot()
	wg.Wait()
	for i, v := range got {
		if v != i {
			t.Fatalf("ran in order %v, want 0..9", got)
		}
	}
	if s := e.Stats(); s.InFlight != 0 || s.Queued != 10 {
		t.Errorf("stats %+v", s.Counters)
	}
}

// TestModeQueueRaise: a raised limit admits waiting calls at once; a
// lowered one lets none in until the count is under it.
func TestModeQueueRaise(t *testing.T) {
	e := New(Config{Limit: 1, Mode: ModeQueue})
	defer e.Shutdown() //nolint:errcheck
	e.acquireQueued()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { e.acquireQueued() })
	}
	for e.Waiting() != 3 {
		time.Sleep(time.Millisecond)
	}
	e.SetLimit(3)
	if w, n := e.Waiting(), e.Stats().InFlight; w != 1 || n != 3 {
		t.Errorf("after raising to 3: %d waiting, %d in flight; want 1 and 3", w, n)
	}
	e.SetLimit(1)
	e.releaseSlot() // 2 in flight, over the limit: the waiter stays
	if w, n := e.Waiting(), e.Stats().InFlight; w != 1 || n != 2 {
		t.Errorf("after lowering to 1 and one release: %d waiting, %d in flight; want 1 and 2", w, n)
	}
	e.releaseSlot()
	e.releaseSlot() // 0 < 1: the waiter takes it
	wg.Wait()
	if n := e.Stats().InFlight; n != 1 {
		t.Errorf("in flight %d, want 1", n)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeAccount, ModeRefuse, ModeQueue, ModeSerial} {
		if got, err := ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("lambda"); err == nil {
		t.Error("ParseMode(lambda): no error")
	}
}
