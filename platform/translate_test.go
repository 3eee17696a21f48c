package platform

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/internal/fnmap"
	"github.com/sequoia-qos/sequoia/invocation"
)

// platformServer is a loopback HTTP server that answers every request
// with answer and keeps a copy of the last request it read.
type platformServer struct {
	mu   sync.Mutex
	last fasthttp.Request
	n    int // requests read
}

func startPlatform(t *testing.T, answer func(ctx *fasthttp.RequestCtx)) (*platformServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &platformServer{}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ps.mu.Lock()
		ctx.Request.CopyTo(&ps.last)
		ps.n++
		ps.mu.Unlock()
		answer(ctx)
	}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ps, "http://" + ln.Addr().String()
}

func newTestTranslator(t *testing.T, from, to invocation.Platform, url, names string) *Translator {
	t.Helper()
	c, err := New(Config{URL: url, Kind: to, Timeout: 5 * time.Second, MaxConns: 4, Authorization: owAuth("uuid:sequoia-key", to)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := fnmap.New(names, from, to, false)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewTranslator(TranslatorConfig{From: from, To: to, Client: c, Names: r})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// owAuth is the Client Authorization for an OpenWhisk overflow's API key
// ("uuid:key"); "" for another platform.
func owAuth(key string, to invocation.Platform) string {
	if to != invocation.OpenWhisk {
		return ""
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(key))
}

// lambdaInvocation is an invocation as a Lambda client signs it.
func lambdaInvocation(function, body string) (*invocation.Invocation, *fasthttp.Response) {
	req, resp := new(fasthttp.Request), new(fasthttp.Response)
	req.Header.SetMethod("POST")
	req.SetRequestURI("/2015-03-31/functions/" + function + "/invocations")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=CLIENTKEY/20260101/eu-west-1/lambda/aws4_request, SignedHeaders=host, Signature=abc")
	req.Header.Set("X-Amz-Date", "20260101T000000Z")
	req.Header.Set("Cookie", "session=client")
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	req.SetBodyString(body)
	return &invocation.Invocation{Function: function, Platform: invocation.Lambda, Chain: "chain-1", Req: req, Resp: resp}, resp
}

// TestTranslatorRequestLambdaToOpenWhisk: the request the overflow
// OpenWhisk gets names the mapped action, carries the payload as
// parameters and sequoia's own key, and nothing of the client's
// credentials.
func TestTranslatorRequestLambdaToOpenWhisk(t *testing.T) {
	ps, url := startPlatform(t, func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"ok":true}`)
	})
	tr := newTestTranslator(t, invocation.Lambda, invocation.OpenWhisk, url, "resize=/guest/img tools/re size")
	inv, resp := lambdaInvocation("resize", `{"w":3}`)
	if err := tr.Invoke(inv); err != nil {
		t.Fatal(err)
	}
	ps.mu.Lock()
	got := &ps.last
	if p := string(got.URI().PathOriginal()); p != "/api/v1/namespaces/guest/actions/img%20tools/re%20size" {
		t.Errorf("path %s", p)
	}
	if q := string(got.URI().QueryString()); q != "blocking=true&result=true" {
		t.Errorf("query %s", q)
	}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("uuid:sequoia-key"))
	if a := string(got.Header.Peek("Authorization")); a != want {
		t.Errorf("Authorization %q, want sequoia's key", a)
	}
	for _, h := range []string{"X-Amz-Date", "Cookie"} {
		if v := got.Header.Peek(h); len(v) > 0 {
			t.Errorf("the client's %s reached the overflow platform: %q", h, v)
		}
	}
	if string(got.Header.Peek("X-Sequoia-Chain-Id")) != "chain-1" || len(got.Header.Peek("Traceparent")) == 0 {
		t.Errorf("chain id %q, traceparent %q", got.Header.Peek("X-Sequoia-Chain-Id"), got.Header.Peek("Traceparent"))
	}
	if string(got.Body()) != `{"w":3}` {
		t.Errorf("body %s", got.Body())
	}
	ps.mu.Unlock()
	if resp.StatusCode() != 200 || string(resp.Body()) != `{"ok":true}` || string(resp.Header.Peek("X-Amz-Executed-Version")) != "$LATEST" {
		t.Errorf("answer %d %s", resp.StatusCode(), resp.Body())
	}
}

// TestTranslatorRefusals: the overflow platform's throttles and refusals
// come back as OverflowErrors, and inv.Resp is left alone.
func TestTranslatorRefusals(t *testing.T) {
	for _, tt := range []struct {
		name      string
		status    int
		body      string
		throttled bool
		retry     time.Duration
	}{
		{"throttle", 429, `{"error":"Too many concurrent requests in flight (count: 5, allowed: 5).","code":"x"}`, true, 2 * time.Second},
		{"rate", 429, `{"error":"Too many requests in the last minute (count: 61, allowed: 60)."}`, true, 2 * time.Second},
		{"bad key", 401, `{"error":"The supplied authentication is invalid.","code":"x"}`, false, 0},
		{"no action", 404, `{"error":"The requested resource does not exist.","code":"x"}`, false, 0},
		{"unavailable", 503, `{"error":"down"}`, false, 2 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startPlatform(t, func(ctx *fasthttp.RequestCtx) {
				ctx.Response.Header.Set("Retry-After", "2")
				ctx.SetStatusCode(tt.status)
				ctx.SetBodyString(tt.body)
			})
			tr := newTestTranslator(t, invocation.Lambda, invocation.OpenWhisk, url, "")
			inv, resp := lambdaInvocation("f", `{}`)
			resp.SetStatusCode(299)
			err := tr.Invoke(inv)
			var oe *OverflowError
			if !errors.As(err, &oe) || oe.Status != tt.status || oe.Verdict.Throttled() != tt.throttled || oe.RetryAfter != tt.retry {
				t.Fatalf("%v (%+v), want an OverflowError %d", err, oe, tt.status)
			}
			var msg struct{ Error string }
			_ = json.Unmarshal([]byte(tt.body), &msg)
			if !strings.Contains(err.Error(), msg.Error) || !strings.Contains(err.Error(), "openwhisk") {
				t.Errorf("error %q does not carry the platform's message", err)
			}
			if resp.StatusCode() != 299 {
				t.Errorf("the client's response was written: %d", resp.StatusCode())
			}
		})
	}
}

// TestTranslatorUnreachable: no answer is ErrUnreachable, as for the
// primary.
func TestTranslatorUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := newTestTranslator(t, invocation.OpenWhisk, invocation.Lambda, "http://"+addr, "")
	inv := owInvocation("guest/f", "?blocking=true", `{}`)
	if err := tr.Invoke(inv); !errors.Is(err, ErrUnreachable) {
		t.Errorf("%v, want ErrUnreachable", err)
	}
}

func owInvocation(function, query, body string) *invocation.Invocation {
	req, resp := new(fasthttp.Request), new(fasthttp.Response)
	req.Header.SetMethod("POST")
	ns, rest, _ := strings.Cut(function, "/")
	req.SetRequestURI("/api/v1/namespaces/" + ns + "/actions/" + rest + query)
	req.Header.Set("Authorization", "Basic Y2xpZW50OmtleQ==")
	req.SetBodyString(body)
	return &invocation.Invocation{Function: function, Platform: invocation.OpenWhisk, Req: req, Resp: resp}
}

// TestTranslatorAnswers: each overflow answer written in each primary's
// shape.
func TestTranslatorAnswers(t *testing.T) {
	lambdaOK := func(r *fasthttp.Response) { r.SetBodyString(`"hi"`) }
	lambdaFailed := func(r *fasthttp.Response) {
		r.Header.Set("X-Amz-Function-Error", "Unhandled")
		r.SetBodyString(`{"errorMessage":"boom","errorType":"Error"}`)
	}
	owFailed := func(r *fasthttp.Response) { r.SetStatusCode(502); r.SetBodyString(`{"error":"boom"}`) }
	owPending := func(r *fasthttp.Response) { r.SetStatusCode(202); r.SetBodyString(`{"activationId":"abc"}`) }
	httpText := func(r *fasthttp.Response) { r.SetBodyString("plain text") }
	for _, tt := range []struct {
		name     string
		from, to invocation.Platform
		query    string // OpenWhisk primary's query, or "event"/"async" for the others
		answer   func(*fasthttp.Response)
		status   int
		body     string // substring
		header   string // "Name: value" expected, or ""
	}{
		{"lambda ok to ow result", invocation.OpenWhisk, invocation.Lambda, "?blocking=true&result=true", lambdaOK, 200, `{"payload":"hi"}`, ""},
		{"lambda ok to ow activation", invocation.OpenWhisk, invocation.Lambda, "?blocking=true", lambdaOK, 200, `"response":{"status":"success","statusCode":0,"success":true,"result":{"payload":"hi"}}`, ""},
		{"lambda error to ow result", invocation.OpenWhisk, invocation.Lambda, "?blocking=true&result=true", lambdaFailed, 502, `{"error":"boom"}`, ""},
		{"lambda error to ow activation", invocation.OpenWhisk, invocation.Lambda, "?blocking=true", lambdaFailed, 502, `"status":"application error","statusCode":1,"success":false,"result":{"error":"boom"}`, ""},
		{"ow error to lambda", invocation.Lambda, invocation.OpenWhisk, "", owFailed, 200, `{"errorMessage":"boom","errorType":"Error"}`, "X-Amz-Function-Error: Unhandled"},
		{"ow pending to lambda", invocation.Lambda, invocation.OpenWhisk, "", owPending, 200, `did not finish it within its blocking wait; activation abc`, "X-Amz-Function-Error: Unhandled"},
		{"ow pending to ow-shaped", invocation.HTTP, invocation.OpenWhisk, "", owPending, 202, ``, ""},
		{"http text to lambda", invocation.Lambda, invocation.HTTP, "", httpText, 200, `"plain text"`, "X-Amz-Executed-Version: $LATEST"},
		{"http text to ow", invocation.OpenWhisk, invocation.HTTP, "?blocking=true&result=true", httpText, 200, `{"payload":"plain text"}`, ""},
		{"lambda error to http", invocation.HTTP, invocation.Lambda, "", lambdaFailed, 500, `"errorMessage":"boom"`, ""},
		{"ow nonblocking", invocation.OpenWhisk, invocation.Lambda, "?blocking=false", func(r *fasthttp.Response) { r.SetStatusCode(202) }, 202, `{"activationId":"`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startPlatform(t, func(ctx *fasthttp.RequestCtx) { tt.answer(&ctx.Response) })
			tr := newTestTranslator(t, tt.from, tt.to, url, "")
			var inv *invocation.Invocation
			switch tt.from {
			case invocation.OpenWhisk:
				inv = owInvocation("guest/f", tt.query, `{}`)
			case invocation.Lambda:
				inv, _ = lambdaInvocation("f", `{}`)
			default:
				inv = &invocation.Invocation{Function: "f", Req: new(fasthttp.Request), Resp: new(fasthttp.Response)}
				inv.Req.Header.SetMethod("POST")
				inv.Req.SetRequestURI("/f")
				inv.Req.SetBodyString(`{}`)
			}
			if err := tr.Invoke(inv); err != nil {
				t.Fatal(err)
			}
			r := inv.Resp
			if r.StatusCode() != tt.status || !bytes.Contains(r.Body(), []byte(tt.body)) {
				t.Errorf("%d %s, want %d with %s", r.StatusCode(), r.Body(), tt.status, tt.body)
			}
			if len(r.Body()) > 0 && !json.Valid(r.Body()) {
				t.Errorf("body is not JSON: %s", r.Body())
			}
			if k, v, ok := strings.Cut(tt.header, ": "); ok && string(r.Header.Peek(k)) != v {
				t.Errorf("%s: %q, want %q", k, r.Header.Peek(k), v)
			}
			if string(r.Header.Peek("X-Sequoia-Overflow")) != tt.to.String() {
				t.Errorf("X-Sequoia-Overflow %q", r.Header.Peek("X-Sequoia-Overflow"))
			}
		})
	}
}

// TestTranslatorUntranslatable: what another API cannot carry is refused
// before anything is sent.
func TestTranslatorUntranslatable(t *testing.T) {
	ps, url := startPlatform(t, func(ctx *fasthttp.RequestCtx) {})
	web := owInvocation("guest/p/f", "", `{}`)
	web.Req.SetRequestURI("/api/v1/web/guest/p/f.json")
	nonJSON := owInvocation("guest/f", "?blocking=true", `not json`)
	dotted := owInvocation("guest/f.v2", "?blocking=true", `{}`)
	for name, tc := range map[string]struct {
		from, to invocation.Platform
		inv      *invocation.Invocation
		want     string
	}{
		"web action":  {invocation.OpenWhisk, invocation.Lambda, web, "web actions"},
		"not JSON":    {invocation.OpenWhisk, invocation.Lambda, nonJSON, "not JSON"},
		"unmapped":    {invocation.OpenWhisk, invocation.Lambda, dotted, "SEQUOIA_OVERFLOW_FUNCTIONS"},
		"array to ow": {invocation.Lambda, invocation.OpenWhisk, func() *invocation.Invocation { i, _ := lambdaInvocation("f", `[1]`); return i }(), "JSON object"},
		"dry run type": {invocation.Lambda, invocation.OpenWhisk, func() *invocation.Invocation {
			i, _ := lambdaInvocation("f", `{}`)
			i.Req.Header.Set("X-Amz-Invocation-Type", "DryRun")
			return i
		}(), "no equivalent"},
	} {
		tr := newTestTranslator(t, tc.from, tc.to, url, "")
		err := tr.Invoke(tc.inv)
		var ue *UntranslatableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an UntranslatableError with %q", name, err, tc.want)
		}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.n != 0 {
		t.Errorf("%d untranslatable invocations reached the platform, the last %s", ps.n, ps.last.RequestURI())
	}
}

// FuzzTranslateRequest: whatever the client sent, a request is either
// refused or built for the overflow's own invoke path, with JSON (or no)
// body and no credentials but sequoia's.
func FuzzTranslateRequest(f *testing.F) {
	f.Add(uint8(1), uint8(2), "/api/v1/namespaces/guest/actions/f", "blocking=true&result=true", "", `{"a":1}`, "guest/f", "")
	f.Add(uint8(2), uint8(1), "/2015-03-31/functions/f/invocations", "", "Event", `[1]`, "f", "7")
	f.Add(uint8(0), uint8(2), "/svc", "", "respond-async", ``, "svc", "")
	f.Fuzz(func(t *testing.T, from, to uint8, path, query, hdr, body, function, qualifier string) {
		fk, tk := invocation.Platform(from%3), invocation.Platform(to%3)
		if fk == tk {
			return
		}
		names, err := fnmap.New("", fk, tk, to&4 != 0)
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(Config{URL: "http://127.0.0.1:1", Kind: tk, Authorization: owAuth("u:k", tk)})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTranslator(TranslatorConfig{From: fk, To: tk, Client: c, Names: names,
			HTTPDomain: map[bool]string{true: "ns.example.com"}[to&4 != 0]})
		if err != nil {
			t.Fatal(err)
		}
		req := new(fasthttp.Request)
		req.Header.SetMethod("POST")
		req.URI().SetPath(path)
		req.URI().SetQueryString(query)
		req.Header.Set("X-Amz-Invocation-Type", hdr)
		req.Header.Set("Prefer", hdr)
		req.Header.Set("Authorization", "client-secret")
		req.SetBodyString(body)
		inv := &invocation.Invocation{Function: function, Qualifier: qualifier, Platform: fk, Req: req, Resp: new(fasthttp.Response)}
		cl, err := tr.readCall(inv)
		if err != nil {
			return
		}
		target, err := tr.names.Resolve(function, qualifier)
		if err != nil {
			return
		}
		var out fasthttp.Request
		tr.buildRequest(&out, inv, target, cl)
		if len(out.Body()) > 0 && !json.Valid(out.Body()) {
			t.Errorf("body %q is not JSON", out.Body())
		}
		if tk == invocation.OpenWhisk && (len(out.Body()) == 0 || out.Body()[0] != '{') {
			t.Errorf("OpenWhisk parameters %q are not an object", out.Body())
		}
		if bytes.Contains(out.Header.Peek("Authorization"), []byte("client-secret")) {
			t.Error("the client's Authorization was forwarded")
		}
		p := string(out.URI().Path())
		prefix := map[invocation.Platform]string{invocation.OpenWhisk: "/api/v1/namespaces/", invocation.Lambda: "/2015-03-31/functions/", invocation.HTTP: "/"}[tk]
		if !strings.HasPrefix(p, prefix) || strings.Contains(p, "/../") || strings.Contains(p, "//") {
			t.Errorf("path %q for target %+v", p, target)
		}
	})
}

// FuzzTranslateAnswer: whatever the overflow platform answers, the client
// gets an OverflowError or an answer in its own API's statuses with a JSON
// (or empty) body.
func FuzzTranslateAnswer(f *testing.F) {
	f.Add(uint8(1), uint8(2), uint8(0), 200, "", `{"a":1}`)
	f.Add(uint8(2), uint8(1), uint8(1), 502, "", `{"error":{"x":1}}`)
	f.Add(uint8(0), uint8(2), uint8(2), 200, "Unhandled", `not json`)
	f.Add(uint8(1), uint8(0), uint8(3), 202, "", `{"activationId":"\u0000"}`)
	f.Fuzz(func(t *testing.T, from, to, mode uint8, status int, fnErr, body string) {
		fk, tk := invocation.Platform(from%3), invocation.Platform(to%3)
		if fk == tk || status < 100 || status > 599 {
			return
		}
		tr := &Translator{from: fk, to: tk}
		var resp fasthttp.Response
		resp.SetStatusCode(status)
		resp.Header.Set("X-Amz-Function-Error", fnErr)
		resp.SetBodyString(body)
		a, err := tr.readAnswer(&resp)
		if err != nil {
			var oe *OverflowError
			if !errors.As(err, &oe) || oe.Status != status {
				t.Fatalf("%v", err)
			}
			return
		}
		inv := &invocation.Invocation{Function: "guest/p/f", Resp: new(fasthttp.Response)}
		now := time.Unix(1e9, 0)
		tr.writeAnswer(inv, call{async: mode&1 != 0, resultOnly: mode&2 != 0}, a, now, now)
		got := inv.Resp
		allowed := map[invocation.Platform][]int{invocation.Lambda: {200, 202}, invocation.OpenWhisk: {200, 202, 502}, invocation.HTTP: {200, 202, 500}}[fk]
		ok := false
		for _, s := range allowed {
			ok = ok || got.StatusCode() == s
		}
		if !ok {
			t.Errorf("%s answered %d", fk, got.StatusCode())
		}
		if len(got.Body()) > 0 && !json.Valid(got.Body()) {
			t.Errorf("body %q is not JSON", got.Body())
		}
		if fk == invocation.OpenWhisk && got.StatusCode() != 202 && mode&2 != 0 && !bytes.HasPrefix(got.Body(), []byte("{")) {
			t.Errorf("OpenWhisk result %q is not an object", got.Body())
		}
	})
}

// TestClientAuthorizationReplaced: a client configured with sequoia's own
// credentials (a same-API OpenWhisk overflow with
// SEQUOIA_OVERFLOW_OPENWHISK_AUTH) sends those, not the client's.
func TestClientAuthorizationReplaced(t *testing.T) {
	ps, url := startPlatform(t, func(ctx *fasthttp.RequestCtx) {})
	c, err := New(Config{URL: url, Kind: invocation.OpenWhisk, Timeout: 5 * time.Second, Authorization: "Basic c2VxdW9pYTprZXk="})
	if err != nil {
		t.Fatal(err)
	}
	inv := owInvocation("guest/f", "?blocking=true", `{}`)
	if err := c.Invoke(inv); err != nil {
		t.Fatal(err)
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if a := string(ps.last.Header.Peek("Authorization")); a != "Basic c2VxdW9pYTprZXk=" {
		t.Errorf("Authorization %q, want sequoia's", a)
	}
}

// BenchmarkTranslate measures what overflow to another API adds to an
// invocation, the platform call excluded: reading the client's request,
// naming the target, building the overflow's request, reading its answer
// and writing it in the primary's shape.
func BenchmarkTranslate(b *testing.B) {
	for _, tt := range []struct {
		name     string
		from, to invocation.Platform
		answer   func(*fasthttp.Response)
	}{
		{"lambda-to-openwhisk", invocation.Lambda, invocation.OpenWhisk, func(r *fasthttp.Response) { r.SetBodyString(`{"ok":true,"n":12345}`) }},
		{"openwhisk-to-lambda", invocation.OpenWhisk, invocation.Lambda, func(r *fasthttp.Response) { r.SetBodyString(`{"ok":true,"n":12345}`) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			names, _ := fnmap.New("", tt.from, tt.to, false)
			c, _ := New(Config{URL: "http://127.0.0.1:1", Kind: tt.to, Authorization: owAuth("u:k", tt.to)})
			tr, err := NewTranslator(TranslatorConfig{From: tt.from, To: tt.to, Client: c, Names: names})
			if err != nil {
				b.Fatal(err)
			}
			var inv *invocation.Invocation
			if tt.from == invocation.Lambda {
				inv, _ = lambdaInvocation("resize", `{"w":3,"h":4,"src":"s3://bucket/key.png"}`)
			} else {
				inv = owInvocation("guest/img/resize", "?blocking=true", `{"w":3,"h":4,"src":"s3://bucket/key.png"}`)
			}
			var platform fasthttp.Response
			tt.answer(&platform)
			var out fasthttp.Request
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				cl, err := tr.readCall(inv)
				if err != nil {
					b.Fatal(err)
				}
				target, err := tr.names.Resolve(inv.Function, inv.Qualifier)
				if err != nil {
					b.Fatal(err)
				}
				tr.buildRequest(&out, inv, target, cl)
				a, err := tr.readAnswer(&platform)
				if err != nil {
					b.Fatal(err)
				}
				tr.writeAnswer(inv, cl, a, now, now)
				out.Reset()
			}
		})
	}
}
