package emulator

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fasthttp"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path, host string
		shape      shape
		key        string
	}{
		{"/api/v1/namespaces/guest/actions/hello", "", shapeOpenWhisk, "guest/hello"},
		{"/api/v1/namespaces/_/actions/pkg/hello", "", shapeOpenWhisk, "_/pkg/hello"},
		{"/api/v1/namespaces/guest/actions/a/b/c", "", shapeNone, ""},
		{"/api/v1/namespaces/guest/actions/", "", shapeNone, ""},
		{"/api/v1/namespaces/guest/actions//x", "", shapeNone, ""},
		{"/api/v1/namespaces/guest/rules/r", "", shapeNone, ""},
		{"/api/v1/namespaces//actions/a", "", shapeNone, ""},
		{"/api/v1/web/guest/default/hello.json", "", shapeWeb, "guest/hello"},
		{"/api/v1/web/guest/pkg/hello.text/a/b", "", shapeWeb, "guest/pkg/hello"},
		{"/api/v1/web/guest/pkg/my.action", "", shapeWeb, "guest/pkg/my.action"},
		{"/api/v1/web/guest/pkg/.json", "", shapeWeb, "guest/pkg/.json"},
		{"/api/v1/web/guest/pkg", "", shapeNone, ""},
		{"/2015-03-31/functions/resize/invocations", "", shapeLambda, "resize"},
		{"/2015-03-31/functions/resize:prod/invocations", "", shapeLambda, "resize"},
		{"/2015-03-31/functions/123456789012:function:resize/invocations", "", shapeLambda, "resize"},
		{"/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:resize:7/invocations", "", shapeLambda, "resize"},
		{"/2015-03-31/functions/resize", "", shapeNone, ""},
		{"/2015-03-31/functions//invocations", "", shapeNone, ""},
		{"/thumb", "", shapeHTTP, "thumb"},
		{"/thumb/x/y", "h", shapeHTTP, "thumb"},
		{"/", "greeter.default.svc.cluster.local:8080", shapeHTTP, "greeter"},
		{"/", "localhost:8081", shapeHTTP, "localhost"},
		{"/", "127.0.0.1:8081", shapeHTTP, "default"},
		{"/", "[::1]:8081", shapeHTTP, "default"},
		{"/", "", shapeHTTP, "default"},
		{"/emulator/stats", "", shapeAdmin, "stats"},
	} {
		r := parseRoute([]byte(tc.path), []byte(tc.host))
		if r.shape != tc.shape {
			t.Errorf("parseRoute(%q, %q).shape = %v, want %v", tc.path, tc.host, r.shape, tc.shape)
			continue
		}
		if r.shape == shapeNone || r.shape == shapeAdmin {
			continue
		}
		if got := string(r.appendKey(nil)); got != tc.key {
			t.Errorf("parseRoute(%q, %q) key = %q, want %q", tc.path, tc.host, got, tc.key)
		}
	}
}

func TestParseRouteDoesNotAllocate(t *testing.T) {
	path, host := []byte("/api/v1/namespaces/guest/actions/pkg/hello"), []byte("h")
	var kb [128]byte
	allocs := testing.AllocsPerRun(100, func() {
		r := parseRoute(path, host)
		_ = r.appendKey(kb[:0])
	})
	if allocs != 0 {
		t.Errorf("parseRoute allocates %v times", allocs)
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/api/v1/namespaces/guest/actions/hello",
		"/api/v1/namespaces/guest/actions/pkg/hello",
		"/api/v1/web/guest/default/hello.json/x",
		"/2015-03-31/functions/arn:aws:lambda:r:1:function:f:q/invocations",
		"/2015-03-31/functions/:function:/invocations",
		"/fn/x", "/", "//", "/emulator/", "/api/v1/web/a/b/.json",
	} {
		f.Add(s, "fn.example.com:80")
	}
	f.Fuzz(func(t *testing.T, path, host string) {
		r := parseRoute([]byte(path), []byte(host))
		switch r.shape {
		case shapeNone, shapeAdmin:
			return
		case shapeOpenWhisk, shapeWeb:
			if len(r.ns) == 0 {
				t.Fatalf("%q: OpenWhisk route without namespace", path)
			}
		}
		if len(r.name) == 0 {
			t.Fatalf("%q %q: %v route without a name", path, host, r.shape)
		}
		if r.shape != shapeWeb && r.shape != shapeHTTP && bytes.IndexByte(r.name, '/') >= 0 {
			t.Fatalf("%q: name %q has a slash", path, r.name)
		}
		if r.shape == shapeLambda && bytes.IndexByte(r.name, ':') >= 0 {
			t.Fatalf("%q: Lambda name %q keeps a qualifier", path, r.name)
		}
		key := r.appendKey(nil)
		if len(key) == 0 {
			t.Fatalf("%q: empty key", path)
		}
		// The result JSON must stay valid whatever the name.
		if b := appendJSONString(nil, key); !json.Valid(b) {
			t.Fatalf("key %q encodes to invalid JSON %s", key, b)
		}
	})
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\ nl\n", "\x00\x1f", "é☃😀", "\xff\xfe", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("round trip %q -> %s -> %q", s, b, got)
		}
	})
}

func TestParsePayload(t *testing.T) {
	for _, tc := range []struct {
		body         string
		input        bool
		exec         float64 // ms; -1 when absent
		fail, warmup bool
	}{
		{"", false, -1, false, false},
		{"not json", false, -1, false, false},
		{`{"a":1}`, true, -1, false, false},
		{` [1,2] `, true, -1, false, false},
		{`{"exec_ms": 12.5, "fail": true}`, true, 12.5, true, false},
		{`{"exec_ms": -3}`, true, 0, false, false},
		{`{"exec_ms": "x", "sequoia_warmup": true}`, true, -1, false, true},
		{`{"fail": "yes"}`, true, -1, false, false},
	} {
		p := parsePayload([]byte(tc.body))
		exec := -1.0
		if p.hasExec {
			exec = durationToMs(p.exec)
		}
		if (p.input != nil) != tc.input || exec != tc.exec || p.fail != tc.fail || p.warmup != tc.warmup {
			t.Errorf("parsePayload(%q) = input %v exec %v fail %v warmup %v", tc.body, p.input != nil, exec, p.fail, p.warmup)
		}
	}
}

// BenchmarkHandler measures the in-process cost of one warm invocation with
// no delays: the emulator's overhead in a passthrough benchmark.
func BenchmarkHandler(b *testing.B) {
	for _, tc := range []struct{ name, uri string }{
		{"http", "/fn"},
		{"openwhisk", "/api/v1/namespaces/guest/actions/fn?blocking=true"},
		{"lambda", "/2015-03-31/functions/fn/invocations"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := New(Config{Limit: 1 << 20})
			h := e.Handler()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var ctx fasthttp.RequestCtx
				ctx.Request.Header.SetMethod("POST")
				ctx.Request.SetRequestURI(tc.uri)
				ctx.Request.SetBodyString(`{"n":1}`)
				for pb.Next() {
					ctx.Response.Reset()
					h(&ctx)
					if ctx.Response.StatusCode() != 200 {
						b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
					}
				}
			})
		})
	}
}
