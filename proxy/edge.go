package proxy

import (
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/metrics"
)

// The edge is what the data port does with a connection before and
// around the handler:
//
//   - edgeListener keeps serving through accept errors. fasthttp's Serve
//     returns on any accept error but a timeout, and running out of file
//     descriptors (EMFILE, ENFILE) is one, so a loaded proxy would exit;
//     the listener backs off (5ms doubling to 1s) and accepts again. Only
//     a closed listener ends it.
//   - It caps the open connections (SEQUOIA_MAX_CONNS): one over the cap
//     is answered 503 with Retry-After in the platform's shape and closed,
//     by a small bounded set of goroutines (a plain close beyond them), so
//     the accept loop never waits on a client.
//   - edgeConn counts what a connection has read, so that one that never
//     sent a byte is closed quietly when its time runs out instead of
//     getting an unsolicited 400, and follows whether a request of it is
//     being answered, so that shutdown can wait for those answers.
//   - serveError answers what fasthttp could not read, in the platform's
//     shape: 413 for a body too large, 431 for headers too large, 408 for a
//     request that did not arrive in time, 400 for the rest.
//   - headers.go refuses header framing that another HTTP reader could read
//     differently (bare LF, bare CR, folded lines, invalid names).
type edgeState struct {
	open, handling atomic.Int64
	refused        prometheus.Counter
	acceptErrors   prometheus.Counter
	quiet          prometheus.Counter
	// refusal is the canned answer to a connection over the cap.
	refusal []byte
	// refusing bounds the goroutines that answer refused connections.
	refusing chan struct{}
}

// maxRefusing bounds the refused connections answered at once; beyond it a
// refused connection is closed without an answer.
const maxRefusing = 64

func (e *edgeState) init(p *Proxy) {
	e.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "connections_refused_total",
		Help: "Connections refused because SEQUOIA_MAX_CONNS were open (answered 503 when possible, then closed).",
	})
	e.acceptErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "accept_errors_total",
		Help: "Errors accepting connections on the data port (such as running out of file descriptors); sequoia backs off and keeps serving.",
	})
	e.quiet = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "connections_idle_closed_total",
		Help: "Connections closed without an answer because they sent nothing within SEQUOIA_HEADER_TIMEOUT.",
	})
	e.refusing = make(chan struct{}, maxRefusing)
	e.refusal = rawAnswer(shaped(p.cfg.Platform, errTooManyConns))
	if p.m != nil {
		open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Name: "connections_open",
			Help: "Client connections open on the data port.",
		}, func() float64 { return float64(e.open.Load()) })
		p.m.Registry().MustRegister(e.refused, e.acceptErrors, e.quiet, open)
	}
}

var errTooManyConns = render(&apiError{fasthttp.StatusServiceUnavailable, "too_many_connections",
	"sequoia: too many open connections (SEQUOIA_MAX_CONNS); retry later", 1})

// rawAnswer is a whole HTTP/1.1 response for r that closes the connection.
func rawAnswer(r *renderedError) []byte {
	b := []byte("HTTP/1.1 " + strconv.Itoa(r.status) + " " + fasthttp.StatusMessage(r.status) + "\r\n")
	b = append(b, "Content-Type: application/json\r\n"...)
	if r.retryAfter != nil {
		b = append(b, "Retry-After: "+string(r.retryAfter)+"\r\n"...)
	}
	if r.errorType != nil {
		b = append(b, string(headerAmznErrorType)+": "+string(r.errorType)+"\r\n"...)
	}
	b = append(b, "Connection: close\r\nContent-Length: "+strconv.Itoa(len(r.body))+"\r\n\r\n"...)
	return append(b, r.body...)
}

// edgeListener is the data port's listener (see edgeState).
type edgeListener struct {
	net.Listener
	e      *edgeState
	max    int64 // 0: no cap
	log    func(err error, backoff time.Duration)
	closed chan struct{}
	once   sync.Once
}

func newEdgeListener(ln net.Listener, e *edgeState, maxConns int, log func(error, time.Duration)) *edgeListener {
	return &edgeListener{Listener: ln, e: e, max: int64(maxConns), log: log, closed: make(chan struct{})}
}

// Accept returns the next connection under the cap. It returns an error
// only once the listener is closed.
func (l *edgeListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			default:
			}
			// EMFILE, ENFILE, ENOBUFS, ECONNABORTED and the like: the
			// listener is sound, the moment is not.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.e.acceptErrors.Inc()
			if l.log != nil {
				l.log(err, backoff)
			}
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		backoff = 0
		if l.max > 0 && l.e.open.Load() >= l.max {
			l.refuse(c)
			continue
		}
		l.e.open.Add(1)
		return &edgeConn{Conn: c, e: l.e}, nil
	}
}

// Close closes the listener and ends a backoff in progress.
func (l *edgeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// refuse answers a connection over the cap and closes it. The answer is
// written by one of a few goroutines, which then let the client's request
// drain before closing (closing with unread data would reset the
// connection, and the client could lose the answer); when all are busy the
// connection is closed at once.
func (l *edgeListener) refuse(c net.Conn) {
	l.e.refused.Inc()
	select {
	case l.e.refusing <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.e.refusing }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(l.e.refusal); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// edgeConn is an accepted client connection.
type edgeConn struct {
	net.Conn
	e *edgeState
	// read counts the bytes read. Only the connection's own goroutine
	// reads it (fasthttp's, which also runs the handlers).
	read     int64
	handling atomic.Bool // a request of it is being answered
	closed   atomic.Bool
}

func (c *edgeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.read += int64(n)
	return n, err
}

func (c *edgeConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.e.open.Add(-1)
		c.answered()
	}
	return c.Conn.Close()
}

// SyscallConn exposes the socket, for connWatch.
func (c *edgeConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// handle marks that a request of c is being answered.
func (c *edgeConn) handle() {
	if c.handling.CompareAndSwap(false, true) {
		c.e.handling.Add(1)
	}
}

// answered marks that c's answer is written (or c closed).
func (c *edgeConn) answered() {
	if c.handling.CompareAndSwap(true, false) {
		c.e.handling.Add(-1)
	}
}

// connState follows fasthttp's connection states: a connection goes idle
// once its answer is written.
func (p *Proxy) connState(c net.Conn, st fasthttp.ConnState) {
	if st == fasthttp.StateIdle || st == fasthttp.StateClosed || st == fasthttp.StateHijacked {
		if ec, ok := c.(*edgeConn); ok {
			ec.answered()
		}
	}
}

// Answers to requests fasthttp could not read.
var (
	errHeadersTooLarge = render(&apiError{fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
		"sequoia: the request line and headers exceed the limit of " + strconv.Itoa(readBufferSize>>10) + " KiB", 0})
	errRequestTimeout = render(&apiError{fasthttp.StatusRequestTimeout, "request_timeout",
		"sequoia: the request did not arrive in time (SEQUOIA_HEADER_TIMEOUT for the headers, SEQUOIA_BODY_TIMEOUT for the body)", 0})
	errBodyTooLarge = render(&apiError{fasthttp.StatusRequestEntityTooLarge, "body_too_large",
		"sequoia: the request body exceeds SEQUOIA_MAX_BODY_BYTES", 0})
	errMalformed = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: malformed request: the request line, a header or the body's framing could not be parsed", 0})
)

// readBufferSize bounds the request line and headers.
const readBufferSize = 16 << 10

// serveError answers requests fasthttp could not read, in the platform's
// shape, and closes the connection. A connection that sent nothing before
// its time ran out is closed without an answer: nothing was asked.
func (p *Proxy) serveError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p.reject(ctx, metrics.BodyTooLarge, errBodyTooLarge)
	case errors.As(err, &small):
		p.reject(ctx, metrics.HeadersTooLarge, errHeadersTooLarge)
	case isTimeout(err):
		if ec, ok := ctx.Conn().(*edgeConn); ok && ec.read == 0 {
			p.edge.quiet.Inc()
			// fasthttp writes an answer after this handler whatever it
			// does; with the socket closed under it, nothing is sent.
			_ = ec.Conn.Close()
			return
		}
		p.reject(ctx, metrics.RequestTimeout, errRequestTimeout)
	default:
		p.reject(ctx, metrics.BadRequest, errMalformed)
	}
	ctx.SetConnectionClose()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
