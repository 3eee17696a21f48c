package serve

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// slowInvoke is a Lambda invocation that runs for ms milliseconds on the
// emulator.
func slowInvoke(ms string) string {
	body := `{"exec_ms":` + ms + `}`
	return "POST /2015-03-31/functions/slow/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func send(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return &fasthttp.Response{}
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Error(err)
	}
	resp := &fasthttp.Response{}
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Errorf("read: %v", err)
	}
	return resp
}

func waitFor(cond func() bool) {
	for !cond() {
		time.Sleep(2 * time.Millisecond)
	}
}

// heldInvoke is a Lambda invocation of "slow" that the gate holds, with
// label.
func heldInvoke(label string) string {
	body := `{"label":"` + label + `","hold":true}`
	return "POST /2015-03-31/functions/slow/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

// TestQueueAnswersAgainstEmulator: with the one slot held, a queued
// invocation times out with 503 and, while one waits, the full queue
// answers 429; both carry Retry-After and neither reaches the platform.
// Two servers, so that neither answer needs a race: the 429 from one whose
// queued invocation waits a minute, the 503 from one with a short queue
// timeout; the gate holds each slot for as long as the test needs.
func TestQueueAnswersAgainstEmulator(t *testing.T) {
	emu, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 10})
	defer g.openAll()
	env := []string{"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://" + emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_CAPACITY=1"}
	long := startServer(t, append(env, "SEQUOIA_QUEUE_TIMEOUT=1m")...)
	short := startServer(t, append(env, "SEQUOIA_QUEUE_TIMEOUT=300ms")...)
	served := make(chan *fasthttp.Response, 3)
	go func() { served <- send(t, long.dataLn.Addr().String(), heldInvoke("long")) }()
	eventually(t, "the first call held at the platform", func() bool { return g.held() == 1 })
	go func() { served <- send(t, long.dataLn.Addr().String(), slowInvoke("1")) }()
	eventually(t, "the second call queued", func() bool { return long.sched.Queued() == 1 })
	full := send(t, long.dataLn.Addr().String(), slowInvoke("1"))
	go func() { served <- send(t, short.dataLn.Addr().String(), heldInvoke("short")) }()
	eventually(t, "the short server's call held at the platform", func() bool { return g.held() == 2 })
	timedOut := send(t, short.dataLn.Addr().String(), slowInvoke("1"))
	g.openAll()
	for range 3 {
		if r := <-served; r.StatusCode() != 200 {
			t.Errorf("served invocation: %d %s", r.StatusCode(), r.Body())
		}
	}
	for _, c := range []struct {
		r    *fasthttp.Response
		want int
	}{{full, 429}, {timedOut, 503}} {
		if c.r.StatusCode() != c.want {
			t.Errorf("status %d, want %d", c.r.StatusCode(), c.want)
		}
		if len(c.r.Header.Peek("Retry-After")) == 0 {
			t.Errorf("%d without Retry-After", c.want)
		}
	}
	if n := emu.Stats().Invocations; n != 3 {
		t.Errorf("platform invocations = %d, want 3 (the refused ones never reach it)", n)
	}
}

// TestDisconnectedClientNeverInvoked: a client that hangs up while queued
// is never invoked on the platform.
func TestDisconnectedClientNeverInvoked(t *testing.T) {
	emu, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 10})
	defer g.openAll()
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_TIMEOUT=1m")
	addr := s.dataLn.Addr().String()
	first := make(chan *fasthttp.Response, 1)
	go func() { first <- send(t, addr, heldInvoke("first")) }()
	eventually(t, "the first call held at the platform", func() bool { return g.held() == 1 })
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, slowInvoke("1")); err != nil {
			t.Fatal(err)
		}
		waitFor(func() bool { return s.sched.Queued() == 1 })
		c.Close()
		waitFor(func() bool { return s.sched.Queued() == 0 })
	}
	g.openAll()
	if r := <-first; r.StatusCode() != 200 {
		t.Fatalf("first: %d", r.StatusCode())
	}
	if r := send(t, addr, slowInvoke("1")); r.StatusCode() != 200 {
		t.Fatalf("after: %d", r.StatusCode())
	}
	if n := emu.Stats().Invocations; n != 2 {
		t.Errorf("platform invocations = %d, want 2: departed clients must never be invoked", n)
	}
	_, metrics := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	if !strings.Contains(metrics, `sequoia_requests_total{function="slow",outcome="client_gone"} 3`) {
		t.Error("client_gone not counted 3 times")
	}
}
