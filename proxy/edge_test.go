package proxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// rawBackend records every request as the bytes it received and answers
// with what its mode says.
type rawBackend struct {
	addr string
	got  chan string
	mode func(c net.Conn, br *bufio.Reader, head string)
}

// answerOK answers 200 with a short body.
func answerOK(c net.Conn, br *bufio.Reader, head string) {
	readBody(br, head)
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") //nolint:errcheck
}

func readBody(br *bufio.Reader, head string) string {
	n := 0
	for _, line := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	b := make([]byte, n)
	io.ReadFull(br, b) //nolint:errcheck
	return string(b)
}

func startRawBackend(t testing.TB, mode func(c net.Conn, br *bufio.Reader, head string)) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{addr: ln.Addr().String(), got: make(chan string, 100), mode: mode}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						head.WriteString(line)
						if err != nil {
							return
						}
						if line == "\r\n" {
							break
						}
					}
					b.got <- head.String()
					b.mode(c, br, head.String())
				}
			})
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return b
}

// edgeProxy starts a proxy with cfg (its platform defaulting to http) in
// front of url.
func edgeProxy(t *testing.T, url string, limit int, cfg Config) (string, *Proxy, *qos.Scheduler, *platform.Client) {
	t.Helper()
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	s := qos.New(qos.Config{Limit: limit, QueueCapacity: 100, QueueTimeout: time.Minute})
	up, err := platform.New(platform.Config{URL: url, Kind: cfg.Platform, Timeout: time.Minute, MaxConns: 64})
	if err != nil {
		t.Fatal(err)
	}
	p := New(cfg, s, up, metrics.New(100), slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln) //nolint:errcheck
	t.Cleanup(func() {
		_ = p.srv.Shutdown()
		up.Close() // its kept-alive connections, which the backend's handlers wait on
	})
	return ln.Addr().String(), p, s, up
}

// exchange writes raw on a new connection and reads one answer (or until
// the proxy closes the connection, or a minute passes); it returns the
// bytes that came back, "" when the connection was closed without a word.
func exchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	var got strings.Builder
	resp := &fasthttp.Response{}
	_ = resp.Read(bufio.NewReader(io.TeeReader(c, &got)))
	return got.String()
}

func parseAnswer(t *testing.T, raw string) *fasthttp.Response {
	t.Helper()
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	return resp
}

func wantCode(t *testing.T, resp *fasthttp.Response, status int, code string) {
	t.Helper()
	if resp.StatusCode() != status {
		t.Errorf("status = %d, want %d (%s)", resp.StatusCode(), status, resp.Body())
	}
	var body struct{ Error, Code, Type, Message string }
	if err := json.Unmarshal(resp.Body(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", resp.Body(), err)
	}
	if body.Code != code && !(code != "" && body.Message != "" && body.Code == "") {
		t.Errorf("body = %s, want code %q", resp.Body(), code)
	}
	if string(resp.Header.ContentType()) != "application/json" {
		t.Errorf("Content-Type = %q", resp.Header.ContentType())
	}
}

// TestHeaderFramingRefused: a header block that another HTTP reader could
// split differently is answered 400 and never forwarded. Before, a bare LF
// inside a value reached the backend as a header of its own.
func TestHeaderFramingRefused(t *testing.T) {
	b := startRawBackend(t, answerOK)
	addr, _, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.HTTP})
	for name, raw := range map[string]string{
		"bare LF in a value":   "POST /fn HTTP/1.1\r\nHost: x\r\nX-A: 1\nInjected-Lf: 1\r\nContent-Length: 2\r\n\r\nhi",
		"bare LF line":         "POST /fn HTTP/1.1\r\nHost: x\nX-Sequoia-Priority: interactive\r\nContent-Length: 2\r\n\r\nhi",
		"folded line":          "GET /fn HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n Authorization: b\r\n\r\n",
		"space in a name":      "POST /fn HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\nContent-Length: 2\r\n\r\nhi",
		"space before a colon": "GET /fn HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",
		"empty path segment":   "POST //fn HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"inner empty segment":  "GET /fn//x HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			resp := parseAnswer(t, exchange(t, addr, raw))
			wantCode(t, resp, 400, "bad_request")
		})
	}
	select {
	case got := <-b.got:
		t.Errorf("the backend received %q", got)
	default:
	}
}

// TestForwardAddsNoHeaders: a request without Content-Type or User-Agent
// reaches the platform without them, and one with them keeps its own; an
// answer without Content-Type comes back without one.
func TestForwardAddsNoHeaders(t *testing.T) {
	b := startRawBackend(t, answerOK)
	addr, _, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.HTTP})
	ans := exchange(t, addr, "POST /fn HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	head := <-b.got
	for _, h := range []string{"content-type:", "user-agent:"} {
		if strings.Contains(strings.ToLower(head), h) {
			t.Errorf("forwarded request gained %s:\n%s", h, head)
		}
	}
	if strings.Contains(strings.ToLower(ans), "content-type:") {
		t.Errorf("answer gained a Content-Type:\n%s", ans)
	}
	exchange(t, addr, "POST /fn HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nUser-Agent: mine/1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
	head = <-b.got
	if !strings.Contains(head, "Content-Type: text/csv\r\n") || !strings.Contains(head, "User-Agent: mine/1\r\n") {
		t.Errorf("the client's own headers changed:\n%s", head)
	}
}

// TestReadErrorsInThePlatformsShape: headers too large (431) and a request
// that does not arrive in time (408) are answered as sequoia's JSON in the
// platform's shape; a connection that sends nothing is closed without a
// word.
func TestReadErrorsInThePlatformsShape(t *testing.T) {
	b := startRawBackend(t, answerOK)
	for _, kind := range []invocation.Platform{invocation.HTTP, invocation.OpenWhisk, invocation.Lambda} {
		t.Run(kind.String(), func(t *testing.T) {
			addr, p, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: kind, HeaderTimeout: 300 * time.Millisecond})
			resp := parseAnswer(t, exchange(t, addr, "GET /fn HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 20<<10)+"\r\n\r\n"))
			wantCode(t, resp, 431, "headers_too_large")
			resp = parseAnswer(t, exchange(t, addr, "GET /fn HTTP/1.1\r\nHost: x\r\nX-Slow: 1"))
			wantCode(t, resp, 408, "request_timeout")
			if kind == invocation.Lambda && len(resp.Header.Peek("X-Amzn-ErrorType")) == 0 {
				t.Error("Lambda answer without X-Amzn-ErrorType")
			}
			if got := exchange(t, addr, ""); got != "" {
				t.Errorf("a silent connection got %q, want to be closed quietly", got)
			}
			if n := testCounter(p.edge.quiet); n != 1 {
				t.Errorf("quietly closed = %v, want 1", n)
			}
		})
	}
}

// TestConnectionCap: past MaxConns a connection is answered 503 with
// Retry-After in the platform's shape and closed; once one closes, a new
// one is served.
func TestConnectionCap(t *testing.T) {
	b := startRawBackend(t, answerOK)
	addr, p, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.Lambda, MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The two are accepted once the listener counts them open.
	waitFor(t, func() bool { return p.edge.open.Load() == 2 })
	resp := parseAnswer(t, exchange(t, addr, "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	wantCode(t, resp, 503, "")
	if string(resp.Header.Peek("Retry-After")) != "1" || string(resp.Header.Peek("X-Amzn-ErrorType")) != "ServiceException" {
		t.Errorf("refusal headers: %s", resp.Header.String())
	}
	if !strings.Contains(string(resp.Body()), "SEQUOIA_MAX_CONNS") {
		t.Errorf("refusal body %s", resp.Body())
	}
	held[0].Close()
	waitFor(t, func() bool { return p.edge.open.Load() == 1 })
	resp = parseAnswer(t, exchange(t, addr, "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	if resp.StatusCode() != 200 {
		t.Errorf("after a close: %d %s, want the platform's 200", resp.StatusCode(), resp.Body())
	}
	if n := testCounter(p.edge.refused); n != 1 {
		t.Errorf("refused = %v, want 1", n)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// flakyListener fails its first accepts with err, then accepts from ln.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
	err   error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptErrorsDoNotStopServing: running out of file descriptors (or
// any accept error but a closed listener) backs off and accepts again;
// fasthttp alone would return from Serve and the process would exit.
func TestAcceptErrorsDoNotStopServing(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var e edgeState
		e.init(&Proxy{cfg: Config{Platform: invocation.HTTP}})
		logged := 0
		fl := &flakyListener{Listener: ln, fails: 5, err: &net.OpError{Op: "accept", Net: "tcp", Err: &syscallError{errno}}}
		el := newEdgeListener(fl, &e, 0, func(error, time.Duration) { logged++ })
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				defer c.Close()
				time.Sleep(100 * time.Millisecond)
			}
		}()
		c, err := el.Accept()
		if err != nil {
			t.Fatalf("%v: Accept = %v, want a connection after the errors", errno, err)
		}
		c.Close()
		if n := testCounter(e.acceptErrors); n != 5 || logged != 5 {
			t.Errorf("%v: %v errors counted, %d logged; want 5", errno, n, logged)
		}
		el.Close()
		if _, err := el.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%v: Accept after Close = %v, want net.ErrClosed", errno, err)
		}
	}
}

// syscallError is an os.SyscallError as accept4 returns it.
type syscallError struct{ errno syscall.Errno }

func (e *syscallError) Error() string { return "accept4: " + e.errno.Error() }
func (e *syscallError) Unwrap() error { return e.errno }

// TestCloseDuringBackoff: closing the listener ends a backoff at once.
func TestCloseDuringBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var e edgeState
	e.init(&Proxy{cfg: Config{Platform: invocation.HTTP}})
	fl := &flakyListener{Listener: ln, fails: 1 << 30, err: syscall.EMFILE}
	el := newEdgeListener(fl, &e, 0, nil)
	done := make(chan error, 1)
	go func() { _, err := el.Accept(); done <- err }()
	waitFor(t, func() bool { return testCounter(e.acceptErrors) >= 3 })
	el.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept = %v, want net.ErrClosed", err)
	}
}

// TestPlatformFailuresNamed: each way a platform fails is answered for
// what it is: a dial that fails (never sent), a connection closed while
// the body was sent (the platform refused the upload), a connection closed
// after the request, before a whole answer (the function may have run).
func TestPlatformFailuresNamed(t *testing.T) {
	closeMidAnswer := func(c net.Conn, br *bufio.Reader, head string) {
		readBody(br, head)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial") //nolint:errcheck
		c.Close()
	}
	refuseUpload := func(c net.Conn, _ *bufio.Reader, _ string) {
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") //nolint:errcheck
		c.(*net.TCPConn).SetLinger(0)                                                                         //nolint:errcheck
		c.Close()
	}
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	big := strings.Repeat("x", 6<<20)
	for _, tt := range []struct {
		name, url, body, code string
	}{
		{"closed mid-answer", "http://" + startRawBackend(t, closeMidAnswer).addr, "{}", "platform_closed"},
		{"upload refused", "http://" + startRawBackend(t, refuseUpload).addr, big, "platform_refused_request"},
		{"unreachable", "http://" + deadAddr, "{}", "platform_unreachable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, _, s, _ := edgeProxy(t, tt.url, 4, Config{Platform: invocation.HTTP})
			resp := parseAnswer(t, exchange(t, addr, "POST /fn HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: "+
				strconv.Itoa(len(tt.body))+"\r\n\r\n"+tt.body))
			wantCode(t, resp, 502, tt.code)
			if s.InFlight() != 0 {
				t.Errorf("slot leaked: %d in flight", s.InFlight())
			}
		})
	}
}

// TestPlatform503GetsRetryAfter: a platform 503 without Retry-After is
// given one; one with its own keeps it.
func TestPlatform503GetsRetryAfter(t *testing.T) {
	b := startRawBackend(t, func(c net.Conn, br *bufio.Reader, head string) {
		readBody(br, head)
		ra := ""
		if strings.Contains(head, "X-Own: 1") {
			ra = "Retry-After: 7\r\n"
		}
		io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\n"+ra+"Content-Length: 4\r\n\r\nbusy") //nolint:errcheck
	})
	addr, _, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.HTTP})
	for _, tt := range []struct{ hdr, want string }{{"", "1"}, {"X-Own: 1\r\n", "7"}} {
		resp := parseAnswer(t, exchange(t, addr, "GET /fn HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"+tt.hdr+"\r\n"))
		if resp.StatusCode() != 503 || string(resp.Header.Peek("Retry-After")) != tt.want || string(resp.Body()) != "busy" {
			t.Errorf("%q: %d Retry-After %q body %q; want the platform's 503 with Retry-After %s",
				tt.hdr, resp.StatusCode(), resp.Header.Peek("Retry-After"), resp.Body(), tt.want)
		}
	}
}

// gatedBackend answers 200 once gate is closed, and counts the requests
// it holds.
func gatedBackend(t *testing.T) (*rawBackend, chan struct{}) {
	gate := make(chan struct{})
	b := startRawBackend(t, func(c net.Conn, br *bufio.Reader, head string) {
		readBody(br, head)
		<-gate
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") //nolint:errcheck
	})
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	return b, gate
}

// TestAbandonAnswersEveryone: once shutdown gives up, a queued request is
// answered 503 shutting_down with Retry-After, one whose call is at the
// platform 502 shutdown_abandoned, and a new one 503 at once; every
// request read is answered.
func TestAbandonAnswersEveryone(t *testing.T) {
	b, _ := gatedBackend(t)
	addr, p, s, up := edgeProxy(t, "http://"+b.addr, 1, Config{Platform: invocation.HTTP})
	answers := make(chan string, 3)
	for i := range 3 {
		go func() {
			answers <- exchange(t, addr, "POST /fn"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		}()
		if i == 0 {
			<-b.got // the first is at the platform
		}
	}
	waitFor(t, func() bool { return s.Queued() == 2 })
	p.Abandon()
	s.Abandon()
	up.Abort()
	codes := map[string]int{}
	for range 3 {
		a := <-answers
		resp := parseAnswer(t, a)
		var body struct{ Code string }
		_ = json.Unmarshal(resp.Body(), &body)
		codes[fmt.Sprint(resp.StatusCode(), " ", body.Code)]++
		if resp.StatusCode() == 503 && string(resp.Header.Peek("Retry-After")) != "1" {
			t.Errorf("503 without Retry-After: %s", a)
		}
		if !resp.ConnectionClose() {
			t.Errorf("an answer during shutdown keeps its connection: %s", a)
		}
	}
	if codes["503 shutting_down"] != 2 || codes["502 shutdown_abandoned"] != 1 {
		t.Errorf("answers = %v, want two 503 shutting_down and one 502 shutdown_abandoned", codes)
	}
	resp := parseAnswer(t, exchange(t, addr, "POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"))
	wantCode(t, resp, 503, "shutting_down")
	if q, f := p.Abandoned(); q != 3 || f != 1 {
		t.Errorf("Abandoned = %d queued, %d in flight; want 3, 1", q, f)
	}
	if !p.WaitAnswered(time.Minute) {
		t.Errorf("%d answers not written", p.Answering())
	}
}

// TestHeldCallsSeeClientsLeave: a call whose client left while the
// platform runs it still holds its slot, and Held says so.
func TestHeldCallsSeeClientsLeave(t *testing.T) {
	b, gate := gatedBackend(t)
	addr, p, s, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.HTTP})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST /hung HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n") //nolint:errcheck
	<-b.got
	held := p.Held()
	if len(held) != 1 || held[0].Function != "hung" || held[0].ClientGone {
		t.Fatalf("Held = %+v, want the call, its client there", held)
	}
	c.Close()
	waitFor(t, func() bool { h := p.Held(); return len(h) == 1 && h[0].ClientGone })
	if s.InFlight() != 1 {
		t.Errorf("in flight = %d: the slot stays held while the platform runs the call", s.InFlight())
	}
	close(gate)
	waitFor(t, func() bool { return len(p.Held()) == 0 })
}

func testCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestUnknownHTTPVersionRefused: fasthttp reads any HTTP/x.y request line;
// one that is neither HTTP/1.1 nor HTTP/1.0 is answered 505 and never
// forwarded.
func TestUnknownHTTPVersionRefused(t *testing.T) {
	b := startRawBackend(t, answerOK)
	addr, _, _, _ := edgeProxy(t, "http://"+b.addr, 4, Config{Platform: invocation.HTTP})
	for _, v := range []string{"HTTP/9.9", "HTTP/2.0", "HTTP/1.2"} {
		resp := parseAnswer(t, exchange(t, addr, "GET /fn "+v+"\r\nHost: x\r\n\r\n"))
		wantCode(t, resp, 505, "http_version_not_supported")
	}
	resp := parseAnswer(t, exchange(t, addr, "GET /fn HTTP/1.0\r\nHost: x\r\n\r\n"))
	if resp.StatusCode() != 200 {
		t.Errorf("HTTP/1.0: %d, want 200", resp.StatusCode())
	}
	select {
	case got := <-b.got:
		if !strings.HasPrefix(got, "GET /fn HTTP/1.") {
			t.Errorf("the backend received %q", got)
		}
	default:
		t.Error("the HTTP/1.0 request never reached the backend")
	}
	select {
	case got := <-b.got:
		t.Errorf("the backend also received %q", got)
	default:
	}
}
