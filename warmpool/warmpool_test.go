package warmpool

import (
	"bytes"
	"encoding/json"
	"net"
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

// fakeInvoker answers every warm-up at once and counts them.
type fakeInvoker struct {
	calls  atomic.Int64
	status int
	mu     sync.Mutex
	fns    []string
}

func (f *fakeInvoker) Invoke(inv *invocation.Invocation) error {
	f.calls.Add(1)
	f.mu.Lock()
	f.fns = append(f.fns, inv.Function)
	f.mu.Unlock()
	st := f.status
	if st == 0 {
		st = 200
	}
	inv.Resp.SetStatusCode(st)
	return nil
}

func (f *fakeInvoker) functions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.fns...)
}

// count is the warm-ups of fn sent so far.
func (f *fakeInvoker) count(fn string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.fns {
		if s == fn {
			n++
		}
	}
	return n
}

// realInv is a real invocation of fn in chain (may be "").
func realInv(fn, chain string) *invocation.Invocation {
	req := &fasthttp.Request{}
	req.Header.Set("Authorization", "Basic dGVzdDp0ZXN0")
	return &invocation.Invocation{Function: fn, Chain: chain, Platform: invocation.OpenWhisk, Req: req, Resp: &fasthttp.Response{}}
}

// TestWarmupsNeverTakeAQueuedInvocationsSlot saturates the worker pool,
// queues a real invocation, and asks the pool for every kind of warm-up:
// none may be sent while the invocation waits, and the slot freed next goes
// to it. Once nothing waits, warm-ups do go (so the test can fail).
func TestWarmupsNeverTakeAQueuedInvocationsSlot(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	p := New(Config{Platform: invocation.OpenWhisk, Min: 3, Burst: true, Chains: true, Headroom: 0}, sched, iv)
	defer p.Close()

	// Teach the pool a chain a → b, then hold every slot.
	for _, fn := range []string{"guest/a", "guest/b"} {
		inv := realInv(fn, "c1")
		p.Arrived(inv)
		p.Finished(inv, 10*time.Millisecond, nil)
	}
	p.sending.Wait()
	before := iv.calls.Load()
	for range 2 {
		if _, err := sched.Acquire(&invocation.Invocation{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	granted := make(chan int64, 1)
	go func() {
		if _, err := sched.Acquire(&invocation.Invocation{Function: "guest/a"}, nil); err != nil {
			t.Error(err)
		}
		granted <- iv.calls.Load()
	}()
	for sched.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	for i := range 20 {
		p.Arrived(realInv("guest/a", "c"+string(rune('A'+i)))) // burst and chain pre-warm
		p.Tick()                                               // keep-alive
	}
	if n := iv.calls.Load() - before; n != 0 {
		t.Fatalf("%d warm-ups sent while an invocation was queued", n)
	}
	sched.Release(&invocation.Invocation{})
	if n := <-granted - before; n != 0 {
		t.Fatalf("%d warm-ups sent before the queued invocation got its slot", n)
	}
	sched.Release(&invocation.Invocation{})
	sched.Release(&invocation.Invocation{Function: "guest/a"})
	p.Tick()
	p.sending.Wait()
	if iv.calls.Load() == before {
		t.Fatal("no warm-up sent once the pool was idle")
	}
	if sched.InFlight() != 0 {
		t.Errorf("in flight after warm-ups = %d, want 0", sched.InFlight())
	}
}

func TestChainPrewarmLearnsTheNextStep(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 10, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	p := New(Config{Platform: invocation.OpenWhisk, Chains: true}, sched, iv)
	defer p.Close()
	for _, fn := range []string{"guest/a", "guest/b"} {
		inv := realInv(fn, "c1")
		p.Arrived(inv)
		p.Finished(inv, time.Millisecond, nil)
	}
	p.sending.Wait()
	if n := iv.calls.Load(); n != 0 {
		t.Fatalf("%d warm-ups before the chain was learned", n)
	}
	// The idle instance of b is believed warm: step 1 of one new chain
	// needs no warm-up; of two at once, one more instance of b.
	p.Arrived(realInv("guest/a", "c2"))
	p.sending.Wait()
	if n := iv.calls.Load(); n != 0 {
		t.Fatalf("%d warm-ups though b had a warm instance", n)
	}
	p.Arrived(realInv("guest/a", "c3"))
	p.sending.Wait()
	got := iv.functions()
	if len(got) == 0 || got[len(got)-1] != "guest/b" {
		t.Fatalf("warm-ups sent for %v, want guest/b", got)
	}
}

func TestColdStartDetection(t *testing.T) {
	var f latencyFloor
	for _, tc := range []struct {
		lat  time.Duration
		cold bool
	}{
		{600 * time.Millisecond, false}, // first sight: baseline, nothing to compare
		{50 * time.Millisecond, false},  // a new low
		{55 * time.Millisecond, false},
		{560 * time.Millisecond, true},
		{48 * time.Millisecond, false},
		{90 * time.Millisecond, false}, // within the baseline again: warm
		{170 * time.Millisecond, true},
	} {
		if got := f.cold(tc.lat); got != tc.cold {
			t.Errorf("latency %v: cold = %v, want %v (baseline %v)", tc.lat, got, tc.cold, f.min)
		}
	}

	resp := &fasthttp.Response{}
	resp.Header.Set(emulator.HeaderColdStart, "1")
	if cold, known := coldSignal(&invocation.Invocation{Resp: resp}); !cold || !known {
		t.Errorf("emulator header: cold %v known %v, want true true", cold, known)
	}
	resp.Reset()
	resp.Header.Set("X-Openwhisk-Activation-Id", "abc")
	resp.SetBodyString(`{"annotations":[{"key":"initTime","value":312}],"response":{}}`)
	if cold, known := coldSignal(&invocation.Invocation{Platform: invocation.OpenWhisk, Resp: resp}); !cold || !known {
		t.Errorf("OpenWhisk initTime: cold %v known %v, want true true", cold, known)
	}
	resp.SetBodyString(`{"annotations":[{"key":"waitTime","value":3}],"response":{}}`)
	if cold, known := coldSignal(&invocation.Invocation{Platform: invocation.OpenWhisk, Resp: resp}); cold || !known {
		t.Errorf("OpenWhisk without initTime: cold %v known %v, want false true", cold, known)
	}
}

// recorder serves the emulator and records every request it receives.
type recorder struct {
	mu   sync.Mutex
	reqs []*fasthttp.Request
}

func startRecorded(t *testing.T, emu *emulator.Emulator) (*recorder, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	h := emu.Handler()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r.mu.Lock()
		c := &fasthttp.Request{}
		ctx.Request.CopyTo(c)
		r.reqs = append(r.reqs, c)
		r.mu.Unlock()
		h(ctx)
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return r, ln.Addr().String()
}

// TestMarkerReachesTheFunction sends a warm-up in each platform's shape
// through the upstream client to the emulator: it must arrive as a
// warm-up (header and payload), at the function's own invoke path, with
// the callers' credentials (OpenWhisk) or sequoia's signature (Lambda).
func TestMarkerReachesTheFunction(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	emu := emulator.New(emulator.Config{Limit: 10})
	rec, addr := startRecorded(t, emu)

	for _, tc := range []struct {
		platform  invocation.Platform
		fn, qual  string
		reqPath   string // the real invocation's path, as the proxy saw it
		host      string
		wantPath  string
		wantQuery string
		emuName   string // the emulator's name for the function
	}{
		{invocation.OpenWhisk, "guest/pkg/hello", "", "/api/v1/namespaces/guest/actions/pkg/hello", "",
			"/api/v1/namespaces/guest/actions/pkg/hello", "blocking=true&result=true", "guest/pkg/hello"},
		{invocation.Lambda, "resize", "prod", "/2015-03-31/functions/resize/invocations", "",
			"/2015-03-31/functions/resize/invocations", "Qualifier=prod", "resize"},
		{invocation.HTTP, "thumbs", "", "/", "thumbs.default.example.com", "/", "", "thumbs"},
		{invocation.HTTP, "grep", "", "/grep/x", "127.0.0.1", "/grep", "", "grep"},
	} {
		t.Run(tc.platform.String()+"/"+tc.fn, func(t *testing.T) {
			var signer *platform.Signer
			if tc.platform == invocation.Lambda {
				var err error
				if signer, err = platform.NewLambdaSigner(t.Context(), platform.SignerConfig{Host: addr}); err != nil {
					t.Fatal(err)
				}
			}
			up, err := platform.New(platform.Config{URL: "http://" + addr, Kind: tc.platform, Timeout: 5 * time.Second, MaxConns: 4, Signer: signer})
			if err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			sched := qos.New(qos.Config{Limit: 10, QueueCapacity: 10, QueueTimeout: time.Minute})
			p := New(Config{Platform: tc.platform, Min: 1, Hold: 5 * time.Millisecond}, sched, up)
			defer p.Close()

			inv := realInv(tc.fn, "")
			inv.Platform, inv.Qualifier = tc.platform, tc.qual
			inv.Req.SetRequestURI(tc.reqPath)
			if tc.host != "" {
				inv.Req.Header.SetHost(tc.host)
			}
			rec.mu.Lock()
			rec.reqs = nil
			rec.mu.Unlock()
			before := emu.Stats().Functions[tc.emuName]
			p.Arrived(inv)
			p.Finished(inv, time.Millisecond, nil)
			// The instance the invocation used is believed idle; expire it
			// in the model so that keep-alive sends a warm-up.
			f := remembered(t, p, tc.fn)
			f.mu.Lock()
			f.idle = f.idle[:0]
			f.mu.Unlock()
			p.Tick()
			p.sending.Wait()

			after := emu.Stats().Functions[tc.emuName]
			if got := after.Warmups - before.Warmups; got != 1 {
				t.Fatalf("emulator counted %d warm-ups of %s, want 1", got, tc.emuName)
			}
			if after.Invocations != before.Invocations {
				t.Errorf("the warm-up was counted as a real invocation")
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.reqs) != 1 {
				t.Fatalf("%d requests reached the platform, want 1", len(rec.reqs))
			}
			r := rec.reqs[0]
			if got := string(r.URI().Path()); got != tc.wantPath {
				t.Errorf("path = %q, want %q", got, tc.wantPath)
			}
			if got := string(r.URI().QueryString()); got != tc.wantQuery {
				t.Errorf("query = %q, want %q", got, tc.wantQuery)
			}
			if got := string(r.Header.Peek(HeaderWarmup)); got != "1" {
				t.Errorf("%s = %q, want 1", HeaderWarmup, got)
			}
			var body map[string]any
			if err := json.Unmarshal(r.Body(), &body); err != nil || body["sequoia_warmup"] != true {
				t.Errorf("payload %s: want {\"sequoia_warmup\": true, ...} (%v)", r.Body(), err)
			}
			auth := string(r.Header.Peek("Authorization"))
			switch tc.platform {
			case invocation.Lambda:
				if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") {
					t.Errorf("Authorization = %q, want a SigV4 signature", auth)
				}
			default:
				if auth != "Basic dGVzdDp0ZXN0" {
					t.Errorf("Authorization = %q, want the callers'", auth)
				}
			}
			if tc.platform == invocation.HTTP && !bytes.Equal(r.Header.Host(), []byte(tc.host)) {
				t.Errorf("Host = %q, want %q", r.Header.Host(), tc.host)
			}
		})
	}
}

// TestPerFunctionSwitches: a function listed with 0 gets no warm-up of any
// kind until a policy hint asks for instances; a hint raises the keep-alive
// count of a function, and the next decision without one lowers it again.
func TestPerFunctionSwitches(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 20, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	p := New(Config{Platform: invocation.OpenWhisk, Min: 1, Functions: map[string]int{"guest/off": 0},
		Burst: true, Chains: true}, sched, iv)
	defer p.Close()
	arriveAndFinish := func(fn string, hint int) {
		inv := realInv(fn, "")
		inv.Prewarm = hint
		p.Arrived(inv)
		p.Finished(inv, time.Millisecond, nil)
		f := remembered(t, p, fn)
		f.mu.Lock()
		f.idle = f.idle[:0] // every instance expired: keep-alive must act
		f.mu.Unlock()
		p.Tick()
		p.sending.Wait()
	}
	arriveAndFinish("guest/off", 0)
	if n := iv.count("guest/off"); n != 0 {
		t.Fatalf("%d warm-ups of a function switched off", n)
	}
	arriveAndFinish("guest/off", 3)
	if n := iv.count("guest/off"); n < 3 {
		t.Fatalf("%d warm-ups after a hint of 3, want at least 3 (keep-alive of 3)", n)
	}
	before := iv.count("guest/on")
	arriveAndFinish("guest/on", 4)
	if n := iv.count("guest/on") - before; n < 4 {
		t.Fatalf("%d warm-ups of guest/on with a hint of 4, want at least 4", n)
	}
	before = iv.count("guest/on")
	arriveAndFinish("guest/on", 0)
	if n := iv.count("guest/on") - before; n > 2 {
		t.Fatalf("%d warm-ups of guest/on once the hint was gone, want at most SEQUOIA_PREWARM_MIN (1) and a burst one", n)
	}
}

// clock is a settable clock for Config.Now, safe for the pool's senders.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1e9, 0)} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// reasons counts warm-ups by reason.
type reasons struct {
	mu sync.Mutex
	n  [NumReasons]int
}

func (r *reasons) Warmup(why Reason, ok bool) { r.mu.Lock(); r.n[why]++; r.mu.Unlock() }
func (r *reasons) ColdStart(string)           {}
func (r *reasons) Held(time.Duration)         {}
func (r *reasons) Round(bool)                 {}

// TestBurstPrewarm: invocations that keep arriving with no instance
// believed idle (a second apart, longer than an invocation takes) send
// burst warm-ups ahead of them; once the instances are idle and warm,
// arrivals send none.
func TestBurstPrewarm(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 50, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	rep := &reasons{}
	clk := newClock()
	p := New(Config{Platform: invocation.OpenWhisk, Burst: true, Now: clk.now}, sched, iv)
	p.SetReporter(rep)
	defer p.Close()
	var invs []*invocation.Invocation
	for range 4 {
		inv := realInv("guest/b", "")
		invs = append(invs, inv)
		p.Arrived(inv)
		clk.add(time.Second)
	}
	p.sending.Wait()
	if rep.n[Burst] == 0 {
		t.Fatal("no burst warm-up while demand outgrew the warm instances")
	}
	for _, inv := range invs {
		p.Finished(inv, time.Millisecond, nil)
	}
	sent := rep.n[Burst]
	// Now 4 instances or more are idle: 4 more arrivals find them.
	for range 4 {
		p.Arrived(realInv("guest/b", ""))
	}
	p.sending.Wait()
	if rep.n[Burst] != sent {
		t.Errorf("%d burst warm-ups though warm instances were idle", rep.n[Burst]-sent)
	}
	if rep.n[KeepAlive] != 0 || rep.n[Chain] != 0 {
		t.Errorf("keep-alive %d, chain %d warm-ups: want none (not configured)", rep.n[KeepAlive], rep.n[Chain])
	}
}

// TestBurstAndChainSwitchedPerFunction: burst and chain pre-warm obey the
// per-function switches over the global ones, and a policy's hint switches
// a function back on.
func TestBurstAndChainSwitchedPerFunction(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 50, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	rep := &reasons{}
	clk := newClock()
	p := New(Config{Platform: invocation.OpenWhisk, Burst: true, Chains: true, Now: clk.now,
		BurstFunctions: map[string]bool{"guest/quiet": false},
		ChainFunctions: map[string]bool{"guest/b2": false}}, sched, iv)
	p.SetReporter(rep)
	defer p.Close()
	burst := func(fn string, hint int) { // sustained: a second apart
		for range 3 {
			inv := realInv(fn, "")
			inv.Prewarm = hint
			p.Arrived(inv)
			clk.add(time.Second)
		}
		p.sending.Wait()
	}
	burst("guest/quiet", 0)
	burst("guest/loud", 0)
	if n := iv.count("guest/quiet"); n != 0 {
		t.Errorf("%d burst warm-ups of guest/quiet, switched off", n)
	}
	if n := iv.count("guest/loud"); n == 0 {
		t.Error("no burst warm-up of guest/loud, on by the global switch")
	}
	burst("guest/quiet", 1)
	if rep.n[Burst] == 0 || iv.count("guest/quiet") == 0 {
		t.Error("no burst warm-up of guest/quiet after the policy's hint")
	}

	// Two chains a → b and c → b2; then four chains start at once in each
	// (more than the instances of b and b2 the learning left warm).
	for _, c := range [][2]string{{"guest/a", "guest/b"}, {"guest/c", "guest/b2"}} {
		for _, fn := range c {
			inv := realInv(fn, "learn-"+c[0])
			p.Arrived(inv)
			p.Finished(inv, time.Millisecond, nil)
		}
	}
	p.sending.Wait()
	chainsBefore, b, b2 := rep.n[Chain], iv.count("guest/b"), iv.count("guest/b2")
	for i, fn := range []string{"guest/a", "guest/a", "guest/a", "guest/a", "guest/c", "guest/c", "guest/c", "guest/c"} {
		p.Arrived(realInv(fn, "run-"+strconv.Itoa(i)))
	}
	p.sending.Wait()
	if n := iv.count("guest/b2") - b2; n != 0 {
		t.Errorf("%d warm-ups of guest/b2, chain pre-warm switched off for it", n)
	}
	if n := iv.count("guest/b") - b; n == 0 || rep.n[Chain] == chainsBefore {
		t.Errorf("%d chain warm-ups of guest/b, want some", n)
	}
}

// TestStatus: the status lists functions most recently seen first, bounded,
// with the warm estimate, the warm count, warm-ups by reason, cold starts
// and the back-off.
func TestStatus(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 20, QueueCapacity: 10, QueueTimeout: time.Minute})
	iv := &fakeInvoker{}
	now := time.Unix(1e9, 0)
	p := New(Config{Platform: invocation.OpenWhisk, Min: 2, Functions: map[string]int{"guest/off": 0},
		KeepAlive: time.Minute, Now: func() time.Time { return now }}, sched, iv)
	defer p.Close()
	for _, fn := range []string{"guest/off", "guest/a", "guest/b"} {
		inv := realInv(fn, "")
		p.Arrived(inv)
		inv.Resp.Header.Set(emulator.HeaderColdStart, "1")
		p.Finished(inv, time.Millisecond, nil)
	}
	p.Tick() // guest/a and guest/b: 1 instance idle, 2 wanted: 2 warm-ups each
	p.sending.Wait()
	iv.status = 500
	now = now.Add(time.Hour) // every instance expired
	p.Tick()
	p.sending.Wait()

	st := p.Status(2)
	if st.Functions != 3 || st.Shown != 2 || len(st.List) != 2 {
		t.Fatalf("status lists %d of %d (shown %d), want 2 of 3", len(st.List), st.Functions, st.Shown)
	}
	b := st.List[0]
	if b.Function != "guest/b" || st.List[1].Function != "guest/a" {
		t.Errorf("listed %s, %s; want guest/b, guest/a (most recent first)", b.Function, st.List[1].Function)
	}
	if b.Min != 2 || b.Warmups.KeepAlive != 4 || b.ColdStarts != 1 || b.Failures != 2 || b.BackoffUntil == nil || b.Warm != 0 {
		t.Errorf("guest/b = %+v, want min 2, 4 keep-alive warm-ups, 1 cold start, 2 failures, backing off, 0 warm", b)
	}
	off := p.Status(10).List[2]
	if off.Function != "guest/off" || off.Min != 0 || off.Burst || off.Chain || off.Warmups != (WarmupCounts{}) {
		t.Errorf("guest/off = %+v, want min 0, everything off, no warm-ups", off)
	}
}

// TestBurstWarmsOnlyWhatDemandLacks: a lone arrival that finds no idle
// instance sends no burst warm-up, nor does an instantaneous burst beyond
// the warm instances (each of its invocations starts its own instance, and
// no more arrive); a burst whose arrivals keep finding no idle instance
// for longer than an invocation takes sends one per such arrival, not one
// per invocation running.
func TestBurstWarmsOnlyWhatDemandLacks(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 50, QueueCapacity: 10, QueueTimeout: time.Minute})
	sched.Observe("guest/f", 50*time.Millisecond)
	iv := &fakeInvoker{}
	rep := &reasons{}
	clk := newClock()
	p := New(Config{Platform: invocation.OpenWhisk, Burst: true, KeepAlive: time.Minute, Now: clk.now}, sched, iv)
	p.SetReporter(rep)
	defer p.Close()

	first := realInv("guest/f", "")
	p.Arrived(first) // no instance yet: it starts one, and is alone
	p.sending.Wait()
	if rep.n[Burst] != 0 {
		t.Fatalf("%d burst warm-ups for a lone arrival", rep.n[Burst])
	}
	p.Finished(first, time.Millisecond, nil)
	warmInstances := func(n int) {
		f := remembered(t, p, "guest/f")
		f.mu.Lock()
		f.idle = f.idle[:0]
		for range n {
			f.idle = append(f.idle, clk.now())
		}
		f.mu.Unlock()
	}
	warmInstances(5)
	var running []*invocation.Invocation
	for range 20 { // at once
		inv := realInv("guest/f", "")
		running = append(running, inv)
		p.Arrived(inv)
	}
	p.sending.Wait()
	if rep.n[Burst] != 0 {
		t.Errorf("%d burst warm-ups for an instantaneous burst of 20 on 5 warm instances, want 0", rep.n[Burst])
	}
	for _, inv := range running {
		p.Finished(inv, time.Millisecond, nil)
	}

	// Sustained: 5 at once, then one every 10ms while the first take their
	// cold start: none within the 50ms an invocation takes, then at most
	// one per arrival.
	warmInstances(0)
	sent := func() int { p.sending.Wait(); return rep.n[Burst] }
	for i := range 15 {
		if i >= 5 {
			clk.add(10 * time.Millisecond)
		}
		p.Arrived(realInv("guest/f", ""))
		if i == 8 && sent() != 0 {
			t.Fatalf("%d burst warm-ups within the 50ms an invocation takes, want 0", sent())
		}
	}
	if n := sent(); n == 0 || n > 10 {
		t.Errorf("%d burst warm-ups for 10 arrivals finding no instance after 50ms, want 1 to 10 (one per such arrival at most)", n)
	}
}

// TestHintFollowsDecisions: every invocation carries a policy decision
// (requests, Lambda Events and DAG nodes alike), and the function's warm
// count follows the latest: a hint raises it, a decision without one
// lowers it back to the configured minimum.
func TestHintFollowsDecisions(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 20, QueueCapacity: 10, QueueTimeout: time.Minute})
	p := New(Config{Platform: invocation.OpenWhisk, Min: 1}, sched, &fakeInvoker{})
	defer p.Close()
	warmCount := func() int { return p.Status(1).List[0].Min }
	for _, step := range []struct{ hint, want int }{{3, 3}, {0, 1}, {2, 2}, {0, 1}} {
		inv := realInv("guest/f", "")
		inv.Prewarm = step.hint
		p.Arrived(inv)
		p.Finished(inv, time.Millisecond, nil)
		if got := warmCount(); got != step.want {
			t.Errorf("hint %d: warm count %d, want %d", step.hint, got, step.want)
		}
	}
}

// TestForgetsLeastRecentlyUsed: with room for two functions, the one seen
// again (after touchEvery, so that it is refreshed) is kept and the other
// forgotten when a third arrives.
func TestForgetsLeastRecentlyUsed(t *testing.T) {
	p := New(Config{Platform: invocation.OpenWhisk, MaxFunctions: 2, MaxChains: 2}, busySlots{}, &fakeInvoker{})
	defer p.Close()
	names := func() []string {
		var s []string
		for _, f := range p.Status(10).List {
			s = append(s, f.Function)
		}
		return s
	}
	arrive := func(fn string) {
		inv := realInv(fn, "")
		p.Arrived(inv)
		p.Finished(inv, time.Millisecond, nil)
	}
	arrive("guest/a")
	arrive("guest/b")
	time.Sleep(2 * touchEvery)
	arrive("guest/a")
	arrive("guest/c")
	if got := names(); len(got) != 2 || got[0] != "guest/c" || got[1] != "guest/a" {
		t.Fatalf("remembered %v, want [guest/c guest/a]", got)
	}
}
