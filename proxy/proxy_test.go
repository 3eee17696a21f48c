package proxy

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// backend is a recording platform stand-in on a real socket.
type backend struct {
	addr  string
	calls atomic.Int64
	mu    sync.Mutex
	last  fasthttp.Request
	// gate, when set, holds every request until it receives a value.
	gate chan struct{}
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		b.calls.Add(1)
		b.mu.Lock()
		ctx.Request.CopyTo(&b.last)
		gate := b.gate
		b.mu.Unlock()
		if gate != nil {
			<-gate
		}
		ctx.Response.Header.Set("X-Backend", "yes")
		ctx.Response.Header.Set("Connection", "X-Hop")
		ctx.Response.Header.Set("X-Hop", "must-not-pass")
		ctx.Response.Header.Set("Keep-Alive", "timeout=5")
		ctx.SetStatusCode(201)
		ctx.SetContentType("application/json")
		ctx.SetBody([]byte(`{"echo":` + string(orNull(ctx.PostBody())) + `}`))
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = srv.Shutdown() })
	return b
}

func orNull(b []byte) []byte {
	if len(b) == 0 {
		return []byte("null")
	}
	return b
}

func (b *backend) lastRequest() *fasthttp.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := &fasthttp.Request{}
	b.last.CopyTo(r)
	return r
}

type testProxy struct {
	addr  string
	sched *qos.Scheduler
	m     *metrics.Metrics
}

func startProxy(t *testing.T, kind invocation.Platform, backendURL string, limit, queue int, timeout time.Duration) *testProxy {
	t.Helper()
	return startProxySched(t, kind, backendURL, qos.New(qos.Config{Limit: limit, QueueCapacity: queue, QueueTimeout: timeout}))
}

// startProxySched is startProxy with a scheduler of the test's own (one
// whose admission reads a fake clock, say).
func startProxySched(t *testing.T, kind invocation.Platform, backendURL string, s *qos.Scheduler) *testProxy {
	t.Helper()
	m := metrics.New(100)
	up, err := platform.New(platform.Config{URL: backendURL, Kind: kind, Timeout: 10 * time.Second, MaxConns: 64})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Platform: kind, MaxBodyBytes: 1024}, s, up, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = p.srv.Shutdown() })
	return &testProxy{addr: ln.Addr().String(), sched: s, m: m}
}

// rawRequest writes raw to the proxy and returns the parsed response.
func rawRequest(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	return parseAnswer(t, exchange(t, addr, raw)) // edge_test.go
}

func TestForwardUnchanged(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, invocation.OpenWhisk, "http://"+b.addr, 4, 4, time.Minute)
	resp := rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/pkg/hello?blocking=true&result=true HTTP/1.1\r\n"+
		"Host: attacker.example:9999\r\nAuthorization: Basic dXNlcjpwYXNz\r\nX-Custom: kept\r\n"+
		"Connection: keep-alive, X-Drop\r\nX-Drop: gone\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n"+
		"Proxy-Authorization: Basic cHJveHk=\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"n\": \"body\"}")

	if got := resp.StatusCode(); got != 201 {
		t.Fatalf("status = %d, want the backend's 201 (body %s)", got, resp.Body())
	}
	if got := string(resp.Body()); got != `{"echo":{"n": "body"}}` {
		t.Errorf("body = %s", got)
	}
	if got := string(resp.Header.Peek("X-Backend")); got != "yes" {
		t.Errorf("X-Backend = %q, want the backend's header passed back", got)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive"} {
		if v := resp.Header.Peek(h); v != nil {
			t.Errorf("response hop-by-hop header %s = %q passed back", h, v)
		}
	}
	if string(resp.Header.Peek("Via")) != "1.1 sequoia" {
		t.Errorf("response Via = %q", resp.Header.Peek("Via"))
	}

	req := b.lastRequest()
	if got := string(req.Header.RequestURI()); got != "/api/v1/namespaces/guest/actions/pkg/hello?blocking=true&result=true" {
		t.Errorf("forwarded target = %q", got)
	}
	if got := string(req.Header.Method()); got != "POST" {
		t.Errorf("method = %q", got)
	}
	if got := string(req.Body()); got != `{"n": "body"}` {
		t.Errorf("forwarded body = %q", got)
	}
	for h, want := range map[string]string{
		"Authorization": "Basic dXNlcjpwYXNz", "X-Custom": "kept", "Content-Type": "application/json",
		"Host": b.addr, "Via": "1.1 sequoia",
	} {
		if got := string(req.Header.Peek(h)); got != want {
			t.Errorf("forwarded %s = %q, want %q", h, got, want)
		}
	}
	for _, h := range []string{"X-Drop", "Keep-Alive", "TE", "Upgrade", "Proxy-Authorization"} {
		if v := req.Header.Peek(h); v != nil {
			t.Errorf("hop-by-hop header %s = %q was forwarded", h, v)
		}
	}
}

func TestHTTPBackendKeepsHost(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, invocation.HTTP, "http://"+b.addr, 4, 4, time.Minute)
	resp := rawRequest(t, p.addr, "GET /x HTTP/1.1\r\nHost: hello.default.example.com\r\n\r\n")
	if resp.StatusCode() != 201 {
		t.Fatalf("status = %d: %s", resp.StatusCode(), resp.Body())
	}
	// Knative routes by Host: it is kept, and the connection still went
	// only to the configured backend.
	if got := string(b.lastRequest().Header.Host()); got != "hello.default.example.com" {
		t.Errorf("Host = %q", got)
	}
}

func TestBadInput(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, invocation.OpenWhisk, "http://"+b.addr, 4, 4, time.Minute)
	tests := []struct {
		name, raw string
		status    int
		code      string
	}{
		{"absolute-form target", "POST http://127.0.0.1:1/api/v1/namespaces/g/actions/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"},
		{"unknown route", "POST /nothing/here HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 404, "not_found"},
		{"empty action", "POST /api/v1/namespaces/guest/actions/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"},
		{"bad characters", "POST /api/v1/namespaces/gu%24st/actions/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 400, "bad_request"},
		{"oversized body", "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + strings.Repeat("x", 2048), 413, "body_too_large"},
		{"sequoia API", "GET /sequoia/v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawRequest(t, p.addr, tt.raw)
			if resp.StatusCode() != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode(), tt.status, resp.Body())
			}
			var body struct{ Error, Code string }
			if err := json.Unmarshal(resp.Body(), &body); err != nil {
				t.Fatalf("body %q is not JSON: %v", resp.Body(), err)
			}
			if body.Code != tt.code || body.Error == "" {
				t.Errorf("body = %+v, want code %q and a message", body, tt.code)
			}
		})
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("backend called %d times by bad requests", n)
	}
}

func TestUnreachablePlatform(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, invocation.Lambda, "http://"+dead, 4, 4, time.Minute)
	resp := rawRequest(t, p.addr, "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode() != 502 {
		t.Fatalf("status = %d, want 502", resp.StatusCode())
	}
	if p.sched.InFlight() != 0 {
		t.Errorf("slot leaked: in flight %d", p.sched.InFlight())
	}
}

func TestQueueFullAndTimeoutAnswers(t *testing.T) {
	b := startBackend(t)
	b.gate = make(chan struct{})
	// Two proxies, so that neither answer needs a race: the 429 comes
	// from one whose queued invocation waits a minute, the 503 from one
	// whose queue timeout is short; in both the slot is held until the
	// backend's gate opens.
	full := startProxy(t, invocation.Lambda, "http://"+b.addr, 1, 1, time.Minute)
	short := startProxy(t, invocation.Lambda, "http://"+b.addr, 1, 1, 50*time.Millisecond)
	const raw = "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	served := make(chan *fasthttp.Response, 3)
	send := func(p *testProxy) { go func() { served <- rawRequest(t, p.addr, raw) }() }
	send(full)
	for b.calls.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	// The slot is held: the next request queues, and while it waits the
	// queue (capacity 1) is full (429)...
	send(full)
	for full.sched.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	refused := rawRequest(t, full.addr, raw)
	// ...and a request queued behind a held slot times out (503).
	send(short)
	for b.calls.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	timedOut := rawRequest(t, short.addr, raw)
	close(b.gate)
	for range 3 {
		if r := <-served; r.StatusCode() != 201 {
			t.Errorf("served: status %d", r.StatusCode())
		}
	}
	for _, c := range []struct {
		r      *fasthttp.Response
		status int
	}{{refused, 429}, {timedOut, 503}} {
		if c.r.StatusCode() != c.status {
			t.Errorf("status = %d, want %d", c.r.StatusCode(), c.status)
		}
		if ra := string(c.r.Header.Peek("Retry-After")); ra == "" {
			t.Errorf("%d without Retry-After", c.status)
		}
		if ct := string(c.r.Header.ContentType()); ct != "application/json" {
			t.Errorf("%d content type %q", c.status, ct)
		}
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("backend calls = %d, want 3: refused requests must not reach it", n)
	}
}

// TestClientDisconnectWhileQueued checks that a client that closes its
// connection while its invocation waits leaves the queue and is never
// invoked.
func TestClientDisconnectWhileQueued(t *testing.T) {
	b := startBackend(t)
	b.gate = make(chan struct{})
	p := startProxy(t, invocation.Lambda, "http://"+b.addr, 1, 10, time.Minute)
	const raw = "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	first := make(chan *fasthttp.Response)
	go func() { first <- rawRequest(t, p.addr, raw) }()
	for b.calls.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	for p.sched.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	for p.sched.Queued() != 0 {
		time.Sleep(time.Millisecond)
	}
	close(b.gate)
	<-first
	// A third request goes through: the departed one left no slot held.
	if r := rawRequest(t, p.addr, raw); r.StatusCode() != 201 {
		t.Fatalf("third: status %d", r.StatusCode())
	}
	if n := b.calls.Load(); n != 2 {
		t.Errorf("backend calls = %d, want 2: the departed client must never be invoked", n)
	}
}

// TestQueuedClientStillServed checks that watching a queued client does not
// disturb it: it is served when a slot frees, on the same connection, and
// the connection keeps working for a second request.
func TestQueuedClientStillServed(t *testing.T) {
	b := startBackend(t)
	b.gate = make(chan struct{})
	p := startProxy(t, invocation.Lambda, "http://"+b.addr, 1, 10, time.Minute)
	const raw = "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
	first := make(chan *fasthttp.Response)
	go func() { first <- rawRequest(t, p.addr, raw) }()
	for b.calls.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	for p.sched.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	close(b.gate)
	<-first
	br := bufio.NewReader(c)
	for i := range 2 {
		resp := &fasthttp.Response{}
		if err := resp.Read(br); err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if resp.StatusCode() != 201 {
			t.Fatalf("response %d: status %d", i, resp.StatusCode())
		}
		if i == 0 {
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// inMemoryProxy is an OpenWhisk proxy's handler in front of an
// in-process backend over loopback that answers every call with 200 {}.
func inMemoryProxy(tb testing.TB) fasthttp.RequestHandler {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString("{}") }}
	go srv.Serve(ln)                      //nolint:errcheck
	tb.Cleanup(func() { srv.Shutdown() }) //nolint:errcheck
	m := metrics.New(100)
	s := qos.New(qos.Config{Limit: 1000, QueueCapacity: 1000, QueueTimeout: time.Minute})
	up, err := platform.New(platform.Config{URL: "http://" + ln.Addr().String(), Kind: invocation.OpenWhisk, Timeout: 10 * time.Second, MaxConns: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(up.Close)
	p := New(Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1 << 20}, s, up, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return p.Handler()
}

// callInMemory sends one invocation through h in ctx.
func callInMemory(tb testing.TB, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx) {
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Request.SetRequestURI("/api/v1/namespaces/guest/actions/hello?blocking=true")
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.Header.SetHost("proxy")
	ctx.Request.SetBodyString(`{"a":1}`)
	h(ctx)
	if ctx.Response.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// TestProxyAllocations: a successful invocation that starts a chain costs
// two allocations, its chain id's string and its chain's state; nothing
// else on the way (parse, admit, forward, answer, metrics) allocates.
func TestProxyAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("under -race sync.Pool drops items at random; .ci/run counts allocations in a run without it")
	}
	h := inMemoryProxy(t)
	var ctx fasthttp.RequestCtx
	for range 100 { // connections, interned names, metric children
		callInMemory(t, h, &ctx)
	}
	if n := testing.AllocsPerRun(1000, func() { callInMemory(t, h, &ctx) }); n > 2 {
		t.Errorf("%.1f allocations per invocation, want 2 at most", n)
	}
}

func BenchmarkProxyInMemory(b *testing.B) {
	// The whole handler (parse, intern, admit, forward, metrics) against
	// an in-process backend over loopback.
	h := inMemoryProxy(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			callInMemory(b, h, &ctx)
		}
	})
}
