package warmpool

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// HeaderWarmup marks a warm-up for platforms that pass headers to the
// function (HTTP, Knative, OpenWhisk web actions). The payload carries the
// same mark for those that do not (OpenWhisk actions, Lambda).
const HeaderWarmup = "X-Sequoia-Warmup"

// warmLocked sends up to k warm-ups of f, each in a slot of its own taken
// from idle capacity; it stops at the first slot refused. A function that
// failed its last warm-up is left alone until its back-off ends. Two or
// more sent together are a round, checked once all have answered
// (hold.go).
//
// REQUIRES: f.mu.
func (p *Pool) warmLocked(f *function, k int, why Reason, now time.Time) {
	if k <= 0 || now.Before(f.retryAt) || p.closed.Load() {
		return
	}
	if p.offLocked(f) {
		return
	}
	if p.cfg.Platform == invocation.HTTP && f.host == "" {
		return // never called with a Host yet: nowhere to send
	}
	headroom := max(1, int(p.cfg.Headroom*float64(p.slots.Limit())+0.999))
	var r *round
	if k >= 2 {
		r = &round{f: f, why: why, hold: f.hold, answers: make([]answer, 0, k)}
	}
	for range k {
		if !p.slots.TryAcquireIdle(headroom) {
			return
		}
		if !p.startSend() {
			p.slots.ReleaseIdle()
			return
		}
		expected := f.takeLocked(now, p.cfg.KeepAlive)
		f.warming++
		f.sent[why]++
		w := warmup{f: f, qualifier: f.qualifier, host: f.host, path: f.path, auth: f.auth,
			hold: f.hold, round: r, expected: expected}
		if r != nil {
			r.pending++
		}
		go p.send(w, why)
	}
}

// startSend counts a warm-up about to be sent in p.sending, unless the
// pool is closed. Close waits for p.sending once closed is set, and a
// WaitGroup must not grow from zero while waited for: so the check and
// the count happen together under closing, which only sends take.
func (p *Pool) startSend() bool {
	p.closing.RLock()
	defer p.closing.RUnlock()
	if p.closed.Load() {
		return false
	}
	p.sending.Add(1)
	return true
}

// warmup is what one warm-up needs of its function, copied so that the
// sender holds no lock, the function whose state its answer updates (even
// if the pool has since forgotten it), and the round it belongs to (nil:
// sent alone).
type warmup struct {
	f                           *function
	qualifier, host, path, auth string
	hold                        time.Duration
	round                       *round
	expected                    bool // an idle instance was believed left for it
}

func (p *Pool) send(w warmup, why Reason) {
	defer p.sending.Done()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	BuildRequest(req, p.cfg.Platform, w.f.name, w.qualifier, w.host, w.path, w.hold)
	if w.auth != "" {
		req.Header.Set("Authorization", w.auth)
	}
	inv := invocation.Invocation{
		Function: w.f.name, Qualifier: w.qualifier, Platform: p.cfg.Platform,
		Arrival: p.cfg.Now(), Req: req, Resp: resp,
	}
	a := answer{sent: inv.Arrival, expected: w.expected}
	err := p.iv.Invoke(&inv)
	a.answered = p.cfg.Now()
	p.slots.ReleaseIdle()
	a.ok = err == nil && resp.StatusCode() >= 200 && resp.StatusCode() < 300 &&
		len(resp.Header.Peek("X-Amz-Function-Error")) == 0
	a.cold, a.known = coldSignal(&inv)
	p.warmed(w, why, a, err, resp.StatusCode())
}

// warmed records a warm-up's end: a warm instance, or a failure that backs
// off warming the function; and the last answer of a round checks it.
func (p *Pool) warmed(w warmup, why Reason, a answer, err error, status int) {
	now, ok := a.answered, a.ok
	v := unchecked
	if a.known {
		p.sawSignal()
	}
	f := w.f
	f.mu.Lock()
	if w.round != nil {
		v = p.answeredLocked(w.round, a)
	}
	f.warming = max(f.warming-1, 0)
	if ok {
		f.release(now)
		f.fails = 0
	} else {
		f.fails++
		pause := p.cfg.Backoff << min(f.fails-1, 30)
		if pause <= 0 || pause > p.cfg.MaxBackoff {
			pause = p.cfg.MaxBackoff
		}
		if at := now.Add(pause); at.After(f.retryAt) {
			f.retryAt = at
		}
	}
	f.mu.Unlock()
	p.cfg.Reporter.Warmup(why, ok)
	p.cfg.Reporter.Held(w.hold)
	if v != unchecked {
		p.cfg.Reporter.Round(v == verified)
	}
	if !ok {
		p.cfg.Log.Debug("warm-up failed", "function", w.f.name, "reason", why.String(), "status", status, "err", err)
	}
}

// BuildRequest fills req with a warm-up of fn in platform's invoke API:
// header X-Sequoia-Warmup: 1 and payload
// {"sequoia_warmup": true, "sequoia_warmup_hold_ms": hold}, the hold in
// whole milliseconds rounded up. host and path are where an HTTP function
// was called (Host header, "/" or "/name").
func BuildRequest(req *fasthttp.Request, platform invocation.Platform, fn, qualifier, host, path string, hold time.Duration) {
	req.Header.SetMethod(fasthttp.MethodPost)
	switch platform {
	case invocation.OpenWhisk:
		ns, rest, _ := strings.Cut(fn, "/")
		req.SetRequestURI("/api/v1/namespaces/" + url.PathEscape(ns) + "/actions/" + escapeSegments(rest) + "?blocking=true&result=true")
	case invocation.Lambda:
		uri := "/2015-03-31/functions/" + url.PathEscape(fn) + "/invocations"
		if qualifier != "" {
			uri += "?Qualifier=" + url.QueryEscape(qualifier)
		}
		req.SetRequestURI(uri)
		req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
	default:
		if path == "" {
			path = "/"
		}
		req.SetRequestURI(path)
		if host != "" {
			req.Header.SetHost(host)
		}
	}
	req.Header.Set(HeaderWarmup, "1")
	req.Header.SetContentType("application/json")
	b := append(req.Body()[:0], `{"sequoia_warmup":true,"sequoia_warmup_hold_ms":`...)
	b = strconv.AppendInt(b, wholeMs(hold).Milliseconds(), 10)
	req.SetBody(append(b, '}'))
}

func escapeSegments(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
