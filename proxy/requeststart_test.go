package proxy

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

func TestParseRequestStart(t *testing.T) {
	at := time.Date(2026, 12, 5, 13, 0, 0, 423_000_000, time.UTC)
	good := []struct {
		in   string
		want time.Time
	}{
		{"t=1796475600.423", at},                     // nginx t=${msec}
		{"t=1796475600423", at},                      // milliseconds (HAProxy t=%[date(0,ms)], Heroku)
		{"1796475600423000", at},                     // microseconds, no t=
		{"t=1796475600423000000", at},                // nanoseconds
		{" t=1796475600 ", at.Truncate(time.Second)}, // whole seconds, spaces
		{"t=1796475600.4", at.Add(-23 * time.Millisecond)},
		{"t=1796475600.423000000999", at}, // beyond nanoseconds: cut
	}
	for _, c := range good {
		got, ok := parseRequestStart([]byte(c.in))
		if !ok || !got.Equal(c.want) {
			t.Errorf("parseRequestStart(%q) = %v, %v; want %v", c.in, got.UTC(), ok, c.want)
		}
	}
	for _, in := range []string{"", "t=", "t=0", "soon", "t=-1796475600", "t=1796475600423.5", "t=1.2.3",
		"t=1796475600.", "t=1796475600.x", "t=99999999999999999999", "t= 1796475600", "t=1796475600 423", "T=1796475600"} {
		if got, ok := parseRequestStart([]byte(in)); ok {
			t.Errorf("parseRequestStart(%q) = %v, want no time", in, got)
		}
	}
}

func FuzzParseRequestStart(f *testing.F) {
	for _, s := range []string{"t=1796475600.423", "t=1796475600423", "1796475600423000", "", "t=", "t=9999999999999999999", "t=1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRequestStart([]byte(s))
		if !ok {
			return
		}
		if got.UnixNano() <= 0 && got.Unix() <= 0 {
			t.Fatalf("parseRequestStart(%q) = %v: not after 1970", s, got)
		}
		// A time it reads, written back as HAProxy writes it, reads the same
		// to the millisecond.
		if y := got.Year(); y >= 1974 && y < 5000 {
			ms := got.UnixMilli()
			again, ok := parseRequestStart([]byte("t=" + strconv.FormatInt(ms, 10)))
			if !ok || again.UnixMilli() != ms {
				t.Fatalf("parseRequestStart(%q) = %v; its milliseconds read back as %v, %v", s, got, again, ok)
			}
		}
	})
}

// TestRequestStartShortensBudget: a chain's budget runs from when the
// proxy in front received its first request, as X-Request-Start says, so
// a chain that would fit from sequoia's own reading is refused when the
// proxy held it too long; a time in the future, longer ago than half the
// budget, or in a header sequoia was not told to read changes nothing.
func TestRequestStartShortensBudget(t *testing.T) {
	b := startBackend(t)
	send := func(header []byte, id, start string) int {
		t.Helper()
		s := qos.New(qos.Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute})
		s.Observe("guest/a", 3*time.Second) // a two-step chain: 6 s of a 10 s budget
		addr := startProxyWith(t, "http://"+b.addr, s, Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1024, RequestStartHeader: header})
		hdr := ""
		if start != "" {
			hdr = "X-Request-Start: " + start + "\r\n"
		}
		resp := rawRequest(t, addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
			"X-Sequoia-Chain-Id: "+id+"\r\nX-Sequoia-Deadline-Ms: 10000\r\nX-Sequoia-Chain-Steps: 2\r\n"+hdr+"Content-Length: 0\r\n\r\n")
		return resp.StatusCode()
	}
	hdr := []byte("X-Request-Start")
	ago := func(d time.Duration) string { return fmt.Sprintf("t=%d", time.Now().Add(-d).UnixMilli()) }
	agoSec := func(d time.Duration) string {
		at := time.Now().Add(-d)
		return fmt.Sprintf("t=%d.%03d", at.Unix(), at.Nanosecond()/1e6)
	}
	// 4 s before: 6 s of the budget are left, less the 5% headroom.
	if got := send(hdr, "ms", ago(4*time.Second)); got != 429 {
		t.Errorf("received 4s before (ms), 6s of work: status %d, want 429", got)
	}
	if got := send(hdr, "sec", agoSec(4*time.Second)); got != 429 {
		t.Errorf("received 4s before (seconds.ms), 6s of work: status %d, want 429", got)
	}
	if got := send([]byte("x-request-start"), "lower", ago(4*time.Second)); got != 429 {
		t.Errorf("received 4s before, the header named in lower case: status %d, want 429", got)
	}
	for _, c := range []struct {
		name   string
		header []byte
		start  string
	}{
		{"no header", hdr, ""},
		{"1s before", hdr, ago(time.Second)},
		{"in the future", hdr, ago(-4 * time.Second)},
		{"8s before, over half the budget", hdr, ago(8 * time.Second)},
		{"not a time", hdr, "soon"},
		{"header not read", nil, ago(4 * time.Second)},
		{"another header read", []byte("X-Queue-Start"), ago(4 * time.Second)},
	} {
		if got := send(c.header, "c", c.start); got != 201 {
			t.Errorf("%s: status %d, want 201", c.name, got)
		}
	}
}

// deadlineDecider gives every chain a budget, as a policy's
// chain_deadline_ms does.
type deadlineDecider time.Duration

func (d deadlineDecider) Decide(inv *invocation.Invocation) (bool, string) {
	inv.Budget = time.Duration(d)
	return false, ""
}

// TestRequestStartWithoutDeadlineHeader: a budget the client did not send,
// the policy's or the default one, runs from when the proxy in front
// received the request too.
func TestRequestStartWithoutDeadlineHeader(t *testing.T) {
	b := startBackend(t)
	for _, c := range []struct {
		name  string
		cfg   Config
		qdef  time.Duration // the scheduler's default deadline
		start time.Duration // how long before the proxy in front received it
		want  int
	}{
		{"policy's 10s, received 4s before", Config{Decider: deadlineDecider(10 * time.Second)}, 0, 4 * time.Second, 429},
		{"policy's 10s, received 1s before", Config{Decider: deadlineDecider(10 * time.Second)}, 0, time.Second, 201},
		{"default 10s, received 4s before", Config{}, 10 * time.Second, 4 * time.Second, 429},
		{"default 10s, received 1s before", Config{}, 10 * time.Second, time.Second, 201},
	} {
		s := qos.New(qos.Config{Limit: 1, QueueCapacity: 10, QueueTimeout: time.Minute, DefaultDeadline: c.qdef})
		s.Observe("guest/a", 3*time.Second) // a two-step chain: 6 s of work
		cfg := c.cfg
		cfg.Platform, cfg.MaxBodyBytes, cfg.RequestStartHeader = invocation.OpenWhisk, 1024, []byte("X-Request-Start")
		addr := startProxyWith(t, "http://"+b.addr, s, cfg)
		resp := rawRequest(t, addr, "POST /api/v1/namespaces/guest/actions/a HTTP/1.1\r\nHost: x\r\n"+
			"X-Sequoia-Chain-Steps: 2\r\nX-Request-Start: "+fmt.Sprintf("t=%d", time.Now().Add(-c.start).UnixMilli())+
			"\r\nContent-Length: 0\r\n\r\n")
		if got := resp.StatusCode(); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}
