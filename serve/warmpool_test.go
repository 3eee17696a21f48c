package serve

import (
	"encoding/json"
	"testing"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/warmpool"
)

// TestWarmPoolSeesDAGsAndEvents runs a two-step DAG and a Lambda Event
// invocation through sequoia with the warm pool on: the pool must see
// both (the DAG's functions and the order they ran in, the Event's
// function), and /sequoia/v1/status must show them in its warm-pool
// section.
func TestWarmPoolSeesDAGsAndEvents(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 20})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=10",
		"SEQUOIA_PREWARM=true", "SEQUOIA_PREWARM_MIN=0", "SEQUOIA_PREWARM_FUNCTIONS=ev=2", "SEQUOIA_PLATFORM_KEEPALIVE=10m", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	c.want(201, "PUT", "/sequoia/v1/dags/ab",
		`{"start":"a","nodes":{"a":{"kind":"task","function":"a","next":"b"},"b":{"kind":"task","function":"b"}}}`, asOps...)
	c.want(200, "POST", "/sequoia/v1/dags/ab/runs", `{"input":{}}`)
	c.want(202, "POST", "/2015-03-31/functions/ev/invocations", `{}`, "X-Amz-Invocation-Type", "Event")
	waitEventsDone(t, s)
	if n := emu.Stats().Functions["ev"].Invocations; n != 1 {
		t.Fatalf("the emulator ran ev %d times, want 1", n)
	}

	_, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	var st struct {
		WarmPool *warmpool.Status `json:"warm_pool"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.WarmPool == nil {
		t.Fatalf("status %s: no warm_pool section (%v)", body, err)
	}
	got := map[string]warmpool.FunctionStatus{}
	for _, f := range st.WarmPool.List {
		got[f.Function] = f
	}
	if st.WarmPool.Functions != 3 || len(got) != 3 {
		t.Fatalf("warm pool lists %+v, want a, b and ev", st.WarmPool.List)
	}
	if a := got["a"]; a.Next != "b" || a.Warm < 1 || !a.Burst || !a.Chain {
		t.Errorf("a = %+v, want next b, warm, burst and chain pre-warm on", a)
	}
	if b := got["b"]; b.Warm < 1 {
		t.Errorf("b = %+v, want warm", b)
	}
	if ev := got["ev"]; ev.Min != 2 || ev.Warm < 1 {
		t.Errorf("ev = %+v, want min 2 and warm", ev)
	}
	if st.WarmPool.KeepAlive != "10m0s" {
		t.Errorf("platform_keepalive = %q, want 10m0s", st.WarmPool.KeepAlive)
	}
	// The hold starts at SEQUOIA_PREWARM_HOLD and adapts within its
	// bounds; no round has been checked yet.
	if h := st.WarmPool.Hold; h != (warmpool.HoldRange{Start: "25ms", Min: "1ms", Max: "250ms", Adaptive: true}) {
		t.Errorf("warmup_hold = %+v, want 25ms adaptive within 1ms..250ms", h)
	}
	if ev := got["ev"]; ev.HoldMs != 25 || ev.NeedMs != nil || ev.Rounds != (warmpool.RoundCounts{}) {
		t.Errorf("ev = %+v, want a 25 ms hold, no need measured and no rounds", ev)
	}
}

// TestStatusWithoutWarmPool: with SEQUOIA_PREWARM off, the status has no
// warm-pool section.
func TestStatusWithoutWarmPool(t *testing.T) {
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=5")
	_, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	var st map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st["warm_pool"]; ok {
		t.Errorf("status has a warm_pool section with the pool off: %s", st["warm_pool"])
	}
	if _, ok := st["policy"]; !ok {
		t.Errorf("status %s has no policy section: not the status", body)
	}
}
