package events

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the events' Prometheus collectors, shared by Store and
// Memory. Counters count what this replica did; the gauges of the store
// (pending, oldest age) are the whole cluster's.
type Metrics struct {
	outcome     *prometheus.CounterVec
	redelivered prometheus.Counter
	retried     *prometheus.CounterVec
	dead        *prometheus.CounterVec
	onFailure   *prometheus.CounterVec

	pending    atomic.Int64 // undelivered events in the store
	oldestNano atomic.Int64 // age of the oldest, in nanoseconds
	delivering atomic.Int64 // this replica's deliveries in progress
}

// Label values, bound at start so that every series exists from the
// first scrape.
var (
	outcomes     = [...]string{"accepted", "duplicate", "refused", "too_large", "unavailable", "delivered"}
	retryReasons = [...]string{"function_error", "throttled_concurrency", "throttled_rate", "throttled_function",
		"unavailable", "unreachable", "timeout", "queued", "refused"}
	deadReasons = [...]string{reasonRetries, reasonAge, reasonRejected, reasonUndecodable}
)

// Why an event went to the dead letters; the first two are Lambda's
// on-failure conditions.
const (
	reasonRetries     = "RetriesExhausted"
	reasonAge         = "EventAgeExceeded"
	reasonRejected    = "Rejected"
	reasonUndecodable = "Undecodable"
)

// NewMetrics returns the collectors, registered with reg when not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcome: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Name: "events_total",
			Help: "Lambda Event invocations by outcome: accepted (stored, answered 202), duplicate (a retry of an accepted request, answered 202, not stored again), refused (SEQUOIA_MAX_EVENTS or SEQUOIA_EVENT_MAX_BYTES reached, 429), too_large (413), unavailable (the store did not answer, 503), delivered (the platform ran it).",
		}, []string{"outcome"}),
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sequoia", Name: "events_redelivered_total",
			Help: "Event attempts that may run an event at the platform a second time: an earlier attempt may have run it and was never settled (its replica died, or its lease lapsed while it ran). Counted before the attempt goes out; retries after a function error or a throttle are in sequoia_events_retried_total.",
		}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Name: "events_retried_total",
			Help: "Events put back in the store for another attempt, by why: function_error (counted against SEQUOIA_EVENT_MAX_RETRIES), a platform throttle, unavailable (503/504), unreachable, timeout, queued or refused (no slot at sequoia).",
		}, []string{"reason"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Name: "events_dead_lettered_total",
			Help: "Events given up and moved to the dead letters (/sequoia/v1/events/dead), by why: RetriesExhausted, EventAgeExceeded (SEQUOIA_EVENT_MAX_AGE), Rejected (the platform refused it for good), Undecodable.",
		}, []string{"reason"}),
		onFailure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Name: "events_on_failure_total",
			Help: "Dead letters posted to SEQUOIA_EVENT_ON_FAILURE_URL, by outcome: sent, or failed (given up after its retries).",
		}, []string{"outcome"}),
	}
	for _, o := range outcomes {
		m.outcome.WithLabelValues(o)
	}
	for _, r := range retryReasons {
		m.retried.WithLabelValues(r)
	}
	for _, r := range deadReasons {
		m.dead.WithLabelValues(r)
	}
	m.onFailure.WithLabelValues("sent")
	m.onFailure.WithLabelValues("failed")
	if reg != nil {
		reg.MustRegister(m.outcome, m.redelivered, m.retried, m.dead, m.onFailure,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "sequoia", Name: "events_pending",
				Help: "Events accepted and not yet delivered nor dead-lettered, in the store (all replicas).",
			}, func() float64 { return float64(m.pending.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "sequoia", Name: "events_oldest_age_seconds",
				Help: "Age of the oldest undelivered event in the store (all replicas); 0 when none waits.",
			}, func() float64 { return float64(m.oldestNano.Load()) / 1e9 }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Namespace: "sequoia", Name: "events_in_delivery",
				Help: "Events this replica is delivering now (waiting for a slot or at the platform).",
			}, func() float64 { return float64(m.delivering.Load()) }))
	}
	return m
}

func (m *Metrics) count(outcome string)     { m.outcome.WithLabelValues(outcome).Inc() }
func (m *Metrics) retry(reason string)      { m.retried.WithLabelValues(reason).Inc() }
func (m *Metrics) deadLetter(reason string) { m.dead.WithLabelValues(reason).Inc() }
