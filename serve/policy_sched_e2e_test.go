package serve

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/metrics"
)

// End-to-end tests that the shipped scheduling policies change the order
// in which `sequoia serve` sends work to a `sequoia emulate` platform.
// Each runs the same scenario with a policy setting on and off and
// compares: orders, counts and peaks, never wall-clock bounds. Nothing
// depends on the machine's speed: the requests that take the slots are
// held at a gate in front of the platform until the queues are built (the
// tests wait for the scheduler's queue depth); the order compared is the
// one in which requests reached the platform, one slot dispatching them
// one after another; and peaks are counted at the gate. The snapshot is
// refreshed by the test (SEQUOIA_POLICY_REFRESH is an hour), so decisions
// see a known state.

// policyRig is a sequoia, with a copy of the shipped policies edited by
// edit, in front of a gated emulator.
type policyRig struct {
	t   *testing.T
	s   *Server
	emu *emulator.Emulator
	g   *gate // nil: no gate

	wg    sync.WaitGroup
	mu    sync.Mutex
	order []string // labels of the requests answered, in order
}

func startPolicyRig(t *testing.T, backend string, edit func(name, src string) string, env ...string) *policyRig {
	t.Helper()
	emu, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 20, ExecTime: time.Millisecond})
	s := startServer(t, append([]string{
		"SEQUOIA_BACKEND=" + backend, "SEQUOIA_BACKEND_URL=http://" + emuAddr,
		"SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_POLICY_DIR=" + copyShipped(t, edit),
		"SEQUOIA_POLICY_TIMEOUT=1m", // a timeout would allow without the policy's fields
		"SEQUOIA_POLICY_REFRESH=1h", "SEQUOIA_QUEUE_TIMEOUT=1m",
		"SEQUOIA_ADAPTIVE=false", "SEQUOIA_PREWARM=false", // the limit stays put; no warm-ups take slots
	}, env...)...)
	r := &policyRig{t: t, s: s, emu: emu, g: g}
	t.Cleanup(func() { g.openAll(); r.wg.Wait() })
	return r
}

// edit returns a copyShipped edit that replaces old by new in file.
func edit(t *testing.T, file, old, new string) func(name, src string) string {
	return func(name, src string) string {
		if name != file {
			return src
		}
		if !strings.Contains(src, old) {
			t.Fatalf("the shipped %s no longer holds %q", file, old)
		}
		return strings.Replace(src, old, new, 1)
	}
}

// send invokes, in the background, the function at path (an http route,
// "/fn/", or an OpenWhisk namespace and action, "ns/fn") running for
// execMs at the platform, labelled label, and records label when it is
// answered 200.
func (r *policyRig) send(label, path string, execMs int) {
	r.post(label, path, fmt.Sprintf(`{"exec_ms": %d, "label": %q}`, execMs, label))
}

// hold is send for a request the gate holds until released.
func (r *policyRig) hold(label, path string) {
	r.post(label, path, fmt.Sprintf(`{"label": %q, "hold": true}`, label))
}

func (r *policyRig) post(label, path, body string) {
	url := "http://" + r.s.dataLn.Addr().String()
	if ns, fn, ok := strings.Cut(path, "/"); ok && ns != "" {
		url += "/api/v1/namespaces/" + ns + "/actions/" + fn + "?blocking=true&result=true"
	} else {
		url += path
	}
	r.wg.Go(func() {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			r.t.Error(err)
			return
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			r.t.Errorf("%s: %d", label, resp.StatusCode)
			return
		}
		r.mu.Lock()
		r.order = append(r.order, label)
		r.mu.Unlock()
	})
}

// waitSched waits until the scheduler holds inFlight slots and queued
// waiters.
func (r *policyRig) waitSched(inFlight, queued int) {
	r.t.Helper()
	eventually(r.t, fmt.Sprintf("%d in flight and %d queued", inFlight, queued), func() bool {
		return r.s.sched.InFlight() == inFlight && r.s.sched.Queued() == queued
	})
}

// waitTenants waits until the scheduler counts exactly want's slots held
// per tenant (what the policy snapshot reads): a slot is taken a moment
// before its tenant's count goes up, so InFlight alone can run ahead.
func (r *policyRig) waitTenants(want map[string]int) {
	r.t.Helper()
	eventually(r.t, fmt.Sprintf("tenants in flight %v", want), func() bool {
		return maps.Equal(maps.Collect(r.s.sched.TenantsInFlight()), want)
	})
}

// answered waits for every request sent and returns the labels in the
// order they were answered.
func (r *policyRig) answered() []string {
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// arrived waits for every request sent and returns the labels of those
// sent after the first `after` to reach the platform, in the order they
// reached it.
func (r *policyRig) arrived(after int) []string {
	r.wg.Wait()
	return r.g.order()[after:]
}

// priority is the priority the running policy gives a first step of fn
// by tenant now.
func (r *policyRig) priority(tenant, fn string) int {
	kind, _ := invocation.ParsePlatform(r.s.cfg.Backend.Kind)
	inv := invocation.Invocation{Function: fn, Tenant: tenant, Platform: kind}
	if deny, why := r.s.decider.Decide(&inv); deny {
		r.t.Fatalf("%s/%s denied: %s", tenant, fn, why)
	}
	return inv.Priority
}

// TestPolicyCapsEndToEnd: with caps.rego's table capping one function at
// 1, the platform never runs two of it at once while other functions use
// the other slots; without the cap, the same burst runs it 4 at a time.
func TestPolicyCapsEndToEnd(t *testing.T) {
	burst := func(t *testing.T, caps string) (capped, free int) {
		r := startPolicyRig(t, "http", edit(t, "caps.rego", "caps_function_caps := {}", "caps_function_caps := "+caps),
			"SEQUOIA_MAX_CONCURRENCY=4")
		// The capped function's burst first, so that it could take every
		// slot; then the others. Each is held at the platform until all
		// are in flight or queued.
		for i := range 5 {
			r.hold(fmt.Sprint("capped", i), "/capped/")
		}
		if caps == "{}" {
			r.waitSched(4, 1)
		} else {
			r.waitSched(1, 4)
		}
		for i := range 6 {
			r.hold(fmt.Sprint("free", i), "/free/")
		}
		r.waitSched(4, 7) // four in flight: capped ones, or the capped one and three free
		r.g.openAll()
		if got := len(r.answered()); got != 11 {
			t.Fatalf("%d of 11 answered", got)
		}
		return r.g.peak("/capped/"), r.g.peak("/free/")
	}
	var capped, free, uncapped int
	t.Run("cap", func(t *testing.T) {
		capped, free = burst(t, `{"capped": 1}`)
		if capped != 1 || free < 2 {
			t.Errorf("peak concurrency at the platform: capped %d, others %d; want 1 and at least 2", capped, free)
		}
	})
	t.Run("no cap", func(t *testing.T) {
		if uncapped, _ = burst(t, "{}"); uncapped < 2 {
			t.Errorf("peak concurrency of the function without its cap: %d, want at least 2", uncapped)
		}
	})
	t.Logf("peak concurrency at the platform: capped function %d with the cap (others %d), %d without", capped, free, uncapped)
}

// TestPolicyStrictPriorityEndToEnd: with caps.rego ranking one function
// above the others, its requests overtake a flood of another function
// queued before them, also when the two belong to different tenants (a
// priority comes before the tenants' turns); without the rank, they wait
// their turn.
func TestPolicyStrictPriorityEndToEnd(t *testing.T) {
	run := func(t *testing.T, ranks string, across bool) []string {
		backend, bulk, urgent := "http", "/bulk/", "/urgent/"
		if across { // OpenWhisk: the namespace is the tenant
			backend, bulk, urgent = "openwhisk", "flood/bulk", "ops/urgent"
		}
		r := startPolicyRig(t, backend, edit(t, "caps.rego", "caps_function_ranks := {}", "caps_function_ranks := "+ranks),
			"SEQUOIA_MAX_CONCURRENCY=1")
		r.hold("blocker", bulk)
		r.waitSched(1, 0)
		for i := range 6 {
			r.send(fmt.Sprint("bulk", i), bulk, 1)
		}
		r.waitSched(1, 6)
		for i := range 3 {
			r.send(fmt.Sprint("urgent", i), urgent, 1)
		}
		r.waitSched(1, 9)
		r.g.release(t, "blocker")
		order := r.arrived(1) // after the blocker
		if len(order) != 9 {
			t.Fatalf("reached the platform after the blocker %v, want 9", order)
		}
		return order
	}
	urgentFirst := func(order []string) int {
		n := 0
		for n < len(order) && strings.HasPrefix(order[n], "urgent") {
			n++
		}
		return n
	}
	var ranked, unranked []string
	t.Run("ranked", func(t *testing.T) {
		ranked = run(t, `{"urgent": 1}`, false)
		if n := urgentFirst(ranked); n != 3 {
			t.Errorf("order %v: %d urgent before the flood queued earlier, want all 3", ranked, n)
		}
	})
	t.Run("ranked across tenants", func(t *testing.T) {
		order := run(t, `{"ops/urgent": 1}`, true)
		if n := urgentFirst(order); n != 3 {
			t.Errorf("order %v: %d urgent (tenant ops) before tenant flood's requests queued earlier, want all 3", order, n)
		}
	})
	t.Run("unranked", func(t *testing.T) {
		unranked = run(t, "{}", false)
		if n := urgentFirst(unranked); n != 0 {
			t.Errorf("order %v: without a rank, %d urgent overtook the flood", unranked, n)
		}
	})
	t.Logf("reached the platform after the blocker, ranked: %v; unranked: %v", ranked, unranked)
}

// TestPolicySJFEndToEnd: with sjf.rego on, once the functions' p50s are
// observed, a short function's requests are served before a long one's
// queued earlier, so their waits are shorter; without it, the queue is
// served in arrival order.
func TestPolicySJFEndToEnd(t *testing.T) {
	type result struct {
		order               []string
		shortMean, longMean float64 // mean position in the order served
		shortPrio, longPrio int
	}
	run := func(t *testing.T, on bool) result {
		setting := "sjf_enabled := false"
		if on {
			setting = "sjf_enabled := true"
		}
		r := startPolicyRig(t, "http", edit(t, "sjf.rego", "sjf_enabled := false", setting), "SEQUOIA_MAX_CONCURRENCY=1")
		// Both functions run (so that they count as active), and their
		// durations are observed: a few real invocations, and many more
		// fed to the request metrics, so that the p50s are 1ms and 120ms
		// (sjf's buckets below 50ms and below 500ms) whatever the machine
		// made of the real ones.
		for range 3 {
			r.send("warm", "/short/", 1)
			r.answered()
			r.send("warm", "/long/", 120)
			r.answered()
		}
		for fn, d := range map[string]time.Duration{"short": time.Millisecond, "long": 120 * time.Millisecond} {
			for range 20 {
				r.s.metrics.Function([]byte(fn)).Observe(metrics.Forwarded, d)
			}
		}
		r.s.policy.Refresh()
		var res result
		res.shortPrio, res.longPrio = r.priority("", "short"), r.priority("", "long")

		before := len(r.g.order())
		r.hold("blocker", "/long/")
		r.waitSched(1, 0)
		for i := range 5 {
			r.send(fmt.Sprint("long", i), "/long/", 1)
			r.waitSched(1, 2*i+1)
			r.send(fmt.Sprint("short", i), "/short/", 1)
			r.waitSched(1, 2*i+2)
		}
		r.g.release(t, "blocker")
		order := r.arrived(before + 1)
		if len(order) != 10 {
			t.Fatalf("reached the platform after the blocker %v, want 10", order)
		}
		res.order = order
		var s, l float64
		for i, label := range res.order {
			if strings.HasPrefix(label, "short") {
				s += float64(i) / 5
			} else {
				l += float64(i) / 5
			}
		}
		res.shortMean, res.longMean = s, l
		return res
	}
	var on, off result
	t.Run("sjf", func(t *testing.T) {
		on = run(t, true)
		if on.shortPrio <= on.longPrio {
			t.Fatalf("priorities from the observed p50s: short %d, long %d; want short's higher", on.shortPrio, on.longPrio)
		}
		for i, label := range on.order[:5] {
			if !strings.HasPrefix(label, "short") {
				t.Errorf("order %v: position %d is %s, want the 5 short ones first", on.order, i, label)
				break
			}
		}
	})
	t.Run("fifo", func(t *testing.T) {
		off = run(t, false)
		if off.shortPrio != off.longPrio {
			t.Errorf("priorities without sjf: short %d, long %d; want equal", off.shortPrio, off.longPrio)
		}
		if !strings.HasPrefix(off.order[0], "long") || off.shortMean <= off.longMean {
			t.Errorf("order %v: want arrival order (long0 first, short ones later on average)", off.order)
		}
	})
	t.Logf("mean position served (0-9) after the blocker: with sjf short %.1f, long %.1f (priorities %d, %d); without short %.1f, long %.1f",
		on.shortMean, on.longMean, on.shortPrio, on.longPrio, off.shortMean, off.longMean)
}

// TestPolicyFairShareEndToEnd: with chains.rego, a tenant holding at
// least its share of the slots (the live snapshot's per-tenant in-flight
// counts) has its new chains ranked below another tenant's, so the other
// tenant's new chains all go first although they were queued later;
// without the policy, the tenants take turns, the first to ask first.
func TestPolicyFairShareEndToEnd(t *testing.T) {
	run := func(t *testing.T, priority string) (order []string, a, b int) {
		r := startPolicyRig(t, "openwhisk",
			edit(t, "chains.rego", "chains_over_share_priority := -10", "chains_over_share_priority := "+priority),
			"SEQUOIA_MAX_CONCURRENCY=4")
		// Tenant a holds 3 of the 4 slots, b holds 1, all held at the
		// platform.
		for i := range 3 {
			r.hold(fmt.Sprint("hold-a", i), "a/hold")
		}
		r.waitSched(3, 0)
		r.hold("hold-b", "b/hold")
		r.waitSched(4, 0)
		r.waitTenants(map[string]int{"a": 3, "b": 1})
		r.s.policy.Refresh()
		a, b = r.priority("a", "work"), r.priority("b", "work")
		// The slot is the scheduler's a moment before its call reaches the
		// platform: wait for all four there, so that the order read next
		// holds only the new chains.
		eventually(t, "the four held calls at the platform", func() bool { return r.g.held() == 4 })
		// Then each queues two new chains, a's first.
		before := len(r.g.order())
		r.send("a1", "a/work", 1)
		r.waitSched(4, 1)
		r.send("a2", "a/work", 1)
		r.waitSched(4, 2)
		r.send("b1", "b/work", 1)
		r.waitSched(4, 3)
		r.send("b2", "b/work", 1)
		r.waitSched(4, 4)
		// One slot comes back: the queued chains run through it one after
		// another, in the scheduler's order.
		r.g.release(t, "hold-a0")
		eventually(t, "the four new chains at the platform", func() bool { return len(r.g.order()) == before+4 })
		order = r.g.order()[before:]
		r.g.openAll()
		r.wg.Wait()
		return order, a, b
	}
	var with, without []string
	t.Run("fair share", func(t *testing.T) {
		var a, b int
		with, a, b = run(t, "-10")
		if a != -10 || b != 0 {
			t.Errorf("priorities of new chains: tenant a (3 of 4 slots) %d, b (1) %d; want -10, 0", a, b)
		}
		if want := []string{"b1", "b2", "a1", "a2"}; !slices.Equal(with, want) {
			t.Errorf("order %v, want %v", with, want)
		}
	})
	t.Run("no penalty", func(t *testing.T) {
		var a, b int
		without, a, b = run(t, "0")
		if a != 0 || b != 0 {
			t.Errorf("priorities of new chains: a %d, b %d; want 0, 0", a, b)
		}
		if want := []string{"a1", "b1", "a2", "b2"}; !slices.Equal(without, want) {
			t.Errorf("order %v, want %v", without, want)
		}
	})
	t.Logf("new chains at the platform, tenant a holding 3 of 4 slots: with the penalty %v, without %v", with, without)
}

// TestPolicySnapshotColdStartRateLive: in `sequoia serve` with the warm
// pool on, a policy reads a function's cold-start rate over the last
// refresh interval: 1 after its first invocation (a new instance), 0 after
// three more on the warm instance. A probe policy turns the rate into a
// priority, which the test reads through the proxy's decider.
func TestPolicySnapshotColdStartRateLive(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 5, ExecTime: time.Millisecond, ColdStart: 30 * time.Millisecond})
	dir := copyShipped(t, nil)
	probe := `package sequoia

contribution.probe := {"priority": round(f.cold_start_rate * 100)} if {
	f := input.snapshot.functions[input.function]
}
`
	if err := os.WriteFile(filepath.Join(dir, "probe.rego"), []byte(probe), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_POLICY_DIR="+dir, "SEQUOIA_POLICY_TIMEOUT=1m", "SEQUOIA_POLICY_REFRESH=1h",
		"SEQUOIA_PREWARM=true", "SEQUOIA_ADAPTIVE=false", "SEQUOIA_MAX_CONCURRENCY=2")
	r := &policyRig{t: t, s: s, emu: emu}
	invoke := func(n int) {
		for range n {
			r.send("f", "/f/", 1)
			if len(r.answered()) == 0 {
				t.Fatal("not answered")
			}
		}
		s.policy.Refresh()
	}
	invoke(1)
	if got := r.priority("", "f"); got != 100 {
		t.Errorf("after the first invocation: cold-start rate %d%%, want 100%%", got)
	}
	invoke(3)
	if got := r.priority("", "f"); got != 0 {
		t.Errorf("after three warm invocations: cold-start rate %d%%, want 0%%", got)
	}
	if st := emu.Stats().Functions["f"]; st.ColdStarts != 1 || st.Invocations != 4 {
		t.Errorf("platform: %d cold starts in %d invocations, want 1 in 4", st.ColdStarts, st.Invocations)
	}
}

// TestPolicyStepFromChainTable: in `sequoia serve`, a policy's input.step
// comes from the scheduler's chain table: after a chain's first request
// was admitted, its next request is step 2 and gets chains.rego's
// continuation boost; a chain id never admitted (or a first request the
// policy denied) is step 1 again.
func TestPolicyStepFromChainTable(t *testing.T) {
	r := startPolicyRig(t, "http", nil, "SEQUOIA_MAX_CONCURRENCY=2")
	step := func(chain string) int {
		inv := invocation.Invocation{Function: "f", Platform: invocation.HTTP, Chain: chain}
		if deny, why := r.s.decider.Decide(&inv); deny {
			t.Fatalf("denied: %s", why)
		}
		return inv.Priority
	}
	if p := step("chain-1"); p != 0 {
		t.Fatalf("a chain not yet admitted: priority %d, want 0 (a first step)", p)
	}
	if p := step("chain-1"); p != 0 {
		t.Fatalf("asked twice, never admitted: priority %d, want 0 (still a first step)", p)
	}
	req, _ := http.NewRequest("POST", "http://"+r.s.dataLn.Addr().String()+"/f/", strings.NewReader(`{"exec_ms": 1}`))
	req.Header.Set("X-Sequoia-Chain-Id", "chain-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first step: %d", resp.StatusCode)
	}
	if p := step("chain-1"); p != 100 {
		t.Errorf("after the first step ran: priority %d, want 100 (chains.rego's continuation boost)", p)
	}
	if p := step("chain-2"); p != 0 {
		t.Errorf("another chain: priority %d, want 0", p)
	}
}
