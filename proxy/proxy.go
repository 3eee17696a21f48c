package proxy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/internal/intern"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/tracing"
)

// Scheduler is what the proxy needs of qos: run an invocation through the
// worker pool.
type Scheduler interface {
	Do(inv *invocation.Invocation, w qos.Watcher, iv qos.Invoker) (time.Duration, error)
}

// Forwarder carries requests to the platform.
type Forwarder interface {
	qos.Invoker
	Forward(req *fasthttp.Request, resp *fasthttp.Response) error
}

// Config configures a Proxy.
type Config struct {
	Platform     invocation.Platform
	HTTPRoute    string // auto, host or path (http backends)
	MaxBodyBytes int
	MaxTenants   int
	// MaxConns caps the open client connections (edge.go); 0: no cap.
	MaxConns int
	// HeaderTimeout bounds reading a request's line and headers, from its
	// first byte (a new connection's, from its accept); BodyTimeout bounds
	// reading its body and writing its answer; IdleTimeout bounds a
	// keep-alive connection's wait for its next request. Zero takes 10s,
	// 60s and 90s.
	HeaderTimeout, BodyTimeout, IdleTimeout time.Duration
	// RequestStartHeader names the header in which a proxy in front
	// says when it received a request (X-Request-Start, requeststart.go):
	// a new chain's budget runs from then if that is earlier. Empty: none.
	RequestStartHeader []byte
	// APIAuth, when set, authorizes writes to sequoia's own API (the DAG
	// registry, api.go); nil refuses them all.
	APIAuth APIAuth
	// DefaultClass is the class of invocations without a known
	// X-Sequoia-Priority (qos.Interactive or qos.Batch).
	DefaultClass uint8
	// Decider, when set, decides each invocation once it is parsed: the
	// policy engine (policy.go).
	Decider Decider
	// Retry says when invocations are tried again (retry.go); Feedback,
	// when set, hears every platform answer (the adaptive limit).
	Retry    RetryConfig
	Feedback Feedback
	// Overflow, when set, carries invocations the primary cannot take in
	// time or at all to a second platform: an platform.Client of the same
	// API, or an platform.Translator to another (retry.go, overflow.go).
	Overflow qos.Invoker
	// Rates, when set, paces tenants the platform throttled for their
	// rate (retry.go).
	Rates RatePacer
	// Tracer, when set, traces every invocation (OpenTelemetry); nil
	// costs nothing.
	Tracer *tracing.Tracer
	// Observer, when set, hears of every invocation that goes to the
	// scheduler (the warm pool).
	Observer Observer
	// Cluster, when set, carries admission tickets on the chain ids the
	// proxy assigns and settles client-chosen ids' registrations
	// (cluster.go): replicas of a cluster.
	Cluster Cluster
	// Events is where Lambda Event invocations are stored before the 202
	// (events.go); nil: an in-process queue that loses them on exit.
	Events EventQueue
}

// Observer hears of invocations: Arrived before one queues, Finished once
// it ended, with its time at the platform (queue wait excluded) and the
// error that ended it. inv.Resp may be read during Finished only.
type Observer interface {
	Arrived(inv *invocation.Invocation)
	Finished(inv *invocation.Invocation, latency time.Duration, err error)
}

// Proxy is the inbound data-port server.
type Proxy struct {
	cfg       Config
	httpRoute httpRoute
	sched     Scheduler
	fwd       Forwarder
	m         *metrics.Metrics
	log       *slog.Logger
	tenants   *intern.Table[string]
	srv       *fasthttp.Server
	reqs      sync.Pool
	closing   atomic.Bool
	ids       *qos.ChainIDs
	plat      platformState // retries, feedback, Lambda Events: retry.go, events.go
	dags      *dag.Service  // the DAG API under /sequoia/v1/ (api.go); nil: 404
	edge      edgeState     // connections: edge.go
	held      heldCalls     // invocations in progress: held.go
	// abandoning is set once shutdown gave up waiting (Abandon): what
	// is still waiting is answered at once (shutdown.go).
	abandoning atomic.Bool
	abandoned  [numAbandoned]atomic.Int64
	dagWrites  sync.Mutex // serialises DAG writes (api.go)
}

// request is the per-request state the handler keeps, pooled.
type request struct {
	inv     invocation.Invocation
	ctx     *fasthttp.RequestCtx
	scratch []byte
	chainID []byte // an assigned chain id is built here
	watch   connWatch
	start   []byte              // the proxy's Config.RequestStartHeader
	shard   uint8               // its heldCalls shard
	span    *tracing.Invocation // nil unless Config.Tracer is set
}

// WatchGone implements qos.Watcher by watching the client's connection.
func (r *request) WatchGone() <-chan struct{} { return r.watch.start(r.ctx.Conn()) }

// StopWatch implements qos.Watcher.
func (r *request) StopWatch() { r.watch.stop() }

// Received implements qos.Receiver: when the request reached this host,
// for a new chain with the given budget (the request's, the policy's or
// the default); asked only then, it costs a continuation nothing.
func (r *request) Received(budget time.Duration) time.Time {
	return received(r.ctx, r.start, time.Now(), budget)
}

// Gone implements qos.GoneChecker: whether the client has already closed
// its connection, so that the answer about to be written reaches nobody.
func (r *request) Gone() bool { return r.ctx != nil && connGone(r.ctx.Conn()) }

// New returns a Proxy that runs invocations through sched and forwards them
// with fwd.
func New(cfg Config, sched Scheduler, fwd Forwarder, m *metrics.Metrics, log *slog.Logger) *Proxy {
	if cfg.MaxTenants <= 0 {
		cfg.MaxTenants = 10000
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 60 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 90 * time.Second
	}
	p := &Proxy{cfg: cfg, sched: sched, fwd: fwd, m: m, log: log, ids: chainIDs(sched)}
	switch cfg.HTTPRoute {
	case "host":
		p.httpRoute = httpRouteHost
	case "path":
		p.httpRoute = httpRoutePath
	}
	p.tenants = intern.New(cfg.MaxTenants, func(s string) string { return s }, "_other")
	var shards atomic.Uint32
	p.reqs.New = func() any {
		return &request{scratch: make([]byte, 0, 128), shard: uint8(shards.Add(1) % heldShards),
			start: p.cfg.RequestStartHeader}
	}
	p.plat.init(p)
	p.edge.init(p)
	p.held.init()
	p.srv = &fasthttp.Server{
		Handler:               p.serve,
		ErrorHandler:          p.serveError,
		ConnState:             p.connState,
		Name:                  "sequoia",
		MaxRequestBodySize:    cfg.MaxBodyBytes,
		NoDefaultServerHeader: true,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		// ReadTimeout runs from a request's first byte (a new
		// connection's accept) to the end of its headers; HeaderReceived
		// gives a body its own time.
		ReadTimeout:    cfg.HeaderTimeout,
		HeaderReceived: p.headerReceived,
		WriteTimeout:   cfg.BodyTimeout,
		IdleTimeout:    cfg.IdleTimeout,
		ReadBufferSize: readBufferSize,
		Logger:         slogPrinter{log},
	}
	return p
}

// headerReceived gives a request with a body SEQUOIA_BODY_TIMEOUT to
// send it.
func (p *Proxy) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == 0 {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{ReadTimeout: p.cfg.BodyTimeout}
}

// writeFailure answers an invocation the scheduler or the platform client
// ended with err (not nil), in the platform's shape.
func (p *Proxy) writeFailure(ctx *fasthttp.RequestCtx, fn *metrics.Function, err error) {
	switch {
	case errors.Is(err, qos.ErrRefused):
		if e := neverFits(err, "chain"); e != nil {
			p.writeError(ctx, e)
			break
		}
		p.writeError(ctx, errChainRefused)
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(qos.RetryAfterSeconds(err)))
	case errors.Is(err, qos.ErrDeadline):
		p.writeError(ctx, errChainDeadline)
	case errors.Is(err, qos.ErrQueueFull):
		p.writeError(ctx, errQueueFull)
	case errors.Is(err, qos.ErrQueueTimeout):
		p.writeError(ctx, errQueueTimeout)
	case errors.Is(err, qos.ErrClientGone):
		ctx.SetConnectionClose()
	case errors.Is(err, qos.ErrShutdown):
		p.abandoned[abandonedQueued].Add(1)
		p.writeError(ctx, errShuttingDown)
	case errors.Is(err, platform.ErrAborted):
		p.abandoned[abandonedInFlight].Add(1)
		p.writeError(ctx, errAbandonedInFlight)
	default:
		p.writePlatformFailure(ctx, fn.Name, err)
	}
}

// writePlatformFailure answers a call the platform client could not
// complete, saying what became of it.
func (p *Proxy) writePlatformFailure(ctx *fasthttp.RequestCtx, function string, err error) {
	switch {
	case errors.Is(err, platform.ErrTimeout):
		p.writeError(ctx, errUpstreamTimeout)
	case errors.Is(err, platform.ErrClosed):
		p.log.Warn("platform closed the connection before answering in full", "function", function, "err", err)
		p.writeError(ctx, errUpstreamClosed)
	case errors.Is(err, platform.ErrSendFailed):
		p.log.Warn("platform closed the connection while the request was sent", "function", function,
			"body_bytes", len(ctx.Request.Body()), "err", err)
		p.writeError(ctx, errUpstreamSendFailed)
	case errors.Is(err, platform.ErrAborted):
		p.abandoned[abandonedInFlight].Add(1)
		p.writeError(ctx, errAbandonedInFlight)
	default:
		p.log.Warn("platform unreachable", "function", function, "err", err)
		p.writeError(ctx, errUpstreamUnreachable)
	}
}

// Serve accepts connections on ln until Shutdown, through the edge
// listener (edge.go): it keeps serving through accept errors and caps the
// open connections.
func (p *Proxy) Serve(ln net.Listener) error {
	el := newEdgeListener(ln, &p.edge, p.cfg.MaxConns, func(err error, backoff time.Duration) {
		p.log.Warn("accepting connections failed; retrying", "err", err, "backoff", backoff)
	})
	return p.srv.Serve(el)
}

// closeIfClosing makes every answer given once shutdown has begun end its
// connection.
func (p *Proxy) closeIfClosing(ctx *fasthttp.RequestCtx) {
	if p.closing.Load() {
		ctx.SetConnectionClose()
	}
}

// MaxConns returns the cap on open client connections (0: none).
func (p *Proxy) MaxConns() int { return p.cfg.MaxConns }

// Shutdown stops accepting connections and waits, until ctx ends, for the
// requests in progress (queued ones included) to finish.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.closing.Store(true)
	defer p.plat.episodes.flush() // throttles.go: the last episode's counts
	return p.srv.ShutdownWithContext(ctx)
}

// Handler returns the request handler, for in-process use.
func (p *Proxy) Handler() fasthttp.RequestHandler { return p.serve }

var apiPrefix = []byte("/sequoia/v1/")

func (p *Proxy) serve(ctx *fasthttp.RequestCtx) {
	if ec, ok := ctx.Conn().(*edgeConn); ok {
		ec.handle()
	}
	defer p.closeIfClosing(ctx)
	if e := checkHeaders(ctx.Request.Header.RawHeaders()); e != nil { // headers.go
		p.reject(ctx, metrics.BadRequest, e)
		ctx.SetConnectionClose()
		return
	}
	if !ctx.Request.Header.IsHTTP11() && string(ctx.Request.Header.Protocol()) != "HTTP/1.0" {
		// fasthttp reads any HTTP/x.y line as HTTP/1.x; one that is not
		// is not forwarded as if it were.
		p.reject(ctx, metrics.BadRequest, errVersion)
		ctx.SetConnectionClose()
		return
	}
	target := ctx.Request.Header.RequestURI()
	if len(target) == 0 || target[0] != '/' {
		// Absolute-form and authority-form targets are how forward
		// proxies are asked to reach other hosts: never honoured.
		p.reject(ctx, metrics.BadRequest, errBadTarget)
		return
	}
	if e := checkRawPath(target); e != nil { // paths.go
		p.reject(ctx, metrics.BadRequest, e)
		return
	}
	path := ctx.Path()
	if bytes.HasPrefix(path, apiPrefix) {
		if p.dags != nil {
			p.serveAPI(ctx) // api.go
			return
		}
		p.reject(ctx, metrics.NotFound, errNoAPI)
		return
	}

	r := p.reqs.Get().(*request)
	defer p.reqs.Put(r)
	rt, err := p.route(ctx, r)
	if err != nil {
		if errors.Is(err, errNoRoute) {
			p.reject(ctx, metrics.NotFound, notFoundErrors[p.cfg.Platform])
		} else {
			p.reject(ctx, metrics.BadRequest, &apiError{400, "bad_request", "malformed path: " + err.Error(), 0})
		}
		return
	}
	if rt.kind == routeControl {
		p.control(ctx)
		return
	}

	fn := p.m.Function(rt.function)
	inv := &r.inv
	*inv = invocation.Invocation{
		Function:  fn.Name,
		Platform:  p.cfg.Platform,
		Arrival:   time.Now(),
		Req:       &ctx.Request,
		Resp:      &ctx.Response,
		Qualifier: internQualifier(rt.qualifier),
	}
	if p.cfg.Platform == invocation.OpenWhisk {
		var buf [80]byte
		rt.tenant = owTenant(rt.tenant, &ctx.Request.Header, buf[:0]) // tenant.go
	}
	if len(rt.tenant) > 0 {
		inv.Tenant = p.tenants.Get(rt.tenant)
	}
	if e := p.parseChain(&ctx.Request, inv, &r.chainID); e != nil {
		p.reject(ctx, metrics.BadRequest, e)
		return
	}
	r.span = nil
	if p.cfg.Tracer != nil {
		r.span = p.cfg.Tracer.Start(traceCarrier{&ctx.Request.Header}, inv) // tracing.go
	}
	if p.refusedByPolicy(ctx, inv, fn, r.span) {
		return
	}
	if p.lambdaShortcut(ctx, inv, rt.function) { // Event and DryRun: events.go
		r.span.End(inv, ctx.Response.StatusCode(), 0, nil)
		return
	}
	if p.abandoning.Load() {
		// Shutdown has given up on what is queued: nothing new waits.
		fn.Count(metrics.Abandoned)
		p.abandoned[abandonedQueued].Add(1)
		p.writeError(ctx, errShuttingDown)
		return
	}
	r.ctx = ctx
	if p.cfg.Observer != nil {
		p.cfg.Observer.Arrived(inv)
	}
	p.held.add(r)                           // held.go
	waited, err := p.invoke(inv, r, r.span) // with retries: retry.go
	p.held.remove(r)
	if inv.Cluster != nil {
		p.cfg.Cluster.Settle(inv) // cluster.go
	}
	r.ctx = nil
	atPlatform := time.Since(inv.Arrival) - waited
	if p.cfg.Observer != nil {
		p.cfg.Observer.Finished(inv, atPlatform, err)
	}
	p.m.QueueWait(waited)
	oa := asOverflowAnswer(err) // overflow.go
	switch {
	case err == nil:
		o := metrics.Forwarded
		if p.plat.relayedThrottle(p.cfg.Platform, inv) { // retry.go
			o = metrics.PlatformThrottled
		}
		fn.Observe(o, atPlatform)
		p.m.PlatformStatus(ctx.Response.StatusCode())
		addRetryAfter(&ctx.Response)
	case oa != nil:
		fn.Count(oa.outcome)
		p.writeError(ctx, oa.e)
	default:
		fn.Count(metrics.OutcomeOf(err)) // the one mapping, shared with DAG nodes
		p.writeFailure(ctx, fn, err)
	}
	p.answerChainID(ctx, inv, &r.chainID)
	r.span.End(inv, ctx.Response.StatusCode(), waited, err)
}

// received is when the request of ctx, which carries a chain budget,
// reached this host, as far as sequoia can tell: a new chain's budget runs
// from then, since its client's clock was already running. That is the
// earliest of: when the kernel received it (it may have waited to be
// accepted and read); for the first request on a connection, when the
// connection began, as its handshake reached the host (the kernel's last
// send on a connection nothing was answered on yet is its reply to it) or
// as it was accepted, since the client had opened it to send the request
// and was slow to; and when a proxy in front received it, as the header
// named startHeader says (requeststart.go). A time after now, or longer
// ago than half the budget, is not this request's (an idle pooled
// connection, clocks out of step).
func received(ctx *fasthttp.RequestCtx, startHeader []byte, now time.Time, budget time.Duration) time.Time {
	at, sent := receivedAt(ctx.Conn(), now)
	earlier := func(t time.Time) {
		if !t.IsZero() && !t.After(now) && now.Sub(t) <= budget/2 && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	if ctx.ConnRequestNum() == 1 {
		earlier(sent)
		earlier(ctx.ConnTime())
	}
	earlier(requestStart(ctx, startHeader))
	return at
}

// route parses the request into a route for the configured platform.
func (p *Proxy) route(ctx *fasthttp.RequestCtx, r *request) (route, error) {
	path := ctx.Path()
	switch p.cfg.Platform {
	case invocation.OpenWhisk:
		rt, err := parseOpenWhisk(ctx.Method(), path, r.scratch)
		if cap(rt.function) > cap(r.scratch) {
			r.scratch = rt.function[:0]
		}
		return rt, err
	case invocation.Lambda:
		return parseLambda(ctx.Method(), path, ctx.QueryArgs().Peek("Qualifier"))
	default:
		return parseHTTP(p.httpRoute, ctx.Host(), path)
	}
}

// control forwards one of the platform's non-invoke API calls as it is: it
// uses no function concurrency, so it does not queue.
func (p *Proxy) control(ctx *fasthttp.RequestCtx) {
	if err := p.fwd.Forward(&ctx.Request, &ctx.Response); err != nil {
		p.writePlatformFailure(ctx, "", err)
		return
	}
	p.m.PlatformStatus(ctx.Response.StatusCode())
	addRetryAfter(&ctx.Response)
}

var retryAfterOne = []byte("1")

// addRetryAfter gives a platform 503 without a Retry-After one of a
// second: every 503 a client gets through sequoia says when to retry.
func addRetryAfter(resp *fasthttp.Response) {
	if resp.StatusCode() == fasthttp.StatusServiceUnavailable && len(resp.Header.PeekBytes(headerRetry)) == 0 {
		resp.Header.SetCanonical(headerRetry, retryAfterOne)
	}
}

// qualifiers interns the few Lambda qualifiers in use.
var qualifiers = intern.New(1000, func(s string) string { return s }, "_other")

func internQualifier(q []byte) string {
	if len(q) == 0 {
		return ""
	}
	return qualifiers.Get(q)
}

func (p *Proxy) reject(ctx *fasthttp.RequestCtx, why metrics.Rejection, e *apiError) {
	p.m.Reject(why)
	p.writeError(ctx, e)
}

// slogPrinter adapts slog to fasthttp's logger.
type slogPrinter struct{ l *slog.Logger }

func (s slogPrinter) Printf(format string, args ...any) {
	s.l.Debug("fasthttp", "msg", format, "args", args)
}
