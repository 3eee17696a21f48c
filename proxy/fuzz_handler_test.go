package proxy

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// FuzzHandler sends raw bytes, as a client's connection carries them,
// through fasthttp into the whole handler (edge listener, header checks,
// routing, the DAG API, admission, the platform client), for each
// platform's API. It must never panic, never connect anywhere but the
// backend, and never forward a request whose target is not a path.
//
//	go test -run '^$' -fuzz FuzzHandler ./proxy
func FuzzHandler(f *testing.F) {
	for _, s := range []string{
		"POST /api/v1/namespaces/guest/actions/hello?blocking=true HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: x\r\nX-Amz-Invocation-Type: Event\r\nContent-Length: 2\r\n\r\n{}",
		"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
		"GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /fn HTTP/1.1\r\nHost: x\r\nX-A: 1\nInjected: 1\r\nContent-Length: 2\r\n\r\nhi",
		"POST /fn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
		"PUT /sequoia/v1/dags/d HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{\"start\":\"a\",\"nodes\":{\"a\":{\"kind\":\"task\",\"function\":\"f\"}}}",
		"POST /sequoia/v1/dags/d/runs HTTP/1.1\r\nHost: x\r\nX-Sequoia-Chain-Id: c1\r\nX-Sequoia-Deadline-Ms: 5\r\nContent-Length: 2\r\n\r\n{}",
		"GET /%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\nGET /fn HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /fn HTTP/1.0\r\n\r\n",
		"\r\n\r\n",
	} {
		for k := range 3 {
			f.Add(uint8(k), []byte(s))
		}
	}
	b := startRawBackend(f, answerOK)
	var (
		mu       sync.Mutex
		strayTo  []string
		backends = map[invocation.Platform]string{}
	)
	dial := func(addr string) (net.Conn, error) {
		if addr != b.addr {
			mu.Lock()
			strayTo = append(strayTo, addr)
			mu.Unlock()
		}
		return fasthttp.Dial(addr)
	}
	for _, kind := range []invocation.Platform{invocation.HTTP, invocation.OpenWhisk, invocation.Lambda} {
		s := qos.New(qos.Config{Limit: 4, QueueCapacity: 100, QueueTimeout: 5 * time.Second})
		up, err := platform.New(platform.Config{URL: "http://" + b.addr, Kind: kind, Timeout: 5 * time.Second, MaxConns: 16, Dial: dial})
		if err != nil {
			f.Fatal(err)
		}
		p := New(Config{Platform: kind, MaxBodyBytes: 1 << 20, HeaderTimeout: 500 * time.Millisecond,
			BodyTimeout: time.Second, IdleTimeout: time.Second}, s, up, metrics.New(100), slog.New(slog.DiscardHandler))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatal(err)
		}
		go p.Serve(ln) //nolint:errcheck
		f.Cleanup(func() { _ = p.srv.Shutdown(); up.Close(); s.Close() })
		backends[kind] = ln.Addr().String()
	}
	kinds := []invocation.Platform{invocation.HTTP, invocation.OpenWhisk, invocation.Lambda}
	f.Fuzz(func(t *testing.T, k uint8, raw []byte) {
		c, err := net.Dial("tcp", backends[kinds[int(k)%len(kinds)]])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(raw); err == nil {
			_ = c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c) // until the proxy closes: every answer written
		}
		mu.Lock()
		stray := strayTo
		mu.Unlock()
		if len(stray) > 0 {
			t.Fatalf("the proxy connected to %v, not only the backend %s", stray, b.addr)
		}
		for {
			select {
			case head := <-b.got:
				line, _, _ := strings.Cut(head, "\r\n")
				parts := strings.Fields(line)
				if len(parts) != 3 || !strings.HasPrefix(parts[1], "/") || strings.HasPrefix(parts[1], "//") {
					t.Fatalf("the backend received the request line %q", line)
				}
			default:
				return
			}
		}
	})
}
