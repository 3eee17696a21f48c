package fnmap

import (
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/invocation"
)

const (
	ow     = invocation.OpenWhisk
	lambda = invocation.Lambda
	http   = invocation.HTTP
)

func TestResolve(t *testing.T) {
	for _, tt := range []struct {
		spec           string
		from, to       invocation.Platform
		host           bool
		function, qual string
		want           string // Target.String(), or "error: ..." substring
	}{
		{"", ow, lambda, false, "guest/hello", "", "hello"},
		{"", ow, lambda, false, "guest/img/resize", "", "img-resize"},
		{"", ow, lambda, false, "_/hello", "", "hello"},
		{"", ow, lambda, false, "guest/my.action", "", "error: map it in SEQUOIA_OVERFLOW_FUNCTIONS"},
		{"", ow, lambda, false, "guest/" + strings.Repeat("a", 65), "", "error: longer than 64"},
		{"guest/my.action=my-action", ow, lambda, false, "guest/my.action", "", "my-action"},
		{"guest/img/resize=resizer:prod", ow, lambda, false, "guest/img/resize", "", "resizer:prod"},
		{"", ow, http, false, "guest/my.action", "", "my.action"},
		{"", ow, http, true, "guest/my.action", "", "error: not allowed"},
		{"", ow, http, true, "guest/Hello", "", "error: not allowed"},
		{"", lambda, ow, false, "hello", "7", "/_/hello"},
		{"hello:7=/prod/v7/hello,hello=tools/hello", lambda, ow, false, "hello", "7", "/prod/v7/hello"},
		{"hello:7=/prod/v7/hello,hello=tools/hello", lambda, ow, false, "hello", "8", "/_/tools/hello"},
		{"hello:7=/prod/v7/hello,hello=tools/hello", lambda, ow, false, "hello", "", "/_/tools/hello"},
		{"", lambda, http, true, "my_fn", "", "error: not allowed"},
		{"", lambda, http, false, "my_fn", "", "my_fn"},
		{"", http, ow, false, "svc", "", "/_/svc"},
		{"", http, lambda, false, "svc.v2", "", "error: not allowed"},
		{" svc.v2 = svc-v2 ", http, lambda, false, "svc.v2", "", "svc-v2"},
	} {
		r, err := New(tt.spec, tt.from, tt.to, tt.host)
		if err != nil {
			t.Errorf("New(%q): %v", tt.spec, err)
			continue
		}
		got, err := r.Resolve(tt.function, tt.qual)
		if want, isErr := strings.CutPrefix(tt.want, "error: "); isErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s→%s %q: %v, %v; want an error with %q", tt.from, tt.to, tt.function, got, err, want)
			}
			continue
		}
		if err != nil || got.String() != tt.want || got.Kind != tt.to {
			t.Errorf("%s→%s %q:%q = %v (%s), %v; want %s", tt.from, tt.to, tt.function, tt.qual, got, got.Kind, err, tt.want)
		}
	}
}

func TestNewBadSpecs(t *testing.T) {
	for _, tt := range []struct {
		spec     string
		from, to invocation.Platform
		want     string
	}{
		{"guest/a=b,", ow, lambda, "entry 2 is empty"},
		{"guest/a", ow, lambda, "want primary=overflow"},
		{"a=b", ow, lambda, `want "ns/action"`},
		{"guest/a/b/c=b", ow, lambda, `want "ns/action"`},
		{"guest/../x=b", ow, lambda, "dot segment"},
		{"guest/a=b.c", ow, lambda, "not allowed"},
		{"guest/a=b:", ow, lambda, "qualifier: empty"},
		{"guest/a=b,guest/a=c", ow, lambda, "mapped twice"},
		{"f=a/b/c", lambda, ow, `want "action"`},
		{"f=/ns", lambda, ow, `want "action"`},
		{"f=//a", lambda, ow, "empty"},
		{"f=/ns//a", lambda, ow, "empty"},
		{"f=a%2Fb", lambda, ow, "not allowed"},
		{"f:=x", lambda, ow, "qualifier: empty"},
		{"f=", lambda, http, "empty"},
		{"f=x y", lambda, http, "not allowed"},
	} {
		_, err := New(tt.spec, tt.from, tt.to, false)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q, %s, %s): %v, want an error with %q", tt.spec, tt.from, tt.to, err, tt.want)
		}
	}
}

// FuzzResolver: whatever the spec, a Resolver either fails to build or
// resolves only to names that parse again as the same target and carry no
// path separators or dot segments beyond OpenWhisk's own.
func FuzzResolver(f *testing.F) {
	f.Add("guest/img/resize=img-resize:prod,guest/a=b", uint8(1), uint8(2), false, "guest/img/resize", "")
	f.Add("hello:7=/prod/v7/hello", uint8(2), uint8(1), false, "hello", "7")
	f.Add("", uint8(0), uint8(2), true, "svc", "")
	f.Fuzz(func(t *testing.T, spec string, from, to uint8, host bool, function, qual string) {
		fk, tk := invocation.Platform(from%3), invocation.Platform(to%3)
		r, err := New(spec, fk, tk, host)
		if err != nil {
			return
		}
		got, err := r.Resolve(function, qual)
		if err != nil {
			return
		}
		again, err := ParseTarget(tk, got.String(), host)
		if err != nil || again != got {
			t.Fatalf("%+v does not parse back: %+v, %v", got, again, err)
		}
		for _, s := range [...]string{got.Namespace, got.Package, got.Name, got.Qualifier} {
			if strings.ContainsAny(s, "/?#%:\\") || s == ".." || s == "." {
				t.Fatalf("unsafe segment %q in %+v", s, got)
			}
		}
	})
}
