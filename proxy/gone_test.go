package proxy

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// TestConnGone: a peek tells a connection whose client closed it or reset
// it from one that is idle or has a request waiting.
func TestConnGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pair := func() (client, server net.Conn) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(); s.Close() })
		return c, s
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if cond() {
				return
			}
		}
		t.Fatalf("%s: not within a minute", what)
	}

	c, s := pair()
	if connGone(s) {
		t.Error("an idle connection is gone")
	}
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the bytes arrive; gone or not, it must say not
	if connGone(s) {
		t.Error("a connection with a request waiting is gone")
	}
	buf := make([]byte, 64)
	if n, _ := s.Read(buf); n == 0 {
		t.Fatal("the peek consumed the request")
	}
	c.Close()
	eventually("closed by its client", func() bool { return connGone(s) })

	c, s = pair()
	_ = c.(*net.TCPConn).SetLinger(0) // close sends a reset
	c.Close()
	eventually("reset by its client", func() bool { return connGone(s) })
}

// TestAnswerToClientThatLeftIsADrop: a client that closes its connection
// while its chain's last step runs at the platform, late in the chain's
// budget, is not counted as a completed chain: the answer reaches nobody.
// It is a drop (reason client_gone), and admission learns a larger
// headroom from it.
func TestAnswerToClientThatLeftIsADrop(t *testing.T) {
	b := startBackend(t)
	b.gate = make(chan struct{})
	m := metrics.New(100)
	s := qos.New(qos.Config{Limit: 4, QueueCapacity: 4, QueueTimeout: time.Minute, Headroom: 0.05, Events: m.NewChains()})
	defer s.Close()
	up, err := platform.New(platform.Config{URL: "http://" + b.addr, Kind: invocation.OpenWhisk, Timeout: time.Minute, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1024}, s, up, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)         //nolint:errcheck
	defer p.srv.Shutdown() //nolint:errcheck

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	const budget = 4 * time.Second
	_, err = io.WriteString(c, "POST /api/v1/namespaces/guest/actions/f?blocking=true HTTP/1.1\r\nHost: x\r\n"+
		"X-Sequoia-Chain-Id: left-1\r\nX-Sequoia-Deadline-Ms: 4000\r\nX-Sequoia-Chain-Steps: 1\r\nContent-Length: 0\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(time.Minute); b.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the request never reached the platform")
		}
	}
	c.Close()
	// Past half the budget (when sequoia asks whether the client is still
	// there), well before its end (so that the answer is not late).
	time.Sleep(time.Until(sent.Add(budget/2 + 200*time.Millisecond)))
	close(b.gate)

	dropped := func() (goneDrops, completed float64) {
		mfs, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, mm := range mf.GetMetric() {
				switch mf.GetName() {
				case "sequoia_chains_dropped_total":
					for _, l := range mm.GetLabel() {
						if l.GetName() == "reason" && l.GetValue() == "client_gone" {
							goneDrops += mm.GetCounter().GetValue()
						}
					}
				case "sequoia_chains_completed_total":
					completed += mm.GetCounter().GetValue()
				}
			}
		}
		return goneDrops, completed
	}
	for end := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		g, done := dropped()
		if g == 1 && done == 0 {
			break
		}
		if time.Now().After(end) || done > 0 {
			t.Fatalf("dropped (client_gone) %v, completed %v; want 1 and 0", g, done)
		}
	}
	if h := s.Headroom(); h <= 0.05 {
		t.Errorf("headroom %v after a client left late in its budget, want it above 0.05", h)
	}
}

// listenDial listens on a loopback port and connects to it; both close
// when t ends.
func listenDial(t *testing.T) (net.Listener, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ln, c
}

// TestReceivedAt: the kernel's record of when a request's bytes arrived
// goes back past the time it then waited to be read.
func TestReceivedAt(t *testing.T) {
	ln, c := listenDial(t)
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the request waits, unread
	now := time.Now()
	at, _ := receivedAt(s, now)
	if at.IsZero() || now.Sub(at) < 150*time.Millisecond || now.Sub(at) > time.Minute {
		t.Errorf("received %v before now, want at least the 200ms it waited", now.Sub(at))
	}
}

// TestReceivedHandshake: on a connection nothing was answered on yet, the
// kernel's last send is its reply to the handshake, so a client that
// connected and was slow to write (before or after its accept) is seen
// from when it connected.
func TestReceivedHandshake(t *testing.T) {
	ln, c := listenDial(t)
	time.Sleep(200 * time.Millisecond) // connected, not yet writing
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	buf := make([]byte, 64)
	if _, err := s.Read(buf); err != nil { // the request has arrived
		t.Fatal(err)
	}
	now := time.Now()
	at, sent := receivedAt(s, now)
	if at.IsZero() || sent.IsZero() {
		t.Fatalf("received %v, sent %v: want both known", at, sent)
	}
	if !sent.Before(at) || now.Sub(sent) < 150*time.Millisecond {
		t.Errorf("handshake answered %v before now, request received %v before: want the handshake at least the 200ms the client waited before the request",
			now.Sub(sent), now.Sub(at))
	}
}

// TestReceivedFirstRequestOnConnection: a chain's first request on a
// connection its client opened for it runs from the connection's accept
// when the client was slow to send it, unless that is longer ago than
// half the budget (an idle pooled connection); later requests on the
// connection run from their own arrival.
func TestReceivedFirstRequestOnConnection(t *testing.T) {
	accepted := make(chan struct{}, 10)
	got := make(chan time.Duration, 10)
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			budget := time.Duration(ctx.QueryArgs().GetUintOrZero("budget_ms")) * time.Millisecond
			now := time.Now()
			got <- now.Sub(received(ctx, nil, now, budget))
		},
		ConnState: func(_ net.Conn, s fasthttp.ConnState) {
			if s == fasthttp.StateNew {
				accepted <- struct{}{}
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)     //nolint:errcheck
	defer srv.Shutdown() //nolint:errcheck
	send := func(c net.Conn, budgetMs int) time.Duration {
		t.Helper()
		if _, err := io.WriteString(c, "GET /?budget_ms="+strconv.Itoa(budgetMs)+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			buf := make([]byte, 4096)
			_, _ = c.Read(buf) // the answer
			return d
		case <-time.After(time.Minute):
			t.Fatal("no answer within a minute")
		}
		return 0
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		<-accepted
		time.Sleep(300 * time.Millisecond) // a client slow to send
		return c
	}

	c := dial()
	defer c.Close()
	if d := send(c, 10000); d < 150*time.Millisecond {
		t.Errorf("first request, 10s budget: runs from %v before its handling, want from the accept, 300ms before", d)
	}
	if d := send(c, 10000); d > 150*time.Millisecond {
		t.Errorf("second request on the connection: runs from %v before its handling, want from its own arrival", d)
	}
	c2 := dial()
	defer c2.Close()
	if d := send(c2, 400); d > 150*time.Millisecond {
		t.Errorf("first request, 400ms budget, accepted 300ms before: runs from %v before, want from its own arrival", d)
	}
}
