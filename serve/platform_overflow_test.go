package serve

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

func owRaw(action, body string) string {
	return "POST /api/v1/namespaces/guest/actions/" + action + "?blocking=true&result=true HTTP/1.1\r\nHost: x\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

// TestOverflowWhenQueueFull: with the primary's one slot taken and no room
// to queue, the next invocation runs at the overflow platform instead of
// being refused.
func TestOverflowWhenQueueFull(t *testing.T) {
	// The gate holds the slow call, and with it the only slot, until the
	// overflowed call has run.
	primary, primaryAddr, g := startGatedEmulator(t, emulator.Config{Limit: 5})
	defer g.openAll()
	second, secondAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+primaryAddr,
		"SEQUOIA_OVERFLOW_URL=http://"+secondAddr, "SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_CAPACITY=0")
	addr := s.dataLn.Addr().String()
	done := make(chan *fasthttp.Response, 1)
	go func() { done <- send(t, addr, owRaw("slow", `{"label":"slow","hold":true}`)) }()
	eventually(t, "the slow call held at the primary", func() bool { return g.held() == 1 })
	resp := send(t, addr, owRaw("quick", `{}`))
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"function":"guest/quick"`) {
		t.Errorf("overflowed call: %d %s", resp.StatusCode(), resp.Body())
	}
	if h := string(resp.Header.Peek("X-Sequoia-Overflow")); h != "openwhisk" {
		t.Errorf("X-Sequoia-Overflow %q, want openwhisk", h)
	}
	if n := second.Stats().Functions["guest/quick"].Completed; n != 1 {
		t.Errorf("overflow platform ran quick %d times, want 1", n)
	}
	if n := primary.Stats().Functions["guest/quick"].Invocations; n != 0 {
		t.Errorf("primary ran quick %d times, want 0", n)
	}
	g.openAll()
	if r := <-done; r.StatusCode() != 200 || primary.Stats().Functions["guest/slow"].Completed != 1 {
		t.Errorf("slow: %d, ran %d times at the primary", r.StatusCode(), primary.Stats().Functions["guest/slow"].Completed)
	}
	// The status page names the overflow platform and its API.
	_, st := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	if !strings.Contains(st, `"overflow_url": "http://`+secondAddr+`"`) || !strings.Contains(st, `"overflow_backend": "openwhisk"`) {
		t.Errorf("status lacks the overflow platform: %s", st)
	}
}

// TestOverflowWhenPrimaryUnreachable: a primary that refuses connections
// sends the work to the overflow platform.
func TestOverflowWhenPrimaryUnreachable(t *testing.T) {
	second, secondAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t),
		"SEQUOIA_OVERFLOW_URL=http://"+secondAddr)
	body := `{}`
	resp := send(t, s.dataLn.Addr().String(), "POST /2015-03-31/functions/f/invocations HTTP/1.1\r\nHost: x\r\n"+
		"Content-Length: "+itoa(len(body))+"\r\n\r\n"+body)
	if resp.StatusCode() != 200 || second.Stats().Functions["f"].Completed != 1 {
		t.Errorf("%d %s; overflow ran f %d times", resp.StatusCode(), resp.Body(), second.Stats().Functions["f"].Completed)
	}
	if n := strings.Count(string(resp.Header.Peek("Via")), "sequoia"); n > 1 {
		t.Errorf("Via %q", resp.Header.Peek("Via"))
	}
}

func TestOverflowConfig(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"SEQUOIA_OVERFLOW_URL=ftp://x", "SEQUOIA_OVERFLOW_URL"},
		{"SEQUOIA_OVERFLOW_BACKEND=lambda", "SEQUOIA_OVERFLOW_BACKEND"}, // without SEQUOIA_OVERFLOW_URL
		{"SEQUOIA_OVERFLOW_BACKEND=azure", "SEQUOIA_OVERFLOW_BACKEND"},
	} {
		_, err := config.LoadFrom([]string{"SEQUOIA_BACKEND=openwhisk", tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error naming %s", tt.env, err, tt.want)
		}
	}
}
