package proxy

import (
	"errors"
	"testing"
)

func TestParseOpenWhisk(t *testing.T) {
	tests := []struct {
		method, path     string
		kind             routeKind
		function, tenant string
		err              error
	}{
		{"POST", "/api/v1/namespaces/guest/actions/hello", routeInvoke, "guest/hello", "guest", nil},
		{"POST", "/api/v1/namespaces/_/actions/hello", routeInvoke, "_/hello", "_", nil},
		{"POST", "/api/v1/namespaces/guest/actions/pkg/hello", routeInvoke, "guest/pkg/hello", "guest", nil},
		{"POST", "/api/v1/namespaces/guest/actions/my action", routeInvoke, "guest/my action", "guest", nil},
		{"GET", "/api/v1/web/guest/default/hello.json", routeInvoke, "guest/default/hello", "guest", nil},
		{"POST", "/api/v1/web/guest/pkg/hello.http/extra/path", routeInvoke, "guest/pkg/hello", "guest", nil},
		{"GET", "/api/v1/namespaces/guest/actions/hello", routeControl, "", "", nil},
		{"GET", "/api/v1/namespaces/guest/activations/abc", routeControl, "", "", nil},
		{"GET", "/api/v1/namespaces", routeControl, "", "", nil},
		{"POST", "/api/v1/namespaces//actions/hello", 0, "", "", errBadPath},
		{"POST", "/api/v1/namespaces/guest/actions/", 0, "", "", errBadPath},
		{"POST", "/api/v1/namespaces/guest/actions", 0, "", "", errBadPath},
		{"POST", "/api/v1/namespaces/guest/actions/a/b/c", 0, "", "", errBadPath},
		{"POST", "/api/v1/namespaces/gu$est/actions/a", 0, "", "", errBadPath},
		{"GET", "/api/v1/web/guest/hello", 0, "", "", errBadPath},
		{"GET", "/api/v1/web/guest//hello", 0, "", "", errBadPath},
		{"GET", "/", 0, "", "", errNoRoute},
		{"POST", "/2015-03-31/functions/x/invocations", 0, "", "", errNoRoute},
	}
	for _, tt := range tests {
		got, err := parseOpenWhisk([]byte(tt.method), []byte(tt.path), nil)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s %s: err = %v, want %v", tt.method, tt.path, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if got.kind != tt.kind || string(got.function) != tt.function || string(got.tenant) != tt.tenant {
			t.Errorf("%s %s = {%d %q %q}, want {%d %q %q}", tt.method, tt.path,
				got.kind, got.function, got.tenant, tt.kind, tt.function, tt.tenant)
		}
	}
}

func TestParseLambda(t *testing.T) {
	tests := []struct {
		method, path, query       string
		kind                      routeKind
		function, tenant, qualify string
		err                       error
	}{
		{"POST", "/2015-03-31/functions/hello/invocations", "", routeInvoke, "hello", "", "", nil},
		{"POST", "/2015-03-31/functions/hello/invocations", "prod", routeInvoke, "hello", "", "prod", nil},
		{"POST", "/2015-03-31/functions/hello:7/invocations", "", routeInvoke, "hello", "", "7", nil},
		{"POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello/invocations", "", routeInvoke, "hello", "123456789012", "", nil},
		{"POST", "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello:$LATEST/invocations", "", routeInvoke, "hello", "123456789012", "$LATEST", nil},
		{"POST", "/2015-03-31/functions/123456789012:function:hello/invocations", "", routeInvoke, "hello", "123456789012", "", nil},
		{"GET", "/2015-03-31/functions/hello", "", routeControl, "", "", "", nil},
		{"GET", "/2015-03-31/functions/", "", routeControl, "", "", "", nil},
		{"POST", "/2021-11-15/functions/hello/response-streaming-invocations", "", routeControl, "", "", "", nil},
		{"POST", "/2015-03-31/functions//invocations", "", 0, "", "", "", errBadPath},
		{"POST", "/2015-03-31/functions/a/b/invocations", "", 0, "", "", "", errBadPath},
		{"POST", "/2015-03-31/functions/he.llo/invocations", "", 0, "", "", "", errBadPath},
		{"POST", "/2015-03-31/functions/hello:/invocations", "", 0, "", "", "", errBadPath},
		{"POST", "/2015-03-31/functions/arn:aws:lambda:r:acct:function:hello/invocations", "", 0, "", "", "", errBadPath},
		{"POST", "/2015-03-31/functions/hello/invocations", "a/b", 0, "", "", "", errBadPath},
		{"POST", "/api/v1/namespaces/guest/actions/hello", "", 0, "", "", "", errNoRoute},
	}
	for _, tt := range tests {
		got, err := parseLambda([]byte(tt.method), []byte(tt.path), []byte(tt.query))
		if !errors.Is(err, tt.err) {
			t.Errorf("%s %s: err = %v, want %v", tt.method, tt.path, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if got.kind != tt.kind || string(got.function) != tt.function || string(got.tenant) != tt.tenant || string(got.qualifier) != tt.qualify {
			t.Errorf("%s %s = {%d %q %q %q}, want {%d %q %q %q}", tt.method, tt.path,
				got.kind, got.function, got.tenant, got.qualifier, tt.kind, tt.function, tt.tenant, tt.qualify)
		}
	}
}

func TestParseHTTP(t *testing.T) {
	tests := []struct {
		mode             httpRoute
		host, path       string
		function, tenant string
		err              error
	}{
		{httpRouteAuto, "hello.default.example.com", "/", "hello", "default", nil},
		{httpRouteAuto, "hello.default.svc.cluster.local:8080", "/x", "hello", "default", nil},
		{httpRouteAuto, "hello.example", "/", "hello", "", nil},
		{httpRouteAuto, "localhost:8080", "/resize/img", "resize", "", nil},
		{httpRouteAuto, "127.0.0.1:8080", "/resize", "resize", "", nil},
		{httpRouteAuto, "[::1]:8080", "/resize", "resize", "", nil},
		{httpRoutePath, "hello.default.example.com", "/resize", "resize", "", nil},
		{httpRouteHost, "localhost", "/resize", "localhost", "", nil},
		{httpRouteAuto, "localhost", "/", "", "", errNoRoute},
		{httpRouteAuto, "localhost", "/a$b", "", "", errBadPath},
		{httpRouteAuto, ".example.com", "/", "", "", errBadPath},
	}
	for _, tt := range tests {
		got, err := parseHTTP(tt.mode, []byte(tt.host), []byte(tt.path))
		if !errors.Is(err, tt.err) {
			t.Errorf("%s %s: err = %v, want %v", tt.host, tt.path, err, tt.err)
			continue
		}
		if err == nil && (string(got.function) != tt.function || string(got.tenant) != tt.tenant) {
			t.Errorf("%s %s = {%q %q}, want {%q %q}", tt.host, tt.path, got.function, got.tenant, tt.function, tt.tenant)
		}
	}
}

// FuzzParse checks that no input makes a parser panic, and that what the
// parsers accept is well-formed: a non-empty function name of the
// platform's allowed characters, never containing a path traversal.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/api/v1/namespaces/guest/actions/pkg/hello",
		"/api/v1/web/guest/default/hello.json",
		"/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:hello:1/invocations",
		"/2015-03-31/functions/hello/invocations",
		"/hello/world", "/", "", "/api/v1/namespaces/../actions/x",
	} {
		f.Add("POST", s, "hello.default.example.com:80")
	}
	f.Fuzz(func(t *testing.T, method, path, host string) {
		scratch := make([]byte, 0, 8)
		check := func(shape string, rt route, err error) {
			if err != nil || rt.kind != routeInvoke {
				return
			}
			if len(rt.function) == 0 {
				t.Fatalf("%s: empty function for %q", shape, path)
			}
			for _, seg := range splitSlash(rt.function) {
				if seg == ".." || seg == "." || seg == "" {
					t.Fatalf("%s: function %q for %q has segment %q", shape, rt.function, path, seg)
				}
			}
		}
		rt, err := parseOpenWhisk([]byte(method), []byte(path), scratch)
		check("openwhisk", rt, err)
		rt, err = parseLambda([]byte(method), []byte(path), nil)
		check("lambda", rt, err)
		for _, mode := range []httpRoute{httpRouteAuto, httpRouteHost, httpRoutePath} {
			rt, err = parseHTTP(mode, []byte(host), []byte(path))
			check("http", rt, err)
		}
	})
}

func splitSlash(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == '/' {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return append(out, string(b[start:]))
}

func BenchmarkParseOpenWhisk(b *testing.B) {
	path, method := []byte("/api/v1/namespaces/guest/actions/pkg/hello"), []byte("POST")
	scratch := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseOpenWhisk(method, path, scratch); err != nil {
			b.Fatal(err)
		}
	}
}
