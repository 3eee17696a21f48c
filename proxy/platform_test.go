package proxy

import (
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/qos/adaptive"
)

// answer is one scripted platform response.
type answer struct {
	status  int
	headers map[string]string
	body    string
}

// scripted is a platform stand-in that answers each function's calls from
// its script in order, repeating the last answer.
type scripted struct {
	addr   string
	mu     sync.Mutex
	script map[string][]answer
	calls  map[string]int
	paths  []string
	types  []string // X-Amz-Invocation-Type of each call
}

func startScripted(t *testing.T, script map[string][]answer) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{addr: ln.Addr().String(), script: script, calls: map[string]int{}}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Request.Header.RequestURI())
		fn := path[strings.LastIndexByte(strings.TrimSuffix(path, "/invocations"), '/')+1:]
		fn, _, _ = strings.Cut(fn, "?")
		fn = strings.TrimSuffix(fn, "/invocations")
		s.mu.Lock()
		s.paths = append(s.paths, path)
		s.types = append(s.types, string(ctx.Request.Header.Peek("X-Amz-Invocation-Type")))
		n := s.calls[fn]
		s.calls[fn]++
		a := answer{status: 200, body: `{}`}
		if sc := s.script[fn]; len(sc) > 0 {
			a = sc[min(n, len(sc)-1)]
		}
		s.mu.Unlock()
		for k, v := range a.headers {
			ctx.Response.Header.Set(k, v)
		}
		ctx.SetStatusCode(a.status)
		ctx.SetBodyString(a.body)
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return s
}

func (s *scripted) count(fn string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[fn]
}

// fakeFeedback counts what the adaptive limit hears.
type fakeFeedback struct {
	throttles, successes, holds, latencies atomic.Int64
}

func (f *fakeFeedback) InFlight() int { return 1 }
func (f *fakeFeedback) OnThrottle()   { f.throttles.Add(1) }
func (f *fakeFeedback) OnSuccess(fn string, inFlight int, sent time.Time) {
	f.successes.Add(1)
	if !sent.IsZero() {
		f.latencies.Add(1)
	}
}
func (f *fakeFeedback) Hold(time.Duration) { f.holds.Add(1) }
func (f *fakeFeedback) Limit() int         { return 10 }

func startRetryProxy(t *testing.T, kind invocation.Platform, url string, limit int, rc RetryConfig, fb Feedback) (string, *qos.Scheduler) {
	t.Helper()
	addr, s, _ := startRetryProxyP(t, kind, url, limit, rc, fb)
	return addr, s
}

func startRetryProxyP(t *testing.T, kind invocation.Platform, url string, limit int, rc RetryConfig, fb Feedback) (string, *qos.Scheduler, *Proxy) {
	t.Helper()
	return startProxyConfig(t, url, limit, Config{Platform: kind, MaxBodyBytes: 1 << 20, Retry: rc, Feedback: fb})
}

// startProxyConfig starts a proxy with cfg in front of url, with limit
// worker slots, and returns its address, scheduler and proxy.
func startProxyConfig(t *testing.T, url string, limit int, cfg Config) (string, *qos.Scheduler, *Proxy) {
	t.Helper()
	s := qos.New(qos.Config{Limit: limit, QueueCapacity: 100, QueueTimeout: time.Minute})
	addr, p := startProxySchedConfig(t, url, s, cfg)
	return addr, s, p
}

// startProxyWith starts a proxy with cfg and the scheduler s in front of
// url and returns its address.
func startProxyWith(t *testing.T, url string, s *qos.Scheduler, cfg Config) string {
	t.Helper()
	addr, _ := startProxySchedConfig(t, url, s, cfg)
	return addr
}

func startProxySchedConfig(t *testing.T, url string, s *qos.Scheduler, cfg Config) (string, *Proxy) {
	t.Helper()
	up, err := platform.New(platform.Config{URL: url, Kind: cfg.Platform, Timeout: 10 * time.Second, MaxConns: 64})
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, s, up, metrics.New(100), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = p.srv.Shutdown() })
	return ln.Addr().String(), p
}

func lambdaInvoke(fn string, headers ...string) string {
	return "POST /2015-03-31/functions/" + fn + "/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		strings.Join(headers, "") + "Content-Length: 2\r\n\r\n{}"
}

func owInvoke(fn string, headers ...string) string {
	return "POST /api/v1/namespaces/guest/actions/" + fn + "?blocking=true HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		strings.Join(headers, "") + "Content-Length: 2\r\n\r\n{}"
}

var (
	lambdaThrottle = answer{429, map[string]string{"X-Amzn-ErrorType": "TooManyRequestsException"},
		`{"Reason":"ConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`}
	lambdaReserved = answer{429, map[string]string{"X-Amzn-ErrorType": "TooManyRequestsException"},
		`{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`}
	lambdaRate = answer{429, map[string]string{"X-Amzn-ErrorType": "TooManyRequestsException"},
		`{"Reason":"FunctionInvocationRateLimitExceeded","Type":"User","message":"Rate Exceeded."}`}
	owThrottle    = answer{429, nil, `{"error":"Too many concurrent requests in flight (count: 3, allowed: 2).","code":"x"}`}
	owRate        = answer{429, nil, `{"error":"Too many requests in the last minute (count: 61, allowed: 60).","code":"x"}`}
	ok200         = answer{200, nil, `{"ok":true}`}
	unavailable   = answer{503, nil, `{"error":"service unavailable"}`}
	functionError = answer{200, map[string]string{"X-Amz-Function-Error": "Unhandled"}, `{"errorMessage":"boom"}`}
	actionError   = answer{502, nil, `{"error":"The action did not produce a valid response."}`}
)

// TestRetryRules: what is retried, how often, and what the adaptive limit
// hears.
func TestRetryRules(t *testing.T) {
	b := startScripted(t, map[string][]answer{
		"throttled":  {lambdaThrottle, lambdaThrottle, ok200},
		"rated":      {lambdaRate, ok200},
		"reserved":   {lambdaReserved, ok200},
		"fnerror":    {functionError, ok200},
		"always":     {lambdaThrottle},
		"unavail":    {unavailable, ok200},
		"unavailkey": {unavailable, ok200},
		"fnheaders": {{200, map[string]string{"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "3",
			"X-Amz-Log-Result": "bG9ncw=="}, `{"errorMessage":"boom"}`}},
	})
	fb := &fakeFeedback{}
	addr, _ := startRetryProxy(t, invocation.Lambda, "http://"+b.addr, 4,
		RetryConfig{MaxAttempts: 4, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, fb)
	for _, tt := range []struct {
		fn, header       string
		status, calls    int
		throttles, succs int64
	}{
		{"throttled", "", 200, 3, 2, 1},                         // concurrency throttles: retried
		{"rated", "", 200, 2, 0, 1},                             // rate throttles: retried, no concurrency signal
		{"fnerror", "", 200, 1, 0, 1},                           // function errors: never
		{"always", "", 429, 4, 4, 0},                            // MaxAttempts in all
		{"unavail", "", 503, 1, 0, 0},                           // a POST without Idempotency-Key: not after a 503
		{"unavailkey", "Idempotency-Key: k1\r\n", 200, 2, 0, 1}, // with one: retried
	} {
		t0, s0 := fb.throttles.Load(), fb.successes.Load()
		resp := rawRequest(t, addr, lambdaInvoke(tt.fn, tt.header))
		if resp.StatusCode() != tt.status || b.count(tt.fn) != tt.calls {
			t.Errorf("%s: status %d after %d calls, want %d after %d", tt.fn, resp.StatusCode(), b.count(tt.fn), tt.status, tt.calls)
		}
		if th, su := fb.throttles.Load()-t0, fb.successes.Load()-s0; th != tt.throttles || su != tt.succs {
			t.Errorf("%s: feedback %d throttles %d successes, want %d %d", tt.fn, th, su, tt.throttles, tt.succs)
		}
	}
	// Lambda's result headers pass through.
	resp := rawRequest(t, addr, lambdaInvoke("fnheaders"))
	for k, want := range map[string]string{"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "3", "X-Amz-Log-Result": "bG9ncw=="} {
		if got := string(resp.Header.Peek(k)); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

// TestRetryRulesOpenWhisk: OpenWhisk's two 429s and its 502.
func TestRetryRulesOpenWhisk(t *testing.T) {
	b := startScripted(t, map[string][]answer{
		"conc":   {owThrottle, ok200},
		"rate":   {owRate, ok200},
		"action": {actionError, ok200},
		"bg":     {{202, nil, `{"activationId":"0123"}`}},
	})
	fb := &fakeFeedback{}
	addr, _ := startRetryProxy(t, invocation.OpenWhisk, "http://"+b.addr, 4,
		RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, fb)
	for _, tt := range []struct {
		fn            string
		status, calls int
		throttles     int64
	}{
		{"conc", 200, 2, 1}, {"rate", 200, 2, 0}, {"action", 502, 1, 0}, {"bg", 202, 1, 0},
	} {
		t0 := fb.throttles.Load()
		resp := rawRequest(t, addr, owInvoke(tt.fn))
		if resp.StatusCode() != tt.status || b.count(tt.fn) != tt.calls || fb.throttles.Load()-t0 != tt.throttles {
			t.Errorf("%s: status %d, %d calls, %d throttles; want %d, %d, %d", tt.fn, resp.StatusCode(), b.count(tt.fn),
				fb.throttles.Load()-t0, tt.status, tt.calls, tt.throttles)
		}
	}
	if fb.holds.Load() != 1 {
		t.Errorf("%d background holds, want 1 (the 202)", fb.holds.Load())
	}
}

// TestRetryBudget: no retry would land past the invocation's budget.
func TestRetryBudget(t *testing.T) {
	b := startScripted(t, map[string][]answer{"always": {lambdaThrottle}})
	addr, _ := startRetryProxy(t, invocation.Lambda, "http://"+b.addr, 4,
		RetryConfig{BaseBackoff: time.Millisecond, MaxElapsed: time.Nanosecond}, nil)
	if resp := rawRequest(t, addr, lambdaInvoke("always")); resp.StatusCode() != 429 || b.count("always") != 1 {
		t.Errorf("status %d after %d calls, want the platform's 429 after 1", resp.StatusCode(), b.count("always"))
	}
	// The platform's throttle reaches the client as the platform sent it.
	resp := rawRequest(t, addr, lambdaInvoke("always"))
	if string(resp.Header.Peek("X-Amzn-ErrorType")) != "TooManyRequestsException" {
		t.Errorf("X-Amzn-ErrorType %q", resp.Header.Peek("X-Amzn-ErrorType"))
	}
}

// TestRetryReleasesSlot: a retry waits its backoff without its slot, so
// another invocation runs meanwhile even with a single slot. The backoff
// is a minute, longer than the test: the first client leaves during it.
func TestRetryReleasesSlot(t *testing.T) {
	b := startScripted(t, map[string][]answer{"first": {lambdaThrottle, ok200}})
	addr, sched, p := startRetryProxyP(t, invocation.Lambda, "http://"+b.addr, 1,
		RetryConfig{BaseBackoff: time.Minute, MaxBackoff: time.Minute, MaxElapsed: time.Hour}, nil)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, lambdaInvoke("first")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first call's slot given back during its backoff", func() bool {
		return b.count("first") == 1 && sched.InFlight() == 0
	})
	second := rawRequest(t, addr, lambdaInvoke("second"))
	if second.StatusCode() != 200 {
		t.Errorf("second: %d", second.StatusCode())
	}
	if n := b.count("first"); n != 1 {
		t.Errorf("first was retried (%d calls) before the second ran: the slot was held during the backoff", n)
	}
	// The first client leaves during its backoff: its request ends there,
	// not retried, holding nothing.
	c.Close()
	eventually(t, "the first request to end as its client left", func() bool {
		return requestsTotal(t, p, "first", "client_gone") == 1
	})
	if n := b.count("first"); n != 1 || sched.InFlight() != 0 || sched.Queued() != 0 {
		t.Errorf("first: %d calls; %d slots held, %d queued", n, sched.InFlight(), sched.Queued())
	}
}

// TestPathsNeverEscape: a function name with a dot segment or an encoded
// slash is refused, or reaches the platform under the invoke path it was
// routed by; never elsewhere.
func TestPathsNeverEscape(t *testing.T) {
	for _, tt := range []struct {
		platform invocation.Platform
		path     string
		prefix   string
	}{
		{invocation.Lambda, "/2015-03-31/functions/..%2F..%2Fadmin/invocations", "/2015-03-31/functions/"},
		{invocation.Lambda, "/2015-03-31/functions/a%2Fb/invocations", "/2015-03-31/functions/"},
		{invocation.Lambda, "/2015-03-31/functions/%2e%2e/invocations", "/2015-03-31/functions/"},
		{invocation.Lambda, "/2015-03-31/functions/../../admin/x/invocations", "/2015-03-31/functions/"},
		{invocation.OpenWhisk, "/api/v1/namespaces/guest/actions/..%2F..%2Fweb%2Fx", "/api/v1/namespaces/guest/actions/"},
		{invocation.OpenWhisk, "/api/v1/namespaces/guest/actions/%2e%2e", "/api/v1/namespaces/guest/actions/"},
		{invocation.OpenWhisk, "/api/v1/namespaces/guest/actions/p/..", "/api/v1/namespaces/guest/actions/"},
		{invocation.OpenWhisk, "/api/v1/namespaces//actions/x", "/api/v1/namespaces/"},
		{invocation.OpenWhisk, "/api/v1/namespaces/guest/actions/", "/api/v1/namespaces/guest/actions/"},
	} {
		b := startScripted(t, nil)
		addr, _ := startRetryProxy(t, tt.platform, "http://"+b.addr, 2, RetryConfig{MaxAttempts: 1}, nil)
		resp := rawRequest(t, addr, "POST "+tt.path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
		b.mu.Lock()
		paths := b.paths
		b.mu.Unlock()
		switch {
		case len(paths) == 0:
			if resp.StatusCode() != 400 && resp.StatusCode() != 404 {
				t.Errorf("%s: refused with %d, want 400 or 404", tt.path, resp.StatusCode())
			}
		case !strings.HasPrefix(paths[0], tt.prefix) || strings.Contains(paths[0], "..") ||
			strings.Contains(strings.ToLower(paths[0][len(tt.prefix):]), "%2f"):
			t.Errorf("%s reached the platform as %s", tt.path, paths[0])
		}
	}
}

func TestCheckRawPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/2015-03-31/functions/hello/invocations":              true,
		"/api/v1/namespaces/_/actions/a.b/c?blocking=true":     true,
		"/api/v1/web/guest/default/hello.json/a/...":           true,
		"/api/v1/namespaces/guest/actions/x?p=../..%2F":        true,
		"/2015-03-31/functions/arn%3Aaws%3Alambda/invocations": true,
		"/2015-03-31/functions/../x":                           false,
		"/a/./b":                                               false,
		"/a/%2e%2E/b":                                          false,
		"/a/.%2e":                                              false,
		"/a/b%2Fc":                                             false,
		"/a/b%2fc":                                             false,
		"/a/b%5Cc":                                             false,
		"/a/b\\c":                                              false,
		"/a/..":                                                false,
		"//fn":                                                 false,
		"/fn//x":                                               false,
		"/fn/x//":                                              false,
		"/fn/":                                                 true,
		"/":                                                    true,
		"/fn?next=//x":                                         true,
	} {
		if got := checkRawPath([]byte(path)) == nil; got != want {
			t.Errorf("checkRawPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func FuzzCheckRawPath(f *testing.F) {
	f.Add("/2015-03-31/functions/hello/invocations")
	f.Add("/a/%2e%2e/b")
	f.Fuzz(func(t *testing.T, path string) {
		if checkRawPath([]byte(path)) != nil {
			return
		}
		// Accepted: decoding and normalising keep the same segments
		// (only empty ones may collapse).
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?#") {
			return
		}
		var u fasthttp.URI
		u.SetPath(path)
		if got, want := segments(string(u.Path())), segments(path); got != want {
			t.Errorf("%q decodes to %q: %d segments, want %d", path, u.Path(), got, want)
		}
	})
}

func segments(p string) int {
	n := 0
	for _, s := range strings.Split(p, "/") {
		if s != "" {
			n++
		}
	}
	return n
}

// TestLambdaEvents: an Event is answered 202 at once, then delivered by
// sequoia as a synchronous call (here by the default in-process queue),
// retried on throttles until it runs or its maximum age passes; a function
// error is retried SEQUOIA_EVENT_MAX_RETRIES times (here none).
func TestLambdaEvents(t *testing.T) {
	// "never" is throttled, retried at once, then throttled with a
	// Retry-After of an hour, past its maximum age of a minute: it expires
	// after two calls however long the machine takes.
	hourLater := answer{429, map[string]string{"X-Amzn-ErrorType": "TooManyRequestsException", "Retry-After": "3600"}, lambdaThrottle.body}
	b := startScripted(t, map[string][]answer{
		"ev":     {lambdaThrottle, lambdaThrottle, ok200},
		"never":  {lambdaThrottle, hourLater},
		"broken": {functionError},
	})
	addr, sched, p := startRetryProxyP(t, invocation.Lambda, "http://"+b.addr, 2,
		RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Hour, EventMaxAge: time.Minute}, nil)
	for _, fn := range []string{"ev", "never", "broken"} {
		resp := rawRequest(t, addr, lambdaInvoke(fn, "X-Amz-Invocation-Type: Event\r\n"))
		if resp.StatusCode() != 202 || len(resp.Body()) != 0 {
			t.Errorf("%s: %d %q, want an empty 202", fn, resp.StatusCode(), resp.Body())
		}
	}
	p.MemoryEvents().Wait(nil)
	if n := b.count("ev"); n != 3 {
		t.Errorf("ev: %d calls, want 3 (two throttles, then delivered)", n)
	}
	if n := b.count("broken"); n != 1 {
		t.Errorf("broken: %d calls, want 1 (no retries configured)", n)
	}
	if n := b.count("never"); n != 2 {
		t.Errorf("never: %d calls, want 2: retried until its next try would pass its maximum age", n)
	}
	b.mu.Lock()
	for i, typ := range b.types {
		if typ != "RequestResponse" {
			t.Errorf("call %d (%s) sent as %q, want RequestResponse", i, b.paths[i], typ)
		}
	}
	b.mu.Unlock()
	for series, want := range map[string]float64{
		`sequoia_events_total{outcome="accepted"}`:                      3,
		`sequoia_events_total{outcome="delivered"}`:                     1,
		`sequoia_events_dead_lettered_total{reason="RetriesExhausted"}`: 1,
		`sequoia_events_dead_lettered_total{reason="EventAgeExceeded"}`: 1,
	} {
		if got := gathered(t, p.m.Registry(), series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if p.MemoryEvents().Pending() != 0 || sched.InFlight() != 0 {
		t.Errorf("%d events pending, %d slots held", p.MemoryEvents().Pending(), sched.InFlight())
	}

	// DryRun runs nothing and is forwarded at once; an unknown type is 400.
	if resp := rawRequest(t, addr, lambdaInvoke("dry", "X-Amz-Invocation-Type: DryRun\r\n")); resp.StatusCode() != 200 || b.count("dry") != 1 {
		t.Errorf("DryRun: %d, %d calls", resp.StatusCode(), b.count("dry"))
	}
	resp := rawRequest(t, addr, lambdaInvoke("odd", "X-Amz-Invocation-Type: Sometimes\r\n"))
	if resp.StatusCode() != 400 || string(resp.Header.Peek("X-Amzn-ErrorType")) != "InvalidParameterValueException" || b.count("odd") != 0 {
		t.Errorf("unknown type: %d %q, %d calls", resp.StatusCode(), resp.Header.Peek("X-Amzn-ErrorType"), b.count("odd"))
	}
}

// gathered returns the value of one series, written name{label="value"}
// (one label at most), from reg.
func gathered(t *testing.T, reg prometheus.Gatherer, series string) float64 {
	t.Helper()
	name, label, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			got := ""
			for _, l := range m.GetLabel() {
				got = l.GetName() + "=" + strconv.Quote(l.GetValue())
			}
			if got == label {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s", series)
	return 0
}

// eventually polls cond until it holds, failing t after a minute: the
// minute bounds no speed, it turns a hang into a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}

// requestsTotal reads sequoia_requests_total{function=fn,outcome=outcome}.
func requestsTotal(t *testing.T, p *Proxy, fn, outcome string) float64 {
	t.Helper()
	families, err := p.m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "sequoia_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if got["function"] == fn && got["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestOpenWhiskTenant(t *testing.T) {
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct{ ns, auth, want string }{
		{"guest", basic("uuid-1:key"), "guest"},
		{"_", basic("23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZ"), "_:23bc46b1-71f6-4ed5-8c54-816aa4f8c502"},
		{"_", "", "_"},
		{"_", "Bearer x", "_"},
		{"_", "Basic !!!", "_"},
		{"_", basic("nocolon"), "_"},
		{"_", basic(strings.Repeat("u", 200) + ":k"), "_:" + strings.Repeat("u", 200)},
	} {
		var h fasthttp.RequestHeader
		if tt.auth != "" {
			h.Set("Authorization", tt.auth)
		}
		if got := string(owTenant([]byte(tt.ns), &h, make([]byte, 0, 16))); got != tt.want {
			t.Errorf("owTenant(%q, %q) = %q, want %q", tt.ns, tt.auth, got, tt.want)
		}
		if got := string(h.Peek("Authorization")); got != tt.auth {
			t.Errorf("Authorization changed to %q", got)
		}
	}
}

// TestRetryChainDeadline: a retry that would land past the chain's
// deadline is not made; the same invocation without a deadline is retried.
func TestRetryChainDeadline(t *testing.T) {
	b := startScripted(t, map[string][]answer{"always": {lambdaThrottle}, "twice": {lambdaThrottle, ok200}})
	addr, _ := startRetryProxy(t, invocation.Lambda, "http://"+b.addr, 4,
		RetryConfig{BaseBackoff: 400 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}, nil)
	resp := rawRequest(t, addr, lambdaInvoke("always", "X-Sequoia-Deadline-Ms: 150\r\n"))
	if resp.StatusCode() != 429 || b.count("always") != 1 {
		t.Errorf("with a 150ms deadline: %d after %d calls, want 429 after 1", resp.StatusCode(), b.count("always"))
	}
	resp = rawRequest(t, addr, lambdaInvoke("twice"))
	if resp.StatusCode() != 200 || b.count("twice") != 2 {
		t.Errorf("without a deadline: %d after %d calls, want 200 after 2", resp.StatusCode(), b.count("twice"))
	}
}

// TestRatePacing: an OpenWhisk rate throttle paces the namespace at the
// rate the platform states, and the throttled call is retried.
func TestRatePacing(t *testing.T) {
	b := startScripted(t, map[string][]answer{"r": {
		{429, nil, `{"error":"Too many requests in the last minute (count: 6001, allowed: 6000).","code":"x"}`}, ok200}})
	rates := adaptive.NewRates(10, time.Minute)
	s := qos.New(qos.Config{Limit: 2, QueueCapacity: 10, QueueTimeout: time.Minute})
	up, err := platform.New(platform.Config{URL: "http://" + b.addr, Kind: invocation.OpenWhisk, Timeout: 10 * time.Second, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1 << 20, Rates: rates,
		Retry: RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}}, s, up, metrics.New(10),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = p.srv.Shutdown() })
	if resp := rawRequest(t, ln.Addr().String(), owInvoke("r")); resp.StatusCode() != 200 || b.count("r") != 2 {
		t.Errorf("%d after %d calls, want 200 after 2", resp.StatusCode(), b.count("r"))
	}
	if rates.Paced() != 1 {
		t.Fatalf("%d tenants paced, want 1 (guest)", rates.Paced())
	}
	if d := rates.Delay("guest"); d > 10*time.Millisecond {
		t.Errorf("guest's next turn in %v, want within 10ms (6000 a minute)", d)
	}
	if d := rates.Delay("other"); d != 0 {
		t.Errorf("another namespace waits %v", d)
	}
}
