package emulator

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// start serves an emulator on loopback for the test; prepare, if given, runs
// before serving (to replace the clock).
func start(t *testing.T, cfg Config, prepare ...func(*Emulator)) (*Emulator, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg)
	for _, p := range prepare {
		p(e)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	t.Cleanup(func() {
		if err := e.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e, "http://" + ln.Addr().String()
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends one request; headers come as name, value pairs.
func do(t *testing.T, method, url, body string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}
}

func wantStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status = %d, want %d; body %s", r.status, want, r.body)
	}
}

// eventually waits for cond, for background work that has no reply to wait on.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestOpenWhiskBlocking(t *testing.T) {
	e, base := start(t, Config{})
	r := do(t, "POST", base+"/api/v1/namespaces/guest/actions/tools/hello?blocking=true",
		`{"x":1}`, HeaderChainID, "chain-7")
	wantStatus(t, r, 200)
	if got := r.header.Get(HeaderColdStart); got != "1" {
		t.Errorf("%s = %q, want 1", HeaderColdStart, got)
	}
	if got := r.header.Get(HeaderChainID); got != "chain-7" {
		t.Errorf("chain id echoed = %q", got)
	}
	var act struct {
		ActivationID string `json:"activationId"`
		Namespace    string `json:"namespace"`
		Name         string `json:"name"`
		Duration     *int64 `json:"duration"`
		Response     struct {
			Status  string          `json:"status"`
			Success bool            `json:"success"`
			Result  json.RawMessage `json:"result"`
		} `json:"response"`
	}
	if err := json.Unmarshal(r.body, &act); err != nil {
		t.Fatalf("activation %s: %v", r.body, err)
	}
	if !hex32.MatchString(act.ActivationID) || act.Namespace != "guest/tools" || act.Name != "hello" ||
		act.Duration == nil || act.Response.Status != "success" || !act.Response.Success {
		t.Errorf("activation = %+v", act)
	}
	var res map[string]any
	if err := json.Unmarshal(act.Response.Result, &res); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"function": "guest/tools/hello", "instance": 1.0, "cold": true,
		"chain_id": "chain-7", "input": map[string]any{"x": 1.0}}
	if got, _ := json.Marshal(res); string(got) != mustJSON(want) {
		t.Errorf("result = %s, want %s", got, mustJSON(want))
	}

	// result=true: the result alone, and now warm on the same instance.
	r = do(t, "POST", base+"/api/v1/namespaces/guest/actions/tools/hello?blocking=true&result=true", "not json")
	wantStatus(t, r, 200)
	m := r.json(t)
	if m["function"] != "guest/tools/hello" || m["cold"] != false || m["instance"] != 1.0 || m["input"] != nil || m["chain_id"] != "" {
		t.Errorf("result = %v", m)
	}
	if r.header.Get(HeaderColdStart) != "" {
		t.Errorf("warm call marked cold")
	}
	s := e.Stats()
	if s.Invocations != 2 || s.Completed != 2 || s.ColdStarts != 1 || s.InFlight != 0 {
		t.Errorf("stats = %+v", s.Counters)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestOpenWhiskNonBlocking(t *testing.T) {
	e, base := start(t, Config{})
	r := do(t, "POST", base+"/api/v1/namespaces/guest/actions/slow", `{"exec_ms":60000}`)
	wantStatus(t, r, 202)
	if id, _ := r.json(t)["activationId"].(string); !hex32.MatchString(id) {
		t.Errorf("activationId = %q", id)
	}
	// The slot is taken before the 202 is written.
	if got := e.Stats().InFlight; got != 1 {
		t.Errorf("in_flight = %d, want 1", got)
	}
	eventually(t, "the background invocation to start", func() bool { return e.Stats().Invocations == 1 })
	if got := e.Stats().Functions["guest/slow"].InFlight; got != 1 {
		t.Errorf("function in_flight = %d, want 1", got)
	}
}

func TestWebAction(t *testing.T) {
	_, base := start(t, Config{})
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/api/v1/web/guest/default/hello.json", "guest/hello"},
		{"POST", "/api/v1/web/guest/tools/hello.http/extra/path", "guest/tools/hello"},
		{"PUT", "/api/v1/web/guest/tools/v1.2", "guest/tools/v1.2"},
	} {
		r := do(t, tc.method, base+tc.path, "")
		wantStatus(t, r, 200)
		if got := r.json(t)["function"]; got != tc.want {
			t.Errorf("%s %s: function = %v, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestLambda(t *testing.T) {
	e, base := start(t, Config{})
	url := base + "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:resize:prod/invocations"
	r := do(t, "POST", url, `{"k":"v"}`)
	wantStatus(t, r, 200)
	if got := r.header.Get("X-Amz-Executed-Version"); got != "$LATEST" {
		t.Errorf("X-Amz-Executed-Version = %q", got)
	}
	if m := r.json(t); m["function"] != "resize" || m["cold"] != true {
		t.Errorf("result = %v", m)
	}

	r = do(t, "POST", base+"/2015-03-31/functions/resize/invocations?Qualifier=7", "", "X-Amz-Invocation-Type", "RequestResponse")
	wantStatus(t, r, 200)
	if got := r.header.Get("X-Amz-Executed-Version"); got != "7" {
		t.Errorf("X-Amz-Executed-Version = %q, want 7", got)
	}
	if m := r.json(t); m["cold"] != false {
		t.Errorf("second call not warm: %v", m)
	}

	r = do(t, "POST", base+"/2015-03-31/functions/resize/invocations", "", "X-Amz-Invocation-Type", "DryRun")
	wantStatus(t, r, 204)

	r = do(t, "POST", base+"/2015-03-31/functions/resize/invocations", `{"exec_ms":60000}`, "X-Amz-Invocation-Type", "Event")
	wantStatus(t, r, 202)
	if len(r.body) != 0 {
		t.Errorf("Event body = %q, want empty", r.body)
	}
	if got := e.Stats().InFlight; got != 1 {
		t.Errorf("in_flight after Event = %d, want 1", got)
	}
	eventually(t, "the Event invocation to start", func() bool { return e.Stats().Invocations == 3 })
}

func TestHTTP(t *testing.T) {
	_, base := start(t, Config{})
	r := do(t, "GET", base+"/thumbnail/a/b?x=1", "")
	wantStatus(t, r, 200)
	if m := r.json(t); m["function"] != "thumbnail" {
		t.Errorf("result = %v", m)
	}
	r = do(t, "POST", base+"/", `[1,2]`, "Host", "greeter.default.example.com")
	wantStatus(t, r, 200)
	if m := r.json(t); m["function"] != "greeter" || mustJSON(m["input"]) != "[1,2]" {
		t.Errorf("result = %v", m)
	}
}

func TestFailure(t *testing.T) {
	e, base := start(t, Config{})
	body := `{"fail":true}`

	r := do(t, "POST", base+"/api/v1/namespaces/guest/actions/f?blocking=true", body)
	wantStatus(t, r, 502)
	var act struct {
		Response struct {
			Status  string         `json:"status"`
			Success bool           `json:"success"`
			Result  map[string]any `json:"result"`
		} `json:"response"`
	}
	if err := json.Unmarshal(r.body, &act); err != nil {
		t.Fatal(err)
	}
	if act.Response.Status != "application error" || act.Response.Success || act.Response.Result["error"] == nil {
		t.Errorf("activation response = %+v", act.Response)
	}

	r = do(t, "POST", base+"/2015-03-31/functions/f/invocations", body)
	wantStatus(t, r, 200)
	if got := r.header.Get("X-Amz-Function-Error"); got != "Unhandled" {
		t.Errorf("X-Amz-Function-Error = %q", got)
	}
	if m := r.json(t); m["errorType"] != "Error" || m["errorMessage"] == nil {
		t.Errorf("lambda error body = %v", m)
	}

	r = do(t, "POST", base+"/f", body)
	wantStatus(t, r, 500)
	if m := r.json(t); m["error"] == nil {
		t.Errorf("http error body = %v", m)
	}
	if s := e.Stats(); s.Errors != 3 || s.Completed != 3 || s.Invocations != 3 {
		t.Errorf("stats = %+v", s.Counters)
	}
}

// TestThrottle fills the account with background invocations, then checks
// every shape's refusal.
func TestThrottle(t *testing.T) {
	e, base := start(t, Config{Limit: 2})
	hold := `{"exec_ms":60000}`
	wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/guest/actions/hold", hold), 202)
	wantStatus(t, do(t, "POST", base+"/2015-03-31/functions/hold/invocations", hold, "X-Amz-Invocation-Type", "Event"), 202)

	r := do(t, "POST", base+"/api/v1/namespaces/guest/actions/other?blocking=true", "")
	wantStatus(t, r, 429)
	m := r.json(t)
	if m["error"] != "Too many concurrent requests in flight (count: 2, allowed: 2)." || !hex32.MatchString(m["code"].(string)) {
		t.Errorf("openwhisk throttle = %s", r.body)
	}

	r = do(t, "GET", base+"/api/v1/web/guest/default/other", "")
	wantStatus(t, r, 429)

	r = do(t, "POST", base+"/2015-03-31/functions/other/invocations", "")
	wantStatus(t, r, 429)
	if got := r.header.Get("X-Amzn-ErrorType"); got != "TooManyRequestsException" {
		t.Errorf("X-Amzn-ErrorType = %q", got)
	}
	if got := r.header.Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After = %q", got)
	}
	if got, want := string(r.body), `{"Reason":"ConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`; got != want {
		t.Errorf("lambda throttle body = %s, want %s", got, want)
	}

	r = do(t, "POST", base+"/other", "")
	wantStatus(t, r, 503)
	if got := string(r.body); got != "pending request queue full" {
		t.Errorf("http throttle body = %q", got)
	}

	// Warm-ups are throttled like anything else.
	wantStatus(t, do(t, "POST", base+"/other", "", HeaderWarmup, "1"), 503)

	s := e.Stats()
	if s.Throttles != 5 || s.InFlight != 2 || s.PeakConcurrency != 2 || s.Warmups != 0 {
		t.Errorf("stats = %+v", s.Counters)
	}
	if got := s.Functions["other"].Throttles; got != 3 {
		t.Errorf("function other throttles = %d, want 3", got)
	}
}

func TestRatePerMinute(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 10, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e, base := start(t, Config{RatePerMinute: 2}, func(e *Emulator) { e.now = clock })

	url := base + "/api/v1/namespaces/guest/actions/a?blocking=true"
	wantStatus(t, do(t, "POST", url, ""), 200)
	wantStatus(t, do(t, "POST", base+"/api/v1/web/guest/default/b", ""), 200)
	r := do(t, "POST", url, "")
	wantStatus(t, r, 429)
	if m := r.json(t); m["error"] != "Too many requests in the last minute (count: 2, allowed: 2)." {
		t.Errorf("rate throttle = %s", r.body)
	}
	// Another namespace, and the other shapes, have their own budget or none.
	wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/other/actions/a?blocking=true", ""), 200)
	wantStatus(t, do(t, "POST", base+"/a", ""), 200)

	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	wantStatus(t, do(t, "POST", url, ""), 200)

	if s := e.Stats(); s.RateThrottles != 1 || s.Throttles != 0 || s.Invocations != 5 {
		t.Errorf("stats = %+v", s.Counters)
	}
}

func TestColdThenWarm(t *testing.T) {
	e, base := start(t, Config{ColdStart: time.Millisecond})
	var instances []any
	for i, wantCold := range []bool{true, false, false} {
		r := do(t, "POST", base+"/fn", "")
		wantStatus(t, r, 200)
		m := r.json(t)
		if m["cold"] != wantCold || (r.header.Get(HeaderColdStart) == "1") != wantCold {
			t.Errorf("call %d: cold = %v, header %q, want %v", i, m["cold"], r.header.Get(HeaderColdStart), wantCold)
		}
		instances = append(instances, m["instance"])
	}
	if instances[0] != instances[1] || instances[1] != instances[2] {
		t.Errorf("instances = %v, want one reused instance", instances)
	}
	s := e.Stats()
	if s.Invocations != 3 || s.ColdStarts != 1 || s.Functions["fn"].WarmInstances != 1 {
		t.Errorf("stats = %+v, fn = %+v", s.Counters, s.Functions["fn"])
	}
}

// TestLiveInstancesCountsBusy: an instance running an invocation is live
// but not warm, and one whose invocation is aborted by Shutdown is neither.
func TestLiveInstancesCountsBusy(t *testing.T) {
	e, base := start(t, Config{})
	const hold = "/api/v1/namespaces/guest/actions/hold"
	wantStatus(t, do(t, "POST", base+hold+"?blocking=true", `{"exec_ms":0.5}`), 200)
	if fs := e.Stats().Functions["guest/hold"]; fs.WarmInstances != 1 || fs.LiveInstances != 1 {
		t.Fatalf("after one call: warm %d, live %d; want 1, 1", fs.WarmInstances, fs.LiveInstances)
	}
	for range 2 {
		wantStatus(t, do(t, "POST", base+hold, `{"exec_ms":60000}`), 202)
	}
	// An invocation is in flight from its admission, before it takes (or
	// cold-starts) its instance: wait for both instances, up to a minute.
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if fs := e.Stats().Functions["guest/hold"]; fs.InFlight >= 2 && fs.LiveInstances >= 2 {
			break
		}
	}
	if fs := e.Stats().Functions["guest/hold"]; fs.WarmInstances != 0 || fs.LiveInstances != 2 {
		t.Errorf("two running: warm %d, live %d; want 0, 2", fs.WarmInstances, fs.LiveInstances)
	}
	if err := e.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if fs := e.Stats().Functions["guest/hold"]; fs.LiveInstances != 0 || fs.InFlight != 0 {
		t.Errorf("after Shutdown aborted both: live %d, in flight %d; want 0, 0", fs.LiveInstances, fs.InFlight)
	}
}

func TestKeepAliveExpiry(t *testing.T) {
	e, base := start(t, Config{KeepAlive: 20 * time.Millisecond})
	wantStatus(t, do(t, "POST", base+"/fn", ""), 200)
	time.Sleep(60 * time.Millisecond)
	if got := e.Stats().Functions["fn"].WarmInstances; got != 0 {
		t.Errorf("warm_instances after keep-alive = %d, want 0", got)
	}
	r := do(t, "POST", base+"/fn", "")
	if m := r.json(t); m["cold"] != true || m["instance"] != 2.0 {
		t.Errorf("after expiry: %v, want a cold new instance", m)
	}
	if got := e.Stats().ColdStarts; got != 2 {
		t.Errorf("cold_starts = %d, want 2", got)
	}
}

func TestWarmups(t *testing.T) {
	e, base := start(t, Config{ColdStart: time.Millisecond, ExecTime: time.Millisecond})
	r := do(t, "POST", base+"/api/v1/namespaces/guest/actions/w?blocking=true&result=true", "", HeaderWarmup, "1")
	wantStatus(t, r, 200)
	if m := r.json(t); m["warmup"] != true || m["cold"] != true {
		t.Errorf("warm-up result = %v", m)
	}
	r = do(t, "POST", base+"/2015-03-31/functions/l/invocations", `{"sequoia_warmup":true}`)
	wantStatus(t, r, 200)

	s := e.Stats()
	if s.Warmups != 2 || s.WarmupColdStarts != 2 || s.Invocations != 0 || s.ColdStarts != 0 || s.Completed != 0 {
		t.Errorf("after warm-ups: %+v", s.Counters)
	}
	if s.Functions["guest/w"].WarmInstances != 1 || s.Functions["l"].WarmInstances != 1 {
		t.Errorf("warm instances: %+v", s.Functions)
	}

	// The warm-up left an instance behind: the real call finds it warm.
	r = do(t, "POST", base+"/api/v1/namespaces/guest/actions/w?blocking=true&result=true", "")
	if m := r.json(t); m["cold"] != false || m["warmup"] != nil {
		t.Errorf("real call after warm-up = %v", m)
	}
	// A warm-up that finds an idle instance pays nothing.
	do(t, "POST", base+"/2015-03-31/functions/l/invocations", "", HeaderWarmup, "true")
	s = e.Stats()
	if s.Invocations != 1 || s.ColdStarts != 0 || s.Warmups != 3 || s.WarmupColdStarts != 2 {
		t.Errorf("final: %+v", s.Counters)
	}
}

func TestFailWarmups(t *testing.T) {
	e, base := start(t, Config{FailWarmups: true})
	wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/guest/actions/w?blocking=true", "", HeaderWarmup, "1"), 502)
	r := do(t, "POST", base+"/2015-03-31/functions/w/invocations", `{"sequoia_warmup":true}`)
	wantStatus(t, r, 200)
	if r.header.Get("X-Amz-Function-Error") != "Unhandled" {
		t.Errorf("lambda warm-up failure not flagged")
	}
	wantStatus(t, do(t, "POST", base+"/w", "", HeaderWarmup, "1"), 500)
	s := e.Stats()
	if s.Warmups != 3 || s.WarmupErrors != 3 || s.WarmupColdStarts != 0 || s.Errors != 0 || s.InFlight != 0 {
		t.Errorf("stats = %+v", s.Counters)
	}
	for name, f := range s.Functions {
		if f.WarmInstances != 0 {
			t.Errorf("%s: failed warm-up left %d warm instances", name, f.WarmInstances)
		}
	}
}

func TestResetEndpoint(t *testing.T) {
	e, base := start(t, Config{})
	wantStatus(t, do(t, "POST", base+"/fn", ""), 200)
	wantStatus(t, do(t, "POST", base+"/fn", "", HeaderWarmup, "1"), 200)
	wantStatus(t, do(t, "GET", base+"/emulator/reset", ""), 405)

	r := do(t, "POST", base+"/emulator/reset", "")
	wantStatus(t, r, 200)
	var s Stats
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatal(err)
	}
	if s.Counters != (Counters{}) || s.Functions["fn"].WarmInstances != 0 {
		t.Errorf("after reset: %+v %+v", s.Counters, s.Functions)
	}
	if m := do(t, "POST", base+"/fn", "").json(t); m["cold"] != true {
		t.Errorf("after reset the call was warm: %v", m)
	}
	if got := e.Stats().Invocations; got != 1 {
		t.Errorf("invocations = %d, want 1", got)
	}
}

func TestStatsJSON(t *testing.T) {
	_, base := start(t, Config{})
	do(t, "POST", base+"/fn", "")
	r := do(t, "GET", base+"/emulator/stats", "")
	wantStatus(t, r, 200)
	m := r.json(t)
	keys := []string{"invocations", "completed", "cold_starts", "warmups", "warmup_cold_starts", "throttles",
		"rate_throttles", "in_flight", "peak_concurrency", "errors", "warmup_errors", "limit", "functions"}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("stats JSON lacks %q: %s", k, r.body)
		}
	}
	fn, _ := m["functions"].(map[string]any)["fn"].(map[string]any)
	for _, k := range append(keys[:11:11], "warm_instances", "live_instances") {
		if _, ok := fn[k]; !ok {
			t.Errorf("function stats lack %q: %v", k, fn)
		}
	}
}

func TestSetLimitAtRuntime(t *testing.T) {
	e, base := start(t, Config{Limit: 1})
	wantStatus(t, do(t, "POST", base+"/api/v1/namespaces/guest/actions/hold", `{"exec_ms":60000}`), 202)
	wantStatus(t, do(t, "POST", base+"/fn", ""), 503)

	r := do(t, "POST", base+"/emulator/config?limit=2&exec_ms=0.5&cold_start_ms=0&keepalive_ms=60000", "")
	wantStatus(t, r, 200)
	var got Settings
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	if want := (Settings{Limit: 2, ExecMs: 0.5, KeepAliveMs: 60000, Mode: "account"}); got != want {
		t.Errorf("settings = %+v, want %+v", got, want)
	}
	wantStatus(t, do(t, "POST", base+"/fn", ""), 200)

	e.SetLimit(1)
	wantStatus(t, do(t, "POST", base+"/fn", ""), 503)

	for _, q := range []string{"limit=0", "limit=x", "exec_ms=-1", "keepalive_ms=0", "bogus=1", "limit=5&exec_ms=nope"} {
		r := do(t, "POST", base+"/emulator/config?"+q, "")
		wantStatus(t, r, 400)
	}
	if got := e.Config().Limit; got != 1 {
		t.Errorf("a rejected config changed the limit to %d", got)
	}
	if s := e.Stats(); s.Limit != 1 || s.Throttles != 2 {
		t.Errorf("stats = %+v", s)
	}
}

// TestConcurrentBurst checks the accounting under contention: every request
// is either served or throttled, and the peak never passes the limit.
func TestConcurrentBurst(t *testing.T) {
	const limit, n = 4, 24
	e, base := start(t, Config{Limit: limit, ExecTime: 20 * time.Millisecond})
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			res, err := http.Post(base+"/burst", "application/json", nil)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			codes[i] = res.StatusCode
		})
	}
	wg.Wait()
	var ok, throttled int64
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			throttled++
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	s := e.Stats()
	if ok+throttled != n || s.Invocations != ok || s.Completed != ok || s.Throttles != throttled {
		t.Errorf("ok=%d throttled=%d stats=%+v", ok, throttled, s.Counters)
	}
	if s.PeakConcurrency > limit || s.PeakConcurrency < 1 || s.InFlight != 0 {
		t.Errorf("peak=%d in_flight=%d, limit %d", s.PeakConcurrency, s.InFlight, limit)
	}
}

// TestShutdownEndsRunningInvocations: a long blocking call must not hold
// Shutdown up.
func TestShutdownEndsRunningInvocations(t *testing.T) {
	e, base := start(t, Config{})
	done := make(chan int, 1)
	go func() {
		res, err := http.Post(base+"/slow", "application/json", strings.NewReader(`{"exec_ms":600000}`))
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	eventually(t, "the slow call to start", func() bool { return e.Stats().Invocations == 1 })
	if err := e.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 503 && code != 0 {
		t.Errorf("aborted call got %d, want 503 or a closed connection", code)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	_, base := start(t, Config{})
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/api/v1/namespaces/guest/triggers/t", 404},
		{"GET", "/api/v1/namespaces/guest/actions/a", 405},
		{"POST", "/2015-03-31/functions/f/configuration", 404},
		{"GET", "/2015-03-31/functions/f/invocations", 405},
		{"GET", "/emulator/nope", 404},
		{"GET", "/emulator/config", 200},
	} {
		if r := do(t, tc.method, base+tc.path, ""); r.status != tc.want {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, r.status, tc.want)
		}
	}
	r := do(t, "POST", base+"/2015-03-31/functions/f/invocations", "", "X-Amz-Invocation-Type", "Sometimes")
	wantStatus(t, r, 400)
}

func TestStartAndHandler(t *testing.T) {
	e, addr, err := Start(Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", "http://"+addr+"/fn", "")
	wantStatus(t, r, 200)
	if e.Handler() == nil {
		t.Error("nil handler")
	}
	if err := e.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := e.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// TestBodyLimitIsLambdas: the emulator takes a payload up to Lambda's 6 MiB
// synchronous limit, as sequoia's SEQUOIA_MAX_BODY_BYTES default does, and
// refuses one byte more with 413.
func TestBodyLimitIsLambdas(t *testing.T) {
	_, base := start(t, Config{ExecTime: time.Millisecond, ColdStart: 0})
	url := base + "/2015-03-31/functions/big/invocations"
	body := func(n int) string {
		const head, tail = `{"pad":"`, `"}`
		return head + strings.Repeat("a", n-len(head)-len(tail)) + tail
	}
	wantStatus(t, do(t, "POST", url, body(MaxBodyBytes)), 200)

	// One byte more is refused from its Content-Length, before the body
	// is sent (a client still writing would see the connection close).
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /2015-03-31/functions/big/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", MaxBodyBytes+1)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 413 || res.Header.Get("X-Amzn-ErrorType") != "RequestTooLargeException" {
		t.Errorf("a body of %d bytes: status %d, %q, want 413 RequestTooLargeException", MaxBodyBytes+1, res.StatusCode, res.Header.Get("X-Amzn-ErrorType"))
	}
}
