package proxy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

func TestChainHeadersBadInput(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, invocation.OpenWhisk, "http://"+b.addr, 4, 4, time.Minute)
	tests := []struct {
		name, header, value string
	}{
		{"chain id too long", "X-Sequoia-Chain-Id", strings.Repeat("a", 129)},
		{"chain id not a token", "X-Sequoia-Chain-Id", "a/b"},
		{"chain id with a space", "X-Sequoia-Chain-Id", "a b"},
		{"chain id with a quote", "X-Sequoia-Chain-Id", `a"b`},
		{"deadline negative", "X-Sequoia-Deadline-Ms", "-5"},
		{"deadline not a number", "X-Sequoia-Deadline-Ms", "soon"},
		{"deadline fractional", "X-Sequoia-Deadline-Ms", "1.5"},
		{"deadline zero", "X-Sequoia-Deadline-Ms", "0"},
		{"deadline overflow", "X-Sequoia-Deadline-Ms", "99999999999999999999"},
		{"deadline empty", "X-Sequoia-Deadline-Ms", ""},
		{"steps negative", "X-Sequoia-Chain-Steps", "-1"},
		{"steps malformed", "X-Sequoia-Chain-Steps", "2x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
				tt.header+": "+tt.value+"\r\nContent-Length: 0\r\n\r\n")
			if resp.StatusCode() != 400 {
				t.Fatalf("status = %d, want 400 (%s)", resp.StatusCode(), resp.Body())
			}
			var body struct{ Error, Code string }
			if err := json.Unmarshal(resp.Body(), &body); err != nil {
				t.Fatalf("body %q: %v", resp.Body(), err)
			}
			if !strings.Contains(body.Error, tt.header) {
				t.Errorf("error %q does not name %s", body.Error, tt.header)
			}
		})
	}
	if n := b.calls.Load(); n != 0 {
		t.Errorf("backend called %d times by bad requests", n)
	}
}

func TestChainIDAssignedReturnedForwarded(t *testing.T) {
	b := startBackend(t)
	p := startProxy(t, invocation.OpenWhisk, "http://"+b.addr, 4, 4, time.Minute)
	seen := map[string]bool{}
	for range 3 {
		resp := rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		id := string(resp.Header.Peek("X-Sequoia-Chain-Id"))
		if resp.StatusCode() != 201 || !validChainID([]byte(id)) {
			t.Fatalf("status %d, chain id %q; want 201 and a valid id", resp.StatusCode(), id)
		}
		if seen[id] {
			t.Fatalf("id %q assigned twice", id)
		}
		seen[id] = true
		if got := string(b.lastRequest().Header.Peek("X-Sequoia-Chain-Id")); got != id {
			t.Errorf("function received chain id %q, client got %q", got, id)
		}
	}
	// A given id is kept, returned and forwarded; the second request of
	// the chain is a continuation.
	for range 2 {
		resp := rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
			"X-Sequoia-Chain-Id: my-chain.1\r\nX-Sequoia-Deadline-Ms: 60000\r\nX-Sequoia-Chain-Steps: 2\r\nContent-Length: 0\r\n\r\n")
		if got := string(resp.Header.Peek("X-Sequoia-Chain-Id")); got != "my-chain.1" {
			t.Errorf("returned chain id %q, want my-chain.1", got)
		}
		if got := string(b.lastRequest().Header.Peek("X-Sequoia-Chain-Id")); got != "my-chain.1" {
			t.Errorf("forwarded chain id %q, want my-chain.1", got)
		}
	}
}

func TestChainRefusedHasRetryAfter(t *testing.T) {
	b := startBackend(t)
	b.gate = make(chan struct{})
	// Admission reads a clock that stands still, so that the refusal's
	// Retry-After does not depend on how long the machine takes between
	// the two requests.
	now := time.Unix(1000, 0)
	p := startProxySched(t, invocation.OpenWhisk, "http://"+b.addr, qos.New(qos.Config{Limit: 1, QueueCapacity: 10,
		QueueTimeout: time.Minute, Now: func() time.Time { return now }}))
	p.sched.Observe("guest/a", 3*time.Second)
	// The first chain (6s of work, 10s budget) takes the only slot.
	first := make(chan *fasthttp.Response, 1)
	go func() {
		first <- rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
			"X-Sequoia-Chain-Id: one\r\nX-Sequoia-Deadline-Ms: 10000\r\nX-Sequoia-Chain-Steps: 2\r\nContent-Length: 0\r\n\r\n")
	}()
	for b.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// The second would finish at 12s, past its 10s budget.
	resp := rawRequest(t, p.addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
		"X-Sequoia-Chain-Id: two\r\nX-Sequoia-Deadline-Ms: 10000\r\nX-Sequoia-Chain-Steps: 2\r\nContent-Length: 0\r\n\r\n")
	if resp.StatusCode() != 429 {
		t.Fatalf("status = %d, want 429 (%s)", resp.StatusCode(), resp.Body())
	}
	if got := string(resp.Header.Peek("Retry-After")); got != "2" {
		t.Errorf("Retry-After = %q, want 2 (seconds)", got)
	}
	if got := string(resp.Header.Peek("X-Sequoia-Chain-Id")); got != "two" {
		t.Errorf("refusal carries chain id %q, want two", got)
	}
	if !strings.Contains(string(resp.Body()), "chain_refused") {
		t.Errorf("body %s, want code chain_refused", resp.Body())
	}
	close(b.gate)
	if r := <-first; r.StatusCode() != 201 {
		t.Errorf("admitted chain: status %d", r.StatusCode())
	}
	if n := b.calls.Load(); n != 1 {
		t.Errorf("backend called %d times, want 1: a refused chain reached the platform", n)
	}
}

func FuzzChainHeaders(f *testing.F) {
	for _, s := range []string{"abc", "", "-1", "12", "a b", strings.Repeat("x", 200), "9999999999", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validChainID([]byte(s)) {
			if len(s) == 0 || len(s) > maxChainID || strings.ContainsAny(s, " \t\r\n/\"(),:;<=>?@[\\]{}") {
				t.Errorf("validChainID(%q) = true", s)
			}
		}
		if n, ok := parsePositive([]byte(s), maxDeadlineMs); ok {
			if n <= 0 || n > maxDeadlineMs || strings.TrimLeft(s, "0123456789") != "" {
				t.Errorf("parsePositive(%q) = %d, true", s, n)
			}
		}
	})
}

// TestParseChainMarksAssignedIDs: an id the proxy assigns is marked so
// that nothing looks it up; one the caller gave is not.
func TestParseChainMarksAssignedIDs(t *testing.T) {
	p := &Proxy{ids: qos.NewChainIDs()}
	var buf []byte
	req := &fasthttp.Request{}
	inv := &invocation.Invocation{}
	if e := p.parseChain(req, inv, &buf); e != nil || !inv.ChainAssigned || inv.Chain == "" {
		t.Errorf("no header: chain %q, assigned %v, err %v; want an assigned id", inv.Chain, inv.ChainAssigned, e)
	}
	req.Header.Set("X-Sequoia-Chain-Id", "given-1")
	inv = &invocation.Invocation{}
	if e := p.parseChain(req, inv, &buf); e != nil || inv.ChainAssigned || inv.Chain != "given-1" {
		t.Errorf("given id: chain %q, assigned %v, err %v; want given-1, not assigned", inv.Chain, inv.ChainAssigned, e)
	}
}
