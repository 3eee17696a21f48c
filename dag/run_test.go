package dag

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

type rig struct {
	svc   *Service
	emu   *emulator.Emulator
	sched *qos.Scheduler
}

// newRig runs DAGs through a real scheduler and upstream client against an
// emulator listening on loopback (as an http platform). wrap, when set,
// wraps the emulator's handler.
func newRig(t *testing.T, limit int, wrap func(fasthttp.RequestHandler) fasthttp.RequestHandler) *rig {
	t.Helper()
	return newPlatformRig(t, invocation.HTTP, limit, wrap)
}

func newPlatformRig(t *testing.T, kind invocation.Platform, limit int, wrap func(fasthttp.RequestHandler) fasthttp.RequestHandler) *rig {
	t.Helper()
	emu := emulator.New(emulator.Config{Limit: 200, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := emu.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = emu.Shutdown(); _ = srv.Shutdown() })
	sched := qos.New(qos.Config{Limit: limit, QueueCapacity: 1000, QueueTimeout: 30 * time.Second})
	up, err := platform.New(platform.Config{URL: "http://" + ln.Addr().String(), Kind: kind, Timeout: 30 * time.Second, MaxConns: limit + 8})
	if err != nil {
		t.Fatal(err)
	}
	svc := New(Config{Platform: kind, Host: ln.Addr().String()}, sched, up)
	return &rig{svc: svc, emu: emu, sched: sched}
}

func (r *rig) put(t *testing.T, name, src string) {
	t.Helper()
	if err := r.svc.Put(name, []byte(src)); err != nil {
		t.Fatal(err)
	}
}

// run starts a run and waits for its end.
func (r *rig) run(t *testing.T, name, input string) (*Run, Status, json.RawMessage, *Failure) {
	t.Helper()
	run, err := r.svc.Start(name, RunRequest{Input: json.RawMessage(input)})
	if err != nil {
		t.Fatal(err)
	}
	<-run.Done()
	st, out, f := run.Result()
	return run, st, out, f
}

func unmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

type result struct {
	Function string          `json:"function"`
	Chain    string          `json:"chain_id"`
	Input    json.RawMessage `json:"input"`
}

func TestSequencePassesData(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "seq", `{"start":"s","nodes":{
		"s":{"kind":"sequence","steps":["a","b"],"next":"c"},
		"a":{"kind":"task","function":"fa"},
		"b":{"kind":"task","function":"fb"},
		"c":{"kind":"task","function":"fc","input":"$.input.input"}}}`)
	run, st, out, f := r.run(t, "seq", `{"k":42}`)
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	// c got b's output's input (a's output) and selected a's input: the
	// run's own.
	var got result
	unmarshal(t, out, &got)
	if got.Function != "fc" || string(got.Input) != `{"input":{"k":42}}`[9:len(`{"input":{"k":42}}`)-1] {
		t.Errorf("output %s: want fc's result on {\"k\":42}", out)
	}
	if got.Chain != run.ID {
		t.Errorf("function saw chain %q, want the run's id %q", got.Chain, run.ID)
	}
	snap := run.Snapshot()
	for _, n := range []string{"s", "a", "b", "c"} {
		if ns := snap.Nodes[n]; ns.State != stateSucceeded || ns.Runs != 1 {
			t.Errorf("node %s: %+v", n, ns)
		}
	}
	if got := r.emu.Stats().Invocations; got != 3 {
		t.Errorf("platform ran %d invocations, want 3", got)
	}
}

func TestParallelAndMap(t *testing.T) {
	r := newRig(t, 8, nil)
	r.put(t, "pm", `{"start":"p","nodes":{
		"p":{"kind":"parallel","branches":["x","m"]},
		"x":{"kind":"task","function":"fx"},
		"m":{"kind":"map","items":"/items","do":"w","max_concurrency":3},
		"w":{"kind":"task","function":"fw"}}}`)
	_, st, out, f := r.run(t, "pm", `{"items":[{"i":0},{"i":1},{"i":2},{"i":3},{"i":4},{"i":5},{"i":6}]}`)
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	var got []json.RawMessage
	unmarshal(t, out, &got)
	if len(got) != 2 {
		t.Fatalf("parallel output %s: want 2 branches", out)
	}
	var x result
	unmarshal(t, got[0], &x)
	if x.Function != "fx" {
		t.Errorf("branch 0 = %s, want fx's result", got[0])
	}
	var items []result
	unmarshal(t, got[1], &items)
	if len(items) != 7 {
		t.Fatalf("map output %s: want 7 items", got[1])
	}
	for i, it := range items {
		var in struct{ I int }
		unmarshal(t, it.Input, &in)
		if it.Function != "fw" || in.I != i {
			t.Errorf("item %d = %+v, want fw on {\"i\":%d}", i, it, i)
		}
	}
	if peak := r.emu.Stats().PeakConcurrency; peak > 4 {
		t.Errorf("peak concurrency %d: the map's cap (3) plus the other branch (1) allow 4", peak)
	}
}

func TestChoice(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "ch", `{"start":"c","nodes":{
		"c":{"kind":"choice","choices":[{"path":"/n","op":"gt","value":10,"next":"big"},{"path":"$.name","op":"eq","value":"x","next":"named"}],"default":"small"},
		"big":{"kind":"task","function":"big"},
		"named":{"kind":"task","function":"named"},
		"small":{"kind":"task","function":"small"}}}`)
	for in, want := range map[string]string{`{"n":11}`: "big", `{"n":1,"name":"x"}`: "named", `{"n":10}`: "small", `null`: "small"} {
		_, st, out, f := r.run(t, "ch", in)
		if st != Succeeded {
			t.Fatalf("%s: status %s (%v)", in, st, f)
		}
		var got result
		unmarshal(t, out, &got)
		if got.Function != want {
			t.Errorf("input %s ran %q, want %q", in, got.Function, want)
		}
	}
}

func TestFailureWithoutAndWithRetry(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "once", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"b"},"b":{"kind":"task","function":"g"}}}`)
	r.put(t, "thrice", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","retry":{"max_attempts":3,"backoff_ms":1},"next":"b"},"b":{"kind":"task","function":"g"}}}`)
	for name, attempts := range map[string]int64{"once": 1, "thrice": 3} {
		r.emu.Reset()
		run, st, _, f := r.run(t, name, `{"fail":true}`)
		if st != Failed || f == nil || f.Node != "a" || f.Status != 500 {
			t.Fatalf("%s: status %s, failure %+v: want node a failed with the function's 500", name, st, f)
		}
		s := r.emu.Stats()
		if s.Invocations != attempts || s.Errors != attempts {
			t.Errorf("%s: platform ran %d invocations (%d failed), want %d", name, s.Invocations, s.Errors, attempts)
		}
		snap := run.Snapshot()
		if snap.Nodes["a"].Invocations != int(attempts) || snap.Nodes["a"].State != stateFailed || snap.Nodes["b"].Runs != 0 {
			t.Errorf("%s: nodes %+v %+v", name, snap.Nodes["a"], snap.Nodes["b"])
		}
	}
}

func TestRetryRecovers(t *testing.T) {
	var calls atomic.Int64
	flaky := func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if calls.Add(1) <= 2 {
				ctx.SetStatusCode(500)
				ctx.SetBodyString(`{"error":"transient"}`)
				return
			}
			h(ctx)
		}
	}
	r := newRig(t, 4, flaky)
	r.put(t, "r", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","retry":{"max_attempts":3}}}}`)
	run, st, out, f := r.run(t, "r", `{"v":1}`)
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	var got result
	unmarshal(t, out, &got)
	if string(got.Input) != `{"v":1}` || calls.Load() != 3 || run.Snapshot().Nodes["a"].Invocations != 3 {
		t.Errorf("output %s after %d calls: want the third attempt's result", out, calls.Load())
	}
}

func TestTaskTimeout(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "slow", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","timeout_ms":30}}}`)
	_, st, _, f := r.run(t, "slow", `{"exec_ms":3000}`)
	if st != Failed || f.Node != "a" || !errors.Is(f, platform.ErrTimeout) {
		t.Fatalf("status %s, failure %v: want node a timed out", st, f)
	}
}

func TestMapOverNonArray(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","items":"/items","do":"w"},"w":{"kind":"task","function":"w"}}}`)
	_, st, _, f := r.run(t, "m", `{"items":"nope"}`)
	if st != Failed || f.Node != "m" || !strings.Contains(f.Message, "a string, not an array") {
		t.Fatalf("status %s, failure %v: want node m failed on a non-array", st, f)
	}
	if n := r.emu.Stats().Invocations; n != 0 {
		t.Errorf("platform ran %d invocations", n)
	}
}

func TestCancel(t *testing.T) {
	// The platform holds slow's call until the run is canceled, however
	// long the machine takes.
	entered, release := make(chan struct{}, 1), make(chan struct{})
	hold := func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			if strings.Contains(string(ctx.Path()), "slow") {
				entered <- struct{}{}
				<-release
			}
			h(ctx)
		}
	}
	r := newRig(t, 4, hold)
	r.put(t, "c", `{"start":"slow","nodes":{"slow":{"kind":"task","function":"slow","next":"after"},"after":{"kind":"task","function":"after"}}}`)
	run, err := r.svc.Start("c", RunRequest{Input: json.RawMessage(`{}`)})
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	<-entered
	canceled := run.Cancel()
	close(release)
	if !canceled {
		t.Fatal("Cancel of a running run returned false")
	}
	<-run.Done()
	snap := run.Snapshot()
	// The call in flight when the run was canceled ran to its end; nothing
	// was invoked after it.
	if snap.Status != Canceled || snap.Nodes["after"].Runs != 0 || snap.Nodes["after"].State != stateCanceled {
		t.Errorf("after cancel: %s, slow %+v, after %+v", snap.Status, snap.Nodes["slow"], snap.Nodes["after"])
	}
	if got := r.emu.Stats().Functions; got["after"].Invocations != 0 {
		t.Errorf("after ran %d times", got["after"].Invocations)
	}
	if run.Cancel() {
		t.Error("Cancel of an ended run returned true")
	}
}

func TestRefusedBeforeAnyFunctionRuns(t *testing.T) {
	r := newRig(t, 4, nil)
	r.put(t, "d", `{"start":"a","deadline_ms":250,"nodes":{
		"a":{"kind":"task","function":"fa","next":"p"},
		"p":{"kind":"parallel","branches":["b","c"]},
		"b":{"kind":"task","function":"fb"},
		"c":{"kind":"task","function":"fc"}}}`)
	r.sched.Observe("fa", 100*time.Millisecond)
	r.sched.Observe("fb", 100*time.Millisecond)
	r.sched.Observe("fc", 200*time.Millisecond)
	// Critical path fa + fc = 300ms > 250ms.
	_, err := r.svc.Start("d", RunRequest{Input: json.RawMessage(`{}`)})
	var refused *qos.RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("Start = %v, want a refusal", err)
	}
	if n := r.emu.Stats().Invocations; n != 0 {
		t.Errorf("platform ran %d invocations of a refused run", n)
	}
	// The same DAG fits a budget above its critical path.
	run, err := r.svc.Start("d", RunRequest{Input: json.RawMessage(`{}`), Budget: 10 * time.Second})
	if err != nil {
		t.Fatalf("Start with a 10s budget: %v", err)
	}
	<-run.Done()
	if st, _, f := run.Result(); st != Succeeded {
		t.Errorf("status %s (%v)", st, f)
	}
}

func TestLimits(t *testing.T) {
	r := newRig(t, 4, nil)
	r.svc.lim.MaxMapWidth = 3
	r.put(t, "m", `{"start":"m","nodes":{"m":{"kind":"map","do":"w"},"w":{"kind":"task","function":"w"}}}`)
	if _, err := r.svc.Start("m", RunRequest{Input: json.RawMessage(`"` + strings.Repeat("x", r.svc.lim.MaxNodeBytes) + `"`)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized input: %v, want ErrTooLarge", err)
	}
	if _, err := r.svc.Start("nope", RunRequest{}); !errors.Is(err, ErrUnknownDAG) {
		t.Errorf("unknown dag: %v", err)
	}
	_, st, _, f := r.run(t, "m", `[1,2,3,4]`)
	if st != Failed || f.Node != "m" || !strings.Contains(f.Message, "map width limit of 3") {
		t.Errorf("4 items over a width of 3: %s %v", st, f)
	}
	r.svc.lim.MaxRunBytes = 150 // each output is about 90 bytes
	_, st, _, f = r.run(t, "m", `[1,2,3]`)
	if st != Failed || f.Node != "w" || !strings.Contains(f.Message, "over the limit of 150") {
		t.Errorf("outputs over the run's limit: %s %v", st, f)
	}
}

// TestPlatforms runs a two-step sequence on each platform API: the request
// is the platform's own invoke call, the answer its result, a function
// error a failure.
func TestPlatforms(t *testing.T) {
	for _, tt := range []struct {
		kind      invocation.Platform
		fn        string
		seen      string // the function name the emulator reports
		failCode  int
		qualifier string
	}{
		{invocation.OpenWhisk, "guest/pkg/act", "guest/pkg/act", 502, ""},
		{invocation.OpenWhisk, "act", "_/act", 502, ""},
		{invocation.Lambda, "fn", "fn", 200, "7"},
		{invocation.HTTP, "fn", "fn", 500, ""},
	} {
		t.Run(tt.kind.String()+"/"+tt.fn, func(t *testing.T) {
			var auth atomic.Value
			auth.Store("")
			r := newPlatformRig(t, tt.kind, 4, func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
				return func(ctx *fasthttp.RequestCtx) {
					auth.Store(string(ctx.Request.Header.Peek("Authorization")))
					h(ctx)
				}
			})
			q := ""
			if tt.qualifier != "" {
				q = `,"qualifier":"` + tt.qualifier + `"`
			}
			r.put(t, "d", `{"start":"a","nodes":{"a":{"kind":"task","function":"`+tt.fn+`"`+q+`,"next":"b"},"b":{"kind":"task","function":"`+tt.fn+`","input":"/input"}}}`)
			run, err := r.svc.Start("d", RunRequest{Input: json.RawMessage(`{"k":1}`), Auth: []byte("Basic dGVzdA==")})
			if err != nil {
				t.Fatal(err)
			}
			<-run.Done()
			st, out, f := run.Result()
			if st != Succeeded {
				t.Fatalf("status %s (%v)", st, f)
			}
			var got result
			unmarshal(t, out, &got)
			if got.Function != tt.seen || string(got.Input) != `{"k":1}` {
				t.Errorf("output %s: want %s's result on the run's input", out, tt.seen)
			}
			if a := auth.Load().(string); a != "Basic dGVzdA==" {
				t.Errorf("platform saw Authorization %q, want the run request's", a)
			}
			if fs := r.emu.Stats().Functions[tt.seen]; fs.Invocations != 2 {
				t.Errorf("emulator counted %d invocations of %s, want 2", fs.Invocations, tt.seen)
			}
			run, err = r.svc.Start("d", RunRequest{Input: json.RawMessage(`{"fail":true}`)})
			if err != nil {
				t.Fatal(err)
			}
			<-run.Done()
			if st, _, f := run.Result(); st != Failed || f.Node != "a" || f.Status != tt.failCode {
				t.Errorf("failing function: %s %+v, want node a failed with %d", st, f, tt.failCode)
			}
		})
	}
}

// TestNestedFanOutShareABudget: a map of maps runs every item, its
// goroutines bounded by the map width limit, and the order of its outputs
// is the order of its items.
func TestNestedFanOutShareABudget(t *testing.T) {
	r := newRig(t, 16, nil)
	r.svc.lim.MaxMapWidth = 8
	r.put(t, "mm", `{"start":"outer","nodes":{
		"outer":{"kind":"map","do":"inner"},
		"inner":{"kind":"map","do":"w"},
		"w":{"kind":"task","function":"w"}}}`)
	run, st, out, f := r.run(t, "mm", `[[0,1,2,3,4,5,6,7],[8,9,10,11,12,13,14,15],[16,17,18,19,20,21,22,23],[24,25,26,27,28,29,30,31]]`)
	if st != Succeeded {
		t.Fatalf("status %s (%v)", st, f)
	}
	var got [][]result
	unmarshal(t, out, &got)
	n := 0
	for i, row := range got {
		for j, it := range row {
			if string(it.Input) != strconv.Itoa(8*i+j) {
				t.Errorf("item [%d][%d] = %s, want %d", i, j, it.Input, 8*i+j)
			}
			n++
		}
	}
	if p := run.peakWorkers.Load(); p < 1 || p > 8 {
		t.Errorf("peak fan-out goroutines %d, want 1 to the budget of 8", p)
	}
	if n != 32 || r.emu.Stats().Invocations != 32 {
		t.Errorf("%d outputs, %d invocations: want 32", n, r.emu.Stats().Invocations)
	}
}

// TestDeadlinePassesMidRun: a run admitted on an estimate that turns out
// optimistic is stopped at its deadline; nothing is invoked after it.
func TestDeadlinePassesMidRun(t *testing.T) {
	r := newRig(t, 4, nil)
	r.sched.Observe("slow", time.Millisecond)
	r.sched.Observe("after", time.Millisecond)
	r.put(t, "d", `{"start":"slow","nodes":{"slow":{"kind":"task","function":"slow","next":"after"},"after":{"kind":"task","function":"after"}}}`)
	run, err := r.svc.Start("d", RunRequest{Input: json.RawMessage(`{"exec_ms":400}`), Budget: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Start: %v (the estimates fit the budget)", err)
	}
	<-run.Done()
	st, _, f := run.Result()
	if st != TimedOut || !errors.Is(f, ErrDeadline) {
		t.Errorf("status %s (%v), want %s", st, f, TimedOut)
	}
	if n := r.emu.Stats().Functions["after"].Invocations; n != 0 {
		t.Errorf("after ran %d times past the deadline", n)
	}
}

// TestFinishedRunsAreBounded: finished runs are kept up to MaxRuns, for
// Retention.
func TestFinishedRunsAreBounded(t *testing.T) {
	r := newRig(t, 4, nil)
	r.svc.finished.Resize(2)
	r.put(t, "d", `{"start":"a","nodes":{"a":{"kind":"task","function":"a"}}}`)
	var ids []string
	for range 3 {
		run, _, _, _ := r.run(t, "d", `{}`)
		ids = append(ids, run.ID)
	}
	if _, ok := r.svc.Run(ids[0]); ok {
		t.Error("the oldest of 3 finished runs is still kept with room for 2")
	}
	for _, id := range ids[1:] {
		if _, ok := r.svc.Run(id); !ok {
			t.Errorf("finished run %s forgotten", id)
		}
	}
}

// denyDecider denies the functions it names and counts its decisions.
type denyDecider struct {
	deny  map[string]string
	calls atomic.Int32
}

func (d *denyDecider) Decide(inv *invocation.Invocation) (bool, string) {
	d.calls.Add(1)
	reason, ok := d.deny[inv.Function]
	return ok, reason
}

// nodeEvents records the node events of runs.
type nodeEvents struct {
	nopEvents
	mu       sync.Mutex
	ok, fail int
	denied   []string
}

func (e *nodeEvents) NodeInvoked(ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ok {
		e.ok++
	} else {
		e.fail++
	}
}

func (e *nodeEvents) NodeDenied(fn string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.denied = append(e.denied, fn)
}

// TestPolicyDecidesNodes: the policy decides every node invocation; a
// denied node fails the run at once (403, the reason in the failure, not
// retried even when the node asks for retries), never reaches the
// platform, and is reported as denied (with its function), not as a
// failed invocation.
func TestPolicyDecidesNodes(t *testing.T) {
	r := newRig(t, 4, nil)
	d := &denyDecider{deny: map[string]string{"fb": "function \"fb\" is denied: audit"}}
	r.svc.cfg.Decider = d
	ev := &nodeEvents{}
	r.svc.ev = ev
	r.put(t, "seq", `{"start":"s","nodes":{
		"s":{"kind":"sequence","steps":["a","b"]},
		"a":{"kind":"task","function":"fa"},
		"b":{"kind":"task","function":"fb","retry":{"max_attempts":3,"backoff_ms":1}}}}`)
	_, st, _, f := r.run(t, "seq", `{}`)
	if st != Failed || f == nil || f.Node != "b" || f.Status != 403 || !strings.Contains(f.Message, "audit") {
		t.Fatalf("status %s, failure %+v; want b failed 403 with the policy's reason", st, f)
	}
	if n := d.calls.Load(); n != 2 {
		t.Errorf("decisions = %d, want 2 (a once, b once: a deny is not retried)", n)
	}
	stats := r.emu.Stats().Functions
	if stats["fa"].Invocations != 1 || stats["fb"].Invocations != 0 {
		t.Errorf("platform ran fa %d, fb %d times; want 1, 0", stats["fa"].Invocations, stats["fb"].Invocations)
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.ok != 1 || ev.fail != 0 || !slices.Equal(ev.denied, []string{"fb"}) {
		t.Errorf("node events: %d ok, %d failed, denied %q; want 1, 0, [fb]", ev.ok, ev.fail, ev.denied)
	}
}
