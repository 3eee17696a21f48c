package loadtest

import (
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Balancer is a small round-robin HTTP load balancer for the cluster
// bench when HAProxy is not installed: each request goes to the next
// backend in turn, as HAProxy's "balance roundrobin" sends each request
// (not each connection). A backend that refuses a connection is skipped,
// the request going to the next one, and rests for a second, as HAProxy's
// "option redispatch" with health checks does; a request already sent is
// never sent again. It says when it received each request in
// X-Request-Start, as HAProxy and nginx are set up to in front of sequoia.
type Balancer struct {
	backends []*backend
	next     atomic.Uint64
	srv      *fasthttp.Server
	ln       net.Listener
}

type backend struct {
	hc        *fasthttp.HostClient
	downUntil atomic.Int64 // Unix nanoseconds
}

// StartBalancer listens on a free loopback port and balances over the
// backends' host:port addresses.
func StartBalancer(backends []string) (*Balancer, error) {
	if len(backends) == 0 {
		return nil, errors.New("balancer: no backends")
	}
	b := &Balancer{}
	for _, addr := range backends {
		b.backends = append(b.backends, &backend{hc: &fasthttp.HostClient{
			Addr: addr, MaxConns: 100000, ReadTimeout: 5 * time.Minute, WriteTimeout: time.Minute,
			NoDefaultUserAgentHeader: true, DisableHeaderNamesNormalizing: true, DisablePathNormalizing: true,
			MaxIdemponentCallAttempts: 1,
		}})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.ln = ln
	b.srv = &fasthttp.Server{Handler: b.serve, NoDefaultServerHeader: true, NoDefaultDate: true,
		NoDefaultContentType: true, DisableHeaderNamesNormalizing: true, ReadTimeout: 5 * time.Minute}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// Addr is where the balancer listens.
func (b *Balancer) Addr() string { return b.ln.Addr().String() }

// Close stops the balancer.
func (b *Balancer) Close() { _ = b.srv.Shutdown() }

func (b *Balancer) serve(ctx *fasthttp.RequestCtx) {
	now := time.Now().UnixNano()
	// When it received the request (the connection's accept, for its
	// first), as nginx's and HAProxy's X-Request-Start say it.
	at := ctx.Time()
	if ctx.ConnRequestNum() == 1 {
		at = ctx.ConnTime()
	}
	ctx.Request.Header.Set("X-Request-Start", "t="+strconv.FormatInt(at.UnixMilli(), 10))
	for range len(b.backends) {
		be := b.backends[b.next.Add(1)%uint64(len(b.backends))]
		if be.downUntil.Load() > now {
			continue
		}
		ctx.Request.Header.Del("Connection")
		err := be.hc.Do(&ctx.Request, &ctx.Response)
		if err == nil {
			ctx.Response.Header.Del("Connection")
			return
		}
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, fasthttp.ErrDialTimeout) {
			be.downUntil.Store(now + int64(time.Second))
			ctx.Response.Reset()
			continue // never sent: try the next one
		}
		ctx.Error("balancer: "+err.Error(), fasthttp.StatusBadGateway)
		return
	}
	ctx.Error("balancer: no backend up", fasthttp.StatusServiceUnavailable)
}
