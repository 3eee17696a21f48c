package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestMeasureDAGOverhead is the measurement of issue 8, not a pass/fail
// test: orchestration overhead (a run's wall time, seen by its client,
// minus the function time on its critical path) of a 10-step sequence and
// an 80-way map, and a burst of 500 concurrent runs of a 3-node DAG. Run
// with
//
//	SEQUOIA_MEASURE=1 go test -run TestMeasureDAGOverhead -v ./cmd/sequoia/
//
// The emulator runs every function for exactly execMs with no cold start,
// so the critical path's function time is known: steps × execMs.
func TestMeasureDAGOverhead(t *testing.T) {
	if os.Getenv("SEQUOIA_MEASURE") == "" {
		t.Skip("a measurement: set SEQUOIA_MEASURE=1 to run it")
	}
	const exec = 20 * time.Millisecond
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 100, ExecTime: exec})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_MAX_CONCURRENCY=100", "SEQUOIA_QUEUE_CAPACITY=5000")
	addr := s.dataLn.Addr().String()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: 600, ReadTimeout: time.Minute}
	call := func(method, path, body string) (int, []byte, time.Duration) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + path)
		req.Header.SetMethod(method)
		req.SetBodyString(body)
		start := time.Now()
		if err := hc.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), append([]byte(nil), resp.Body()...), time.Since(start)
	}
	put := func(name, src string) {
		if code, b, _ := call("PUT", "/sequoia/v1/dags/"+name, src); code/100 != 2 {
			t.Fatalf("PUT %s: %d %s", name, code, b)
		}
	}

	var seq strings.Builder
	seq.WriteString(`{"start":"s0","nodes":{`)
	for i := range 10 {
		if i > 0 {
			seq.WriteString(",")
		}
		next := ""
		if i < 9 {
			next = fmt.Sprintf(`,"next":"s%d"`, i+1)
		}
		fmt.Fprintf(&seq, `"s%d":{"kind":"task","function":"step%d"%s}`, i, i, next)
	}
	seq.WriteString(`}}`)
	put("seq10", seq.String())
	put("map80", `{"start":"m","nodes":{"m":{"kind":"map","items":"/items","do":"w"},"w":{"kind":"task","function":"item"}}}`)
	put("three", threeNodeDAG)
	items := `{"input":{"items":[` + strings.TrimSuffix(strings.Repeat(`{"x":1},`, 80), ",") + `]}}`

	measure := func(name, body string, critical time.Duration, steps int) {
		const rounds = 30
		var over []time.Duration
		for i := range rounds + 5 {
			code, b, d := call("POST", "/sequoia/v1/dags/"+name+"/runs", body)
			if code != 200 {
				t.Fatalf("%s: %d %s", name, code, b)
			}
			if i >= 5 { // the first rounds warm instances and estimates
				over = append(over, d-critical)
			}
		}
		slices.Sort(over)
		p50, p90 := over[len(over)/2], over[len(over)*9/10]
		t.Logf("%-6s critical path %v: overhead p50 %v p90 %v min %v (per step p50 %v)", name, critical,
			p50.Round(10*time.Microsecond), p90.Round(10*time.Microsecond), over[0].Round(10*time.Microsecond),
			(p50 / time.Duration(steps)).Round(10*time.Microsecond))
	}
	measure("seq10", `{"input":{}}`, 10*exec, 10)
	measure("map80", items, exec, 1)

	// The burst: 500 runs at once, each a→(b‖c), through 50 slots with a
	// deadline some cannot meet. Admitted runs must all finish.
	emu.Reset()
	s.sched.SetLimit(50)
	emu.SetLimit(50)
	for _, deadline := range []int{0, 400} {
		emu.Reset()
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		start := time.Now()
		for range 500 {
			wg.Go(func() {
				code, b, _ := call("POST", "/sequoia/v1/dags/three/runs", fmt.Sprintf(`{"input":{},"deadline_ms":%d}`, deadline))
				if code == 200 {
					var out []json.RawMessage
					if json.Unmarshal(b, &out) != nil || len(out) != 2 {
						code = -1
					}
				}
				mu.Lock()
				codes[code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		st := emu.Stats()
		admitted := 500 - codes[429]
		t.Logf("burst of 500 runs (deadline_ms %d): %d admitted, %d completed, %d refused at admission, other %v; "+
			"platform: %d invocations, %d throttles, peak %d; wall %v",
			deadline, admitted, codes[200], codes[429], codes, st.Invocations, st.Throttles, st.PeakConcurrency,
			time.Since(start).Round(time.Millisecond))
		if codes[200] != admitted {
			t.Errorf("%d admitted runs did not complete", admitted-codes[200])
		}
	}
}
