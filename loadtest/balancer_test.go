package loadtest

import (
	"net"
	"testing"

	"github.com/valyala/fasthttp"
)

func serveName(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(name) }}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

// TestBalancerRoundRobin: requests on one connection go to each backend in
// turn, and one that refuses connections is skipped.
func TestBalancerRoundRobin(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	b, err := StartBalancer([]string{serveName(t, "a"), deadAddr, serveName(t, "b")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &fasthttp.HostClient{Addr: b.Addr(), MaxConns: 1}
	var got string
	for range 6 {
		code, body, err := c.Post(nil, "http://"+b.Addr()+"/x", nil)
		if err != nil || code != 200 {
			t.Fatalf("%d %v", code, err)
		}
		got += string(body)
	}
	if got != "ababab" && got != "bababa" {
		t.Errorf("answers %q, want a and b in turn", got)
	}
}
