package dag

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestKOfNNeverInvokesQueuedBranches: with one worker slot, the branches
// of a k-of-n queue behind each other; once k have succeeded, the rest
// leave the queue or give back the slot they were granted, so the platform
// sees exactly k invocations, and the run's output holds k results.
func TestKOfNNeverInvokesQueuedBranches(t *testing.T) {
	r := newRig(t, 1, nil)
	r.put(t, "p", `{"start":"p","nodes":{
		"p":{"kind":"parallel","branches":["a","b","c","d","e"],"min_successes":2},
		"a":{"kind":"task","function":"fa"},"b":{"kind":"task","function":"fb"},"c":{"kind":"task","function":"fc"},
		"d":{"kind":"task","function":"fd"},"e":{"kind":"task","function":"fe"}}}`)
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","do":"w","min_successes":3},"w":{"kind":"task","function":"w"}}}`)
	for range 5 {
		r.emu.Reset()
		run, st, out, f := r.run(t, "p", `{"exec_ms":5}`)
		if st != Succeeded {
			t.Fatalf("status %s (%v)", st, f)
		}
		var got []result
		unmarshal(t, out, &got)
		if n := r.emu.Stats().Invocations; n != 2 || len(got) != 2 {
			t.Fatalf("k=2 of 5 on one slot: %d invocations, output %s; want exactly 2 of each", n, out)
		}
		snap := run.Snapshot()
		invoked := 0
		for _, b := range []string{"a", "b", "c", "d", "e"} {
			invoked += snap.Nodes[b].Invocations
		}
		if invoked != 2 {
			t.Errorf("the run's nodes count %d invocations, want 2: %+v", invoked, snap.Nodes)
		}
		r.emu.Reset()
		_, st, out, f = r.run(t, "m", `[1,2,3,4,5,6,7,8,9,10]`)
		if st != Succeeded {
			t.Fatalf("map: status %s (%v)", st, f)
		}
		unmarshal(t, out, &got)
		if n := r.emu.Stats().Invocations; n != 3 || len(got) != 3 {
			t.Fatalf("k=3 of 10 on one slot: %d invocations, output %s; want 3", n, out)
		}
		for i := 1; i < len(got); i++ {
			var a, b int
			unmarshal(t, got[i-1].Input, &a)
			unmarshal(t, got[i].Input, &b)
			if a >= b {
				t.Errorf("outputs %s are not in item order", out)
			}
		}
	}
	// The withdrawn branches leave the queue on their own goroutines.
	for deadline := time.Now().Add(time.Minute); r.sched.Queued()+r.sched.InFlight() > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if q, fl := r.sched.Queued(), r.sched.InFlight(); q != 0 || fl != 0 {
		t.Errorf("after the runs: %d queued, %d in flight; want none", q, fl)
	}
}

// TestKOfNWithMoreSlots: with two slots, at most one invocation beyond k
// is in flight when the k-th success comes; none starts after it.
func TestKOfNWithMoreSlots(t *testing.T) {
	r := newRig(t, 2, nil)
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","do":"w","min_successes":4},"w":{"kind":"task","function":"w"}}}`)
	for range 5 {
		// An invocation the last round left in flight ends first.
		for deadline := time.Now().Add(time.Minute); r.sched.InFlight() > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		r.emu.Reset()
		_, st, out, f := r.run(t, "m", `[{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2},{"exec_ms":2}]`)
		if st != Succeeded {
			t.Fatalf("status %s (%v)", st, f)
		}
		var got []json.RawMessage
		unmarshal(t, out, &got)
		if n := r.emu.Stats().Invocations; len(got) != 4 || n < 4 || n > 5 {
			t.Fatalf("k=4 of 12 on two slots: %d invocations, %d outputs; want 4 outputs and 4 or 5 invocations", n, len(got))
		}
	}
}

// TestKOfNFailures: a k-of-n tolerates n-k failures and fails on the one
// more that puts k out of reach.
func TestKOfNFailures(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "p", `{"start":"p","nodes":{
		"p":{"kind":"parallel","branches":["ok1","bad","ok2"],"min_successes":2},
		"ok1":{"kind":"task","function":"ok1"},"ok2":{"kind":"task","function":"ok2"},
		"bad":{"kind":"task","function":"bad","input":"/bad"}}}`)
	_, st, out, f := r.run(t, "p", `{"bad":{"fail":true}}`)
	if st != Succeeded {
		t.Fatalf("one failure of three with k=2: %s (%v)", st, f)
	}
	var got []result
	unmarshal(t, out, &got)
	if len(got) != 2 || got[0].Function != "ok1" || got[1].Function != "ok2" {
		t.Errorf("output %s: want ok1's and ok2's results in branch order", out)
	}
	r.put(t, "q", `{"start":"p","nodes":{
		"p":{"kind":"parallel","branches":["bad1","ok","bad2"],"min_successes":2},
		"ok":{"kind":"task","function":"ok","input":"/slow"},
		"bad1":{"kind":"task","function":"bad1","input":"/bad"},"bad2":{"kind":"task","function":"bad2","input":"/bad"}}}`)
	_, st, _, f = r.run(t, "q", `{"bad":{"fail":true},"slow":{"exec_ms":200}}`)
	var ff *FanFailure
	if st != Failed || f == nil || f.Node != "p" || !errors.As(f, &ff) || ff.Failed != 2 || ff.Need != 2 {
		t.Fatalf("two failures of three with k=2: %s %+v; want p failed, 2 of 3 failed", st, f)
	}
	if _, err := Parse([]byte(`{"start":"p","nodes":{"p":{"kind":"parallel","branches":["a"],"min_successes":2},"a":{"kind":"task","function":"a"}}}`), DefaultLimits); err == nil ||
		!strings.Contains(err.Error(), "min_successes 2 is more than its 1 branches") {
		t.Errorf("k over n: %v", err)
	}
	if _, err := Parse([]byte(`{"start":"a","nodes":{"a":{"kind":"task","function":"a","min_successes":1}}}`), DefaultLimits); err == nil ||
		!strings.Contains(err.Error(), "min_successes is for parallel and map") {
		t.Errorf("k on a task: %v", err)
	}
}

// splitter answers a batch with one element per item, each naming the
// batch's size.
func splitter(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		h(ctx) // the emulator counts the call
		if string(ctx.Path()) != "/split" {
			return
		}
		var items []json.RawMessage
		_ = json.Unmarshal(ctx.PostBody(), &items)
		out := make([]map[string]any, len(items))
		for i, it := range items {
			out[i] = map[string]any{"item": it, "batch": len(items)}
		}
		b, _ := json.Marshal(out)
		ctx.SetStatusCode(200)
		ctx.SetBody(b)
	}
}

// TestBatchAcrossRuns: three runs reach a batch of three; the function is
// invoked once with the three items, and each run gets its own element.
func TestBatchAcrossRuns(t *testing.T) {
	r := newRig(t, 4, splitter)
	r.put(t, "b", `{"start":"b","nodes":{"b":{"kind":"batch","function":"split","max_items":3,"max_wait_ms":60000}}}`)
	var wg sync.WaitGroup
	outs := make([]json.RawMessage, 3)
	for i := range 3 {
		wg.Go(func() {
			run, err := r.svc.Start("b", RunRequest{Input: json.RawMessage(`{"run":` + string(rune('0'+i)) + `}`)})
			if err != nil {
				t.Error(err)
				return
			}
			<-run.Done()
			st, out, f := run.Result()
			if st != Succeeded {
				t.Errorf("run %d: %s (%v)", i, st, f)
			}
			outs[i] = out
		})
	}
	wg.Wait()
	if n := r.emu.Stats().Functions["split"].Invocations; n != 1 {
		t.Errorf("split invoked %d times, want once for the batch of 3", n)
	}
	for i, out := range outs {
		var got struct {
			Item  struct{ Run int }
			Batch int
		}
		unmarshal(t, out, &got)
		if got.Item.Run != i || got.Batch != 3 {
			t.Errorf("run %d got %s: want its own item of a batch of 3", i, out)
		}
	}
}

// TestBatchNeverOverfills: items that arrive together, more than a batch
// holds, never make a batch larger than max_items (an item arriving while
// a full batch is being sent starts the next one).
func TestBatchNeverOverfills(t *testing.T) {
	r := newRig(t, 8, nil)
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","do":"b"},"b":{"kind":"batch","function":"agg","max_items":3,"max_wait_ms":2000}}}`)
	items := make([]string, 60)
	for i := range items {
		items[i] = strconv.Itoa(i)
	}
	_, st, out, f := r.run(t, "m", "["+strings.Join(items, ",")+"]")
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	var got []result
	unmarshal(t, out, &got)
	for _, g := range got {
		var batch []int
		unmarshal(t, g.Input, &batch)
		if len(batch) > 3 {
			t.Fatalf("an item in a batch of %d: %s", len(batch), g.Input)
		}
	}
}

// TestBatchInAMap: a map's items gather in batches of max_items; a batch
// not filled is sent after max_wait_ms; an answer that is not an array of
// the batch's length goes to every item whole.
func TestBatchInAMap(t *testing.T) {
	r := newRig(t, 8, nil)
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","do":"b"},"b":{"kind":"batch","function":"agg","max_items":3,"max_wait_ms":20}}}`)
	_, st, out, f := r.run(t, "m", `[1,2,3,4,5,6,7]`)
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	var got []result
	unmarshal(t, out, &got)
	if len(got) != 7 {
		t.Fatalf("output %s: want 7 items", out)
	}
	sizes := map[string]int{}
	for _, g := range got {
		var batch []int
		unmarshal(t, g.Input, &batch)
		sizes[string(g.Input)]++
		if len(batch) < 1 || len(batch) > 3 {
			t.Errorf("item in a batch of %d: %s", len(batch), g.Input)
		}
	}
	if n := r.emu.Stats().Invocations; n < 3 || n > 7 || int(n) != len(sizes) {
		t.Errorf("%d invocations for %d distinct batches of 7 items: want 3 to 7, one per batch", n, len(sizes))
	}
	if _, err := Parse([]byte(`{"start":"b","nodes":{"b":{"kind":"batch","function":"f","max_items":3}}}`), DefaultLimits); err == nil ||
		!strings.Contains(err.Error(), "max_wait_ms") {
		t.Errorf("batch without max_wait_ms: %v", err)
	}
	p := (&DAG{Start: "b", Nodes: map[string]*Node{"b": {Kind: Batch, Function: "f", MaxItems: 2, MaxWaitMs: 50}}}).Plan(func(string) time.Duration { return 10 * time.Millisecond })
	if p.Critical != 60*time.Millisecond || p.Steps != 1 {
		t.Errorf("batch plan %+v: want the wait plus one call on the critical path", p)
	}
}
