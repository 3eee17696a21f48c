package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/dag"
)

// DAGs holds the DAG-run collectors; it implements dag.Events. Every
// series is bound at start-up; a node the policy denied is also counted in
// its function's request series, as a denied request is.
type DAGs struct {
	started, refused prometheus.Counter
	ended            map[string]prometheus.Counter
	duration         map[string]prometheus.Observer
	nodes            [numNodeOutcomes]prometheus.Counter
	m                *Metrics
}

// Node outcomes, the values of dag_task_invocations_total's "outcome".
const (
	nodeFailed = iota
	nodeOK
	nodeDenied // refused by the policy (403); never invoked
	numNodeOutcomes
)

var nodeOutcomeNames = [numNodeOutcomes]string{"failed", "ok", "denied"}

var _ dag.Events = (*DAGs)(nil)

var runStatuses = []dag.Status{dag.Succeeded, dag.Failed, dag.Canceled, dag.TimedOut}

// NewDAGs registers the DAG-run collectors on m's registry; active, read
// at scrape time, is the number of runs in progress.
func (m *Metrics) NewDAGs(active func() int) *DAGs {
	d := &DAGs{ended: map[string]prometheus.Counter{}, duration: map[string]prometheus.Observer{}, m: m}
	started := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "dag_runs_started_total",
		Help: "DAG runs admitted."})
	refused := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "dag_runs_refused_total",
		Help: "DAG runs refused at admission (429): their critical path could not finish within their deadline."})
	ended := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dag_runs_ended_total",
		Help: "DAG runs ended, by status: succeeded, failed, canceled, deadline_exceeded."}, []string{"status"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "dag_run_duration_seconds",
		Help: "DAG runs' time from admission to end, by status.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)},
		[]string{"status"})
	nodes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dag_task_invocations_total",
		Help: "Invocations made by DAG task nodes, retries included, by outcome: ok, failed, denied (refused by the policy, never invoked)."}, []string{"outcome"})
	activeG := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "dag_runs_active",
		Help: "DAG runs in progress."}, func() float64 { return float64(active()) })
	d.started, d.refused = started, refused
	for _, s := range runStatuses {
		d.ended[string(s)] = ended.WithLabelValues(string(s))
		d.duration[string(s)] = duration.WithLabelValues(string(s))
	}
	for i, n := range nodeOutcomeNames {
		d.nodes[i] = nodes.WithLabelValues(n)
	}
	m.reg.MustRegister(started, refused, ended, duration, nodes, activeG)
	return d
}

// RunStarted implements dag.Events.
func (d *DAGs) RunStarted() { d.started.Inc() }

// RunRefused implements dag.Events.
func (d *DAGs) RunRefused() { d.refused.Inc() }

// RunEnded implements dag.Events.
func (d *DAGs) RunEnded(status string, dur time.Duration) {
	if c := d.ended[status]; c != nil {
		c.Inc()
		d.duration[status].Observe(dur.Seconds())
	}
}

// NodeInvoked implements dag.Events.
func (d *DAGs) NodeInvoked(ok bool) {
	if ok {
		d.nodes[nodeOK].Inc()
	} else {
		d.nodes[nodeFailed].Inc()
	}
}

// NodeDenied implements dag.Events: the node's function counts a
// policy_denied request, as the proxy counts a denied request. Cost: one
// intern-table lookup and two atomic adds.
func (d *DAGs) NodeDenied(function string) {
	d.nodes[nodeDenied].Inc()
	d.m.FunctionNamed(function).Count(PolicyDenied)
}
