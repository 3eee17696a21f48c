package metrics

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sequoia-qos/sequoia/internal/intern"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// Namespace prefixes every metric name.
const Namespace = "sequoia"

// Outcome is what became of a request that named a function.
type Outcome uint8

// Outcomes, the values of the "outcome" label.
const (
	Forwarded     Outcome = iota // reached the platform; its answer (not a throttle) was returned
	QueueFull                    // refused: the queue was full (429)
	QueueTimeout                 // waited longer than the queue timeout (503)
	ClientGone                   // the client left while queued; never invoked
	UpstreamError                // the platform could not be reached or timed out (502/504)
	ChainRefused                 // a new chain that could not finish within its deadline (429)
	ChainDeadline                // the chain's deadline passed while queued (504)
	PolicyDenied                 // refused by the policy (403); never invoked
	// PlatformThrottled: the platform's throttle (429, or Knative's 503
	// queue full) reached the client because retries did not absorb it.
	PlatformThrottled
	Abandoned // given up at shutdown, queued (503) or at the platform (502)
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"forwarded", "queue_full", "queue_timeout", "client_gone", "upstream_error", "chain_refused", "chain_deadline", "policy_denied", "platform_throttled", "abandoned"}

func (o Outcome) String() string { return outcomeNames[o] }

// Rejection is why a request was refused before it named a function.
type Rejection uint8

// Rejections, the values of the "reason" label.
const (
	BadRequest      Rejection = iota // malformed path or target (400)
	NotFound                         // no known API shape (404)
	BodyTooLarge                     // over SEQUOIA_MAX_BODY_BYTES (413)
	HeadersTooLarge                  // request line and headers over the read buffer (431)
	RequestTimeout                   // not received within SEQUOIA_HEADER_TIMEOUT or SEQUOIA_BODY_TIMEOUT (408)
	Unauthorized                     // a write to sequoia's API without valid credentials (401)
	numRejections
)

var rejectionNames = [numRejections]string{"bad_request", "not_found", "body_too_large", "headers_too_large", "request_timeout", "unauthorized"}

// Metrics holds sequoia's collectors.
type Metrics struct {
	reg *prometheus.Registry

	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	queueWait  prometheus.Histogram
	platform   *prometheus.CounterVec
	rejections [numRejections]prometheus.Counter

	codes [600]atomic.Pointer[prometheus.Counter]
	fns   *intern.Table[*Function]
}

// Function is one function's pre-bound series.
type Function struct {
	Name     string
	outcomes [numOutcomes]prometheus.Counter
	duration prometheus.Observer
}

// OtherFunction is the name under which functions beyond the bound are
// counted.
const OtherFunction = "_other"

// New returns collectors registered on a fresh registry, with at most
// maxFunctions functions having their own series.
func New(maxFunctions int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total",
		Help: "Invocation requests by function and outcome.",
	}, []string{"function", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "invocation_duration_seconds",
		Help:    "Time from dispatch to the platform's complete answer, by function.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"function"})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "queue_wait_seconds",
		Help:    "Time invocations waited for a worker slot (0 when none was needed).",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	})
	m.platform = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "platform_responses_total",
		Help: "The platform's answer each client got, by HTTP status code: one per request that reached the platform, its last attempt's (retried attempts are in sequoia_platform_attempts_total).",
	}, []string{"code"})
	rej := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "rejected_requests_total",
		Help: "Requests refused before they named a function, by reason.",
	}, []string{"reason"})
	for i, n := range rejectionNames {
		m.rejections[i] = rej.WithLabelValues(n)
	}
	m.reg.MustRegister(m.requests, m.duration, m.queueWait, m.platform, rej,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.fns = intern.New(maxFunctions, m.newFunction, m.newFunction(OtherFunction))
	return m
}

func (m *Metrics) newFunction(name string) *Function {
	f := &Function{Name: name, duration: m.duration.WithLabelValues(name)}
	for i, o := range outcomeNames {
		f.outcomes[i] = m.requests.WithLabelValues(name, o)
	}
	return f
}

// Registry is where sequoia's collectors are registered; other packages
// register theirs here too.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in Prometheus' exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Function returns the pre-bound series of the named function, binding them
// on first sight. Cost when known: one atomic load and one map lookup.
func (m *Metrics) Function(name []byte) *Function { return m.fns.Get(name) }

// FunctionNamed is Function for a name already held as a string.
func (m *Metrics) FunctionNamed(name string) *Function { return m.fns.GetString(name) }

// Count records one request's outcome.
func (f *Function) Count(o Outcome) { f.outcomes[o].Inc() }

// Observe records a forwarded invocation's outcome and its duration at the
// platform.
func (f *Function) Observe(o Outcome, d time.Duration) {
	f.outcomes[o].Inc()
	f.duration.Observe(d.Seconds())
}

// QueueWait records how long an invocation waited for a slot.
func (m *Metrics) QueueWait(d time.Duration) { m.queueWait.Observe(d.Seconds()) }

// Reject records a request refused before it named a function.
func (m *Metrics) Reject(r Rejection) { m.rejections[r].Inc() }

// PlatformStatus records a status code the platform answered.
func (m *Metrics) PlatformStatus(code int) {
	if code < 100 || code >= len(m.codes) {
		code = 0
	}
	if c := m.codes[code].Load(); c != nil {
		(*c).Inc()
		return
	}
	c := m.platform.WithLabelValues(strconv.Itoa(code))
	m.codes[code].CompareAndSwap(nil, &c)
	c.Inc()
}

// GaugeSource is what the scheduler exposes for scrape-time gauges.
type GaugeSource interface {
	InFlight() int
	Queued() int
	Limit() int
}

// WatchScheduler registers gauges that read src at scrape time.
func (m *Metrics) WatchScheduler(src GaugeSource) {
	gauge := func(name, help string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(
		gauge("in_flight", "Invocations in flight at the platform.", src.InFlight),
		gauge("queue_depth", "Invocations waiting for a worker slot.", src.Queued),
		gauge("concurrency_limit", "Worker slots: the most invocations allowed in flight.", src.Limit),
	)
}

// OutcomeOf is the outcome of an invocation the scheduler ended with err
// (not nil): refused, dropped, timed out or gone while queued, else the
// platform could not be reached.
func OutcomeOf(err error) Outcome {
	switch {
	case errors.Is(err, qos.ErrRefused):
		return ChainRefused
	case errors.Is(err, qos.ErrDeadline):
		return ChainDeadline
	case errors.Is(err, qos.ErrQueueFull):
		return QueueFull
	case errors.Is(err, qos.ErrQueueTimeout):
		return QueueTimeout
	case errors.Is(err, qos.ErrClientGone):
		return ClientGone
	case errors.Is(err, qos.ErrShutdown), errors.Is(err, platform.ErrAborted):
		return Abandoned
	}
	return UpstreamError
}
