package serve

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"go.opentelemetry.io/otel"
	"golang.org/x/sync/errgroup"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/internal/logsum"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/proxy"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/slo"
	"github.com/sequoia-qos/sequoia/tracing"
	"github.com/sequoia-qos/sequoia/warmpool"
)

// NewLogger returns the logger c asks for (SEQUOIA_LOG_LEVEL and
// SEQUOIA_LOG_FORMAT), writing to w. Repeated lines are summarised: the
// first of each level and message passes in every LogRepeatInterval, and
// one line then counts the others (internal/logsum). Run writes the counts
// still pending before it returns.
func NewLogger(c config.Serving, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	// Each redelivery of a Lambda Event is one line on purpose: which
	// event may run twice (events.LogRedelivering).
	return slog.New(logsum.New(h, LogRepeatInterval, events.LogRedelivering))
}

// LogRepeatInterval is how often a log line of one level and message may
// be written; the others are counted in a summary line.
const LogRepeatInterval = 10 * time.Second

// Server is `sequoia serve` wired together: the data port, the admin port
// and what lies between them.
type Server struct {
	// localErr is Run's error for a server StartLocal started (local.go).
	localErr error
	cfg      config.Config
	log      *slog.Logger
	metrics  *metrics.Metrics
	sched    *qos.Scheduler
	up       *platform.Client
	proxy    *proxy.Proxy
	admin    *proxy.Admin
	dataLn   net.Listener
	adminLn  net.Listener
	plat     platformParts       // platforms.go
	policy   *policy.Engine      // policy.go
	snaps    *policyStats        // policy_snapshot.go: what the policies read
	decider  *policy.Invocations // the proxy's Decider
	dags     *dag.Service        // dag.go
	warm     *warmpool.Pool      // warmpool.go; nil when SEQUOIA_PREWARM is off
	engine   *cluster.Engine     // NATS JetStream: embedded, or the cluster's
	tracer   *tracing.Tracer     // nil unless OTEL_EXPORTER_OTLP_ENDPOINT is set
	cl       clusterParts        // cluster.go: leases, chains across replicas, shared estimates
	// stopTracing flushes and stops the span exporter.
	stopTracing func(context.Context) error
	events      *events.Store // events.go: Lambda Events, durable
	runs        *events.Runs  // dag.go: the journal of async DAG runs
	// memoryEvents: Events stay in the process (InMemoryEvents); events
	// is nil.
	memoryEvents bool
	slo          *slo.Tracker    // slo.go; nil without SEQUOIA_SLO_FILE
	sloNotify    *slo.Notifier   // nil without SEQUOIA_SLO_WEBHOOK_URL
	sloFile      []slo.Objective // SEQUOIA_SLO_FILE's
}

// Option changes how New builds the server.
type Option func(*Server)

// InMemoryEvents keeps Lambda Event invocations in the process, as sequoia
// did before its event store: they are lost when it exits. For measuring
// the store's cost against it (sequoia bench events), never for serving.
func InMemoryEvents() Option { return func(s *Server) { s.memoryEvents = true } }

// New builds the server and opens its listeners.
func New(cfg config.Config, log *slog.Logger, opts ...Option) (_ *Server, err error) {
	kind, _ := invocation.ParsePlatform(cfg.Backend.Kind)
	s := &Server{cfg: cfg, log: log}
	for _, o := range opts {
		o(s)
	}
	tr, stopTracing, err := tracing.Setup(context.Background(), os.Getenv, buildVersion())
	if err != nil {
		return nil, err
	}
	s.tracer, s.stopTracing = tr, stopTracing
	defer func() {
		if err != nil {
			_ = stopTracing(context.Background())
		}
	}()
	if tr != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
		log.Info("tracing: exporting spans over OTLP/HTTP")
	}
	nofile, nerr := raiseNoFile()
	if nerr != nil {
		log.Warn("could not raise the file-descriptor limit", "limit", nofile, "err", nerr)
	}
	s.metrics = metrics.New(cfg.Limits.MaxFunctions)
	if err := s.newSLO(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && s.sloNotify != nil {
			s.sloNotify.Close() // its delivery goroutine
		}
	}()
	sc := cfg.Scheduling
	// The NATS engine first: admission learns from it of the chains
	// other replicas admitted (cluster.go).
	if s.engine, err = cluster.Start(cluster.Options{Config: cfg.Cluster, Log: log,
		MaxPayload: int32(min(64<<20, max(8<<20, cfg.Serving.MaxBodyBytes+64<<10)))}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeDurable()
		}
	}()
	var remote qos.Remote
	if !s.engine.Embedded() {
		key, err := cfg.Cluster.Key()
		if err != nil {
			return nil, err
		}
		s.cl.chains = cluster.NewChains(s.engine, cluster.ChainsConfig{
			Key: key, TTL: sc.ChainTTL, Log: log,
			Apply: func(id string, o qos.StepOutcome) { s.sched.RemoteStep(id, o) },
			Peers: func() int {
				if l := s.cl.leases; l != nil {
					return max(1, l.Replicas())
				}
				return 1
			},
		})
		remote = s.cl.chains
	}
	s.sched = qos.New(qos.Config{
		Limit:           cfg.Limits.MaxConcurrency,
		QueueCapacity:   cfg.Limits.QueueCapacity,
		QueueTimeout:    cfg.Limits.QueueTimeout,
		BatchShare:      sc.BatchShare,
		TenantCap:       sc.TenantCap,
		FunctionCap:     sc.FunctionCap,
		MaxRate:         sc.MaxRate,
		ChainTTL:        sc.ChainTTL,
		MaxChains:       sc.MaxChains,
		DefaultDeadline: sc.DefaultChainDeadline,
		DefaultEstimate: sc.DefaultEstimate,
		Headroom:        sc.AdmissionHeadroom,
		MaxHeadroom:     sc.AdmissionHeadroomMax,
		ShortestFirst:   sc.ShortestFirst,
		Remote:          remote,
		SpreadReserve:   cfg.Cluster.SpreadReserve,
		Events:          s.chainEvents(s.metrics.NewChains()),
	})
	s.cl.local = &localReplica{sched: s.sched}
	s.metrics.WatchScheduler(s.sched)
	s.metrics.WatchChains(s.sched)
	defaultClass, _ := qos.ParseClass([]byte(sc.DefaultClass))
	var auth proxy.APIAuth
	var tokens *proxy.TokenFile
	if f := cfg.API.APITokenFile; f != "" {
		if tokens, err = proxy.NewTokenFile(f); err != nil {
			return nil, fmt.Errorf("SEQUOIA_API_TOKEN_FILE: %w", err)
		}
	}
	plat, err := newPlatformParts(cfg, kind, s.cl.local, s.metrics, log)
	if err != nil {
		return nil, err
	}
	s.plat = plat
	s.cl.local.lim = plat.limit
	up, err := platform.New(platform.Config{
		URL:      cfg.Backend.URL,
		Kind:     kind,
		Timeout:  cfg.Backend.Timeout,
		MaxConns: cfg.Limits.MaxConcurrency + 64, // room for control calls
		Signer:   plat.signer,
	})
	if err != nil {
		return nil, err
	}
	s.up = up
	if err := s.newPolicy(); err != nil {
		return nil, err
	}
	s.newWarmPool(kind)
	if tokens != nil {
		auth = apiAuth{tokens: tokens, policy: s.policy}
	}
	conns := maxConns(cfg.Edge.MaxConns, cfg.Limits.MaxConcurrency, cfg.Platforms.OverflowURL != "", nofile)
	log.Info("data port limits", "max_conns", conns, "nofile", nofile,
		"header_timeout", cfg.Edge.HeaderTimeout, "body_timeout", cfg.Edge.BodyTimeout, "idle_timeout", cfg.Edge.IdleTimeout,
		"dag_writes", tokens != nil)
	if nofile > 0 && uint64(conns) > nofile {
		log.Warn("SEQUOIA_MAX_CONNS is above the file-descriptor limit: connections past the limit fail to be accepted (sequoia keeps serving)",
			"max_conns", conns, "nofile", nofile)
	}
	if err := s.newEvents(); err != nil { // events.go
		return nil, err
	}
	var pc proxy.Cluster
	if s.cl.chains != nil {
		pc = s.cl.chains
	}
	s.proxy = proxy.New(proxy.Config{
		Decider:            s.decider,
		Platform:           kind,
		HTTPRoute:          cfg.Backend.HTTPRoute,
		MaxBodyBytes:       cfg.Serving.MaxBodyBytes,
		MaxConns:           conns,
		HeaderTimeout:      cfg.Edge.HeaderTimeout,
		BodyTimeout:        cfg.Edge.BodyTimeout,
		IdleTimeout:        cfg.Edge.IdleTimeout,
		RequestStartHeader: []byte(cfg.Edge.RequestStartHeader),
		APIAuth:            auth,
		DefaultClass:       defaultClass,
		Retry:              plat.retry,
		Feedback:           plat.feedback,
		Overflow:           plat.overflow,
		Rates:              plat.rates,
		Observer:           s.observer(),
		Tracer:             s.tracer,
		Events:             s.eventQueue(),
		Cluster:            pc,
	}, s.sched, up, s.metrics, log)
	s.metrics.Registry().MustRegister(s.heldGauges()...) // edge.go
	if err := s.newDAGs(); err != nil {
		return nil, err
	}
	s.admin = proxy.NewAdmin(s.metrics, s.status)
	s.admin.Handle("GET /sequoia/v1/events/dead", s.serveDead) // events.go
	if cfg.Serving.AdminPprof {
		s.admin.EnableProfiling()
	}

	if err = s.startCluster(); err != nil { // cluster.go
		return nil, err
	}
	if s.dataLn, err = net.Listen("tcp", cfg.Serving.Listen); err != nil {
		return nil, fmt.Errorf("SEQUOIA_LISTEN: %w", err)
	}
	if s.adminLn, err = net.Listen("tcp", cfg.Serving.AdminListen); err != nil {
		s.dataLn.Close()
		return nil, fmt.Errorf("SEQUOIA_ADMIN_LISTEN: %w", err)
	}
	return s, nil
}

// closeDurable stops the event store, leaves the cluster and closes the
// engine, for a New that fails half-way.
func (s *Server) closeDurable() {
	if s.events != nil {
		s.events.Stop(context.Background())
	}
	if s.runs != nil {
		s.runs.Close()
	}
	s.stopCluster()
	_ = s.engine.Close()
}

// Run serves until ctx ends, then drains: readiness fails, the data
// listener closes after SEQUOIA_DRAIN_DELAY, queued and in-flight
// invocations get SEQUOIA_SHUTDOWN_TIMEOUT to finish. If that time runs
// out, what is left is given up (abandon) and every client still waiting
// is answered; Run then returns an *AbandonedError that says what was
// given up.
func (s *Server) Run(ctx context.Context) error {
	if h, ok := s.log.Handler().(*logsum.Handler); ok {
		defer h.Close() // the counts of repeated lines still pending
	}
	s.log.Info("sequoia serving",
		"listen", s.dataLn.Addr().String(), "admin", s.adminLn.Addr().String(),
		"backend", s.cfg.Backend.Kind, "backend_url", s.cfg.Backend.URL,
		"max_concurrency", s.cfg.Limits.MaxConcurrency)
	if s.events != nil {
		s.events.Start(s.proxy)
	}
	s.runs.Start(s.dags) // resumes the runs a dead replica (or the last start) left
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.proxy.Serve(s.dataLn) })
	g.Go(func() error { return s.admin.Serve(s.adminLn) })
	g.Go(func() error { return s.policy.Run(gctx) })
	g.Go(func() error { return s.runWarmPool(gctx.Done()) })
	g.Go(func() error { return s.runSLO(gctx.Done()) })
	g.Go(func() error { s.readyOnceJoined(gctx); return nil }) // cluster.go

	var abandoned *AbandonedError // what shutdown gave up: the exit code says so
	g.Go(func() error {
		<-gctx.Done()
		s.admin.SetReady(false)
		s.log.Info("draining", "in_flight", s.sched.InFlight(), "queued", s.sched.Queued())
		if d := s.cfg.Serving.DrainDelay; d > 0 {
			time.Sleep(d)
		}
		timeout := s.cfg.Serving.ShutdownTimeout
		sctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		durable := s.stopDurable(sctx) // events.go
		err := s.proxy.Shutdown(sctx)
		ae := &AbandonedError{Timeout: timeout}
		// fasthttp's Shutdown closes only the listeners Serve has taken:
		// one called before Serve began would leave Serve accepting for
		// ever. Closing the listener ends it either way.
		_ = s.dataLn.Close()
		durable(ae)
		runsDone := s.dags.Wait(sctx.Done())
		s.stopWarmPool()
		if err != nil || !runsDone {
			s.abandon(timeout, ae)
		}
		if len(ae.Work) > 0 {
			abandoned = ae
		}
		s.up.Close()
		s.sched.Close()
		s.stopCluster() // the lease goes back at once
		if err := s.engine.Close(); err != nil {
			s.log.Warn("shutdown: NATS", "err", err)
		}
		_ = s.admin.Shutdown(context.Background())
		tctx, tcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.stopTracing(tctx); err != nil {
			s.log.Warn("shutdown: tracing", "err", err)
		}
		tcancel()
		if abandoned != nil {
			s.log.Error("stopped, work abandoned", "abandoned", abandoned.Error())
		} else {
			s.log.Info("stopped")
		}
		return nil
	})
	if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if abandoned != nil {
		return abandoned
	}
	return nil
}

// buildVersion is the module's version the binary was built at, for the
// spans' service.version.
func buildVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// answerGrace bounds the wait, after abandon, for the answers to the
// requests given up to be written.
const answerGrace = 3 * time.Second

// abandon gives up on what SEQUOIA_SHUTDOWN_TIMEOUT did not see finish:
// queued invocations are answered 503 with Retry-After (the scheduler ends
// their waits), calls in progress at the platform are cut and answered
// 502, DAG runs are cancelled; then it waits (answerGrace) for those
// answers to be written. It adds what was given up to ae.
func (s *Server) abandon(timeout time.Duration, ae *AbandonedError) {
	s.log.Warn("shutdown timed out: answering every request still waiting",
		"timeout", timeout, "in_flight", s.sched.InFlight(), "queued", s.sched.Queued(),
		"dag_runs", s.dags.Active())
	s.proxy.Abandon()
	s.sched.Abandon()
	runs := s.dags.CancelAll()
	s.up.Abort()
	if o, ok := s.plat.overflow.(interface{ Abort() int }); ok {
		o.Abort()
	}
	answered := s.proxy.WaitAnswered(answerGrace)
	queued, inFlight := s.proxy.Abandoned()
	ae.Add("invocations still queued (answered 503 with Retry-After)", queued)
	ae.Add("invocations cut at the platform (answered 502)", inFlight)
	ae.Add("DAG runs cancelled", runs)
	if !answered {
		ae.Add("requests whose answer was not written within "+answerGrace.String(), s.proxy.Answering())
	}
}

// statusListLimit bounds each list /sequoia/v1/status shows: the warm
// pool's functions, those with a learned reserved-concurrency cap, and the
// policy snapshot's functions and tenants.
const statusListLimit = 100

// status is /sequoia/v1/status.
func (s *Server) status() any {
	type queue struct {
		Depth    int    `json:"depth"`
		Capacity int    `json:"capacity"`
		Timeout  string `json:"timeout"`
	}
	config := map[string]any{
		"backend":          s.cfg.Backend.Kind,
		"backend_url":      s.cfg.Backend.URL,
		"max_concurrency":  s.cfg.Limits.MaxConcurrency,
		"queue_capacity":   s.cfg.Limits.QueueCapacity,
		"queue_timeout":    s.cfg.Limits.QueueTimeout.String(),
		"max_body_bytes":   s.cfg.Serving.MaxBodyBytes,
		"shutdown_timeout": s.cfg.Serving.ShutdownTimeout.String(),
		"max_conns":        s.proxy.MaxConns(),
	}
	if pc := s.cfg.Platforms; pc.OverflowURL != "" {
		config["overflow_url"] = pc.OverflowURL
		config["overflow_backend"] = cmp.Or(pc.OverflowBackend, s.cfg.Backend.Kind)
	}
	return struct {
		InFlight int                 `json:"in_flight"`
		Limit    int                 `json:"limit"`
		Queues   map[string]queue    `json:"queues"`
		Adaptive any                 `json:"adaptive"`
		Policy   policy.Status       `json:"policy"`
		WarmPool *warmpool.Status    `json:"warm_pool,omitempty"` // warmpool.go
		Reserved *proxy.ReservedCaps `json:"reserved_caps,omitempty"`
		Snapshot *policySeen         `json:"policy_snapshot,omitempty"`
		Held     heldStatus          `json:"held"`          // edge.go
		SLO      *sloStatus          `json:"slo,omitempty"` // slo.go
		Cluster  clusterStatus       `json:"cluster"`
		Events   *events.Status      `json:"events,omitempty"`
		Journal  events.RunsStatus   `json:"dag_journal"`
		Config   map[string]any      `json:"config"`
	}{
		InFlight: s.sched.InFlight(),
		Limit:    s.sched.Limit(),
		Adaptive: adaptiveStatus(s.plat.limit, s.cfg.Limits.MaxConcurrency),
		Policy:   s.policy.Status(),
		WarmPool: s.warmStatus(),
		Reserved: s.proxy.ReservedCaps(statusListLimit),
		Snapshot: s.snaps.seen(statusListLimit),
		Held:     s.heldStatus(10),
		SLO:      s.sloStatus(),
		Queues: map[string]queue{
			"pending": {
				Depth:    s.sched.Depth(qos.Pending, qos.Interactive) + s.sched.Depth(qos.Pending, qos.Batch),
				Capacity: s.sched.QueueCapacity(), Timeout: s.sched.QueueTimeout().String(),
			},
			"chain_running": {
				Depth:   s.sched.Depth(qos.ChainRunning, qos.Interactive) + s.sched.Depth(qos.ChainRunning, qos.Batch),
				Timeout: s.sched.QueueTimeout().String(),
			},
		},
		Cluster: s.clusterStatus(),
		Events:  s.eventsStatus(),
		Journal: s.runs.Status(),
		Config:  config,
	}
}
