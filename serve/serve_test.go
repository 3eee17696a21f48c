package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/policy"
)

func startEmulator(t *testing.T, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e, addr, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown() })
	return e, addr
}

// startServer runs `sequoia serve` in-process with env on top of loopback
// listeners, and stops it at the end of the test.
func startServer(t *testing.T, env ...string) *Server {
	t.Helper()
	cfg, err := config.LoadFrom(append([]string{
		"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return s
}

// TestBurstNeverThrottled sends 500 invocations at once through sequoia to
// a platform with a limit of 20: no client sees a 429 and the platform
// never runs more than 20 at a time.
func TestBurstNeverThrottled(t *testing.T) {
	const limit, burst = 20, 500
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: limit, ExecTime: 10 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		fmt.Sprintf("SEQUOIA_MAX_CONCURRENCY=%d", limit), "SEQUOIA_QUEUE_CAPACITY=1000", "SEQUOIA_QUEUE_TIMEOUT=2m")
	url := "http://" + s.dataLn.Addr().String() + "/api/v1/namespaces/guest/actions/burst?blocking=true&result=true"
	client := &fasthttp.Client{MaxConnsPerHost: burst, ReadTimeout: 2 * time.Minute}
	codes := make([]int, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod("POST")
			req.SetBodyString("{}")
			if err := client.Do(req, resp); err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			codes[i] = resp.StatusCode()
		}()
	}
	wg.Wait()
	byCode := map[int]int{}
	for _, c := range codes {
		byCode[c]++
	}
	if byCode[200] != burst {
		t.Errorf("status codes = %v, want all %d 200", byCode, burst)
	}
	st := emu.Stats()
	if st.Throttles != 0 {
		t.Errorf("platform throttled %d invocations", st.Throttles)
	}
	if st.PeakConcurrency > limit {
		t.Errorf("platform peak concurrency = %d, want <= %d", st.PeakConcurrency, limit)
	}
	if st.Invocations != burst {
		t.Errorf("platform invocations = %d, want %d", st.Invocations, burst)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=5")
	resp, err := http.Post("http://"+s.dataLn.Addr().String()+"/2015-03-31/functions/hello/invocations", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("invoke: %d", resp.StatusCode)
	}
	admin := "http://" + s.adminLn.Addr().String()
	if code, _ := httpGet(t, admin+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	// Ready once this replica holds its lease of the budget (its first
	// round, in the background).
	eventually(t, "/readyz to answer 200", func() bool { code, _ := httpGet(t, admin+"/readyz"); return code == 200 })
	code, body := httpGet(t, admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`sequoia_requests_total{function="hello",outcome="forwarded"} 1`,
		`sequoia_platform_responses_total{code="200"} 1`,
		`sequoia_invocation_duration_seconds_count{function="hello"} 1`,
		`sequoia_queue_wait_seconds_count 1`,
		`sequoia_in_flight 0`, `sequoia_queue_depth 0`, `sequoia_concurrency_limit 5`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = httpGet(t, admin+"/sequoia/v1/status")
	var st struct {
		InFlight int `json:"in_flight"`
		Limit    int `json:"limit"`
		Queues   map[string]struct {
			Depth, Capacity int
		} `json:"queues"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/sequoia/v1/status = %d %q: %v", code, body, err)
	}
	if st.Limit != 5 || st.Config["backend"] != "lambda" || st.Queues["pending"].Capacity != 1000 {
		t.Errorf("status = %+v", st)
	}
	if code, _ := httpGet(t, admin+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ without SEQUOIA_ADMIN_PPROF = %d, want 404", code)
	}
}

// TestStatusReservedCaps: a Lambda function with a reserved concurrency
// of 2, both of its instances busy, throttles sequoia's call to it:
// /sequoia/v1/status shows the function with the cap sequoia learned from
// the throttle and when that changed; a function without a reservation
// does not show. (The two instances are taken by Event invocations sent to
// the platform directly, which run until the test ends: the throttle does
// not depend on calls overlapping in time.)
func TestStatusReservedCaps(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 50})
	emu.SetReserved("capped", 2)
	for range 2 {
		req, _ := http.NewRequest("POST", "http://"+emuAddr+"/2015-03-31/functions/capped/invocations", strings.NewReader(`{"exec_ms":600000}`))
		req.Header.Set("X-Amz-Invocation-Type", "Event")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 202 {
			t.Fatalf("an Event taking an instance of capped: %d", resp.StatusCode)
		}
	}
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=20", "SEQUOIA_ADAPTIVE_QUIET=1h", "SEQUOIA_RETRY_MAX_ATTEMPTS=1")
	for fn, want := range map[string]int{"capped": 429, "free": 200} {
		resp, err := http.Post("http://"+s.dataLn.Addr().String()+"/2015-03-31/functions/"+fn+"/invocations", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d, want %d", fn, resp.StatusCode, want)
		}
	}
	if n := emu.Stats().Functions["capped"].Throttles; n != 1 {
		t.Fatalf("the platform throttled capped %d times, want 1", n)
	}
	code, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	var st struct {
		Reserved *struct {
			Quiet     string `json:"grows_every"`
			Functions int    `json:"functions"`
			List      []struct {
				Function     string
				Cap, Learned int
				ThrottledAt  time.Time `json:"throttled_at"`
				ChangedAt    time.Time `json:"changed_at"`
			} `json:"by_function"`
		} `json:"reserved_caps"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil || st.Reserved == nil {
		t.Fatalf("/sequoia/v1/status = %d %s: %v", code, body, err)
	}
	r := st.Reserved
	if r.Quiet != "1h0m0s" || r.Functions != 1 || len(r.List) != 1 {
		t.Fatalf("reserved_caps = %+v, want capped alone", r)
	}
	c := r.List[0]
	// The throttled call was alone in flight: what the function may run
	// is the floor, 1.
	if c.Function != "capped" || c.Cap != 1 || c.Learned != 1 ||
		c.ThrottledAt.IsZero() || !c.ChangedAt.Equal(c.ThrottledAt) || c.ThrottledAt.After(time.Now()) {
		t.Errorf("capped: %+v, want a cap of 1 learned at its throttle", c)
	}
}

// TestStatusPolicySnapshot: /sequoia/v1/status shows the live snapshot
// the policies read, here with a function's invocations held in flight,
// in the shape of input.snapshot: it makes an input document for
// `sequoia policy eval` as it is; and it is refreshed.
func TestStatusPolicySnapshot(t *testing.T) {
	_, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 50})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=20", "SEQUOIA_POLICY_REFRESH=20ms",
		"SEQUOIA_ADAPTIVE_INITIAL=0") // the limit starts at the ceiling, 20
	var wg sync.WaitGroup
	defer wg.Wait()
	defer g.openAll()
	for i := range 3 {
		wg.Go(func() {
			resp, err := http.Post("http://"+s.dataLn.Addr().String()+"/2015-03-31/functions/slow/invocations", "application/json",
				strings.NewReader(fmt.Sprintf(`{"label":"slow%d","hold":true}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	type status struct {
		Snapshot *struct {
			Taken     time.Time       `json:"taken_at"`
			Functions int             `json:"functions"`
			Raw       json.RawMessage `json:"snapshot"`
		} `json:"policy_snapshot"`
	}
	var st status
	var snap policy.Snapshot
	get := func() {
		st = status{}
		_, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil || st.Snapshot == nil {
			t.Fatalf("status %s: no policy_snapshot (%v)", body, err)
		}
		doc := `{"function":"slow","tenant":"t","type":"sync","snapshot":` + string(st.Snapshot.Raw) + `}`
		var err error
		if _, snap, err = policy.ParseDocument([]byte(doc)); err != nil {
			t.Fatalf("policy_snapshot.snapshot is not an input.snapshot: %v\n%s", err, st.Snapshot.Raw)
		}
	}
	// The three calls stay held at the platform until the test ends: the
	// snapshot shows them once a refresh has seen them.
	eventually(t, "a snapshot with slow's 3 invocations in flight", func() bool {
		get()
		return snap.Functions["slow"].InFlight == 3
	})
	if snap.InFlight != 3 || snap.Limit != 20 || st.Snapshot.Functions != 1 {
		t.Errorf("policy_snapshot: %d functions, %s; want slow with 3 in flight of 20", st.Snapshot.Functions, st.Snapshot.Raw)
	}
	// It is live: a later status shows a later snapshot, none from the
	// future.
	taken := st.Snapshot.Taken
	if taken.After(time.Now()) {
		t.Errorf("snapshot taken at %v, after now", taken)
	}
	eventually(t, "a refreshed snapshot", func() bool { get(); return st.Snapshot.Taken.After(taken) })
}

func TestAdminProfiling(t *testing.T) {
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_ADMIN_PPROF=true")
	code, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/debug/pprof/goroutine?debug=1")
	if code != 200 || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine = %d %.80q", code, body)
	}
}

// TestRunStopsRightAfterStart: a server cancelled as soon as it runs
// (SIGTERM during start-up) stops, whether or not its data listener had
// begun to serve.
func TestRunStopsRightAfterStart(t *testing.T) {
	_, addr := startEmulator(t, emulator.Config{Limit: 4})
	for range 20 {
		cfg, err := config.LoadFrom([]string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0",
			"SEQUOIA_STATE_DIR=" + t.TempDir(), "SEQUOIA_BACKEND_URL=http://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		s, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run: %v", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("Run did not return within a minute of its context ending")
		}
	}
}
