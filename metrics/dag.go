package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/dag"
)

// DAGs holds the DAG-run collectors; it implements dag.Events. Every
// series is bound at start-up.
type DAGs struct {
	started, refused prometheus.Counter
	ended            map[string]prometheus.Counter
	duration         map[string]prometheus.Observer
	nodes            [2]prometheus.Counter // failed, ok
}

var _ dag.Events = (*DAGs)(nil)

var runStatuses = []dag.Status{dag.Succeeded, dag.Failed, dag.Canceled, dag.TimedOut}

// NewDAGs registers the DAG-run collectors on m's registry; active, read
// at scrape time, is the number of runs in progress.
func (m *Metrics) NewDAGs(active func() int) *DAGs {
	d := &DAGs{ended: map[string]prometheus.Counter{}, duration: map[string]prometheus.Observer{}}
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
		Help: "Invocations made by DAG task nodes, retries included, by outcome: ok, failed."}, []string{"outcome"})
	activeG := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "dag_runs_active",
		Help: "DAG runs in progress."}, func() float64 { return float64(active()) })
	d.started, d.refused = started, refused
	for _, s := range runStatuses {
		d.ended[string(s)] = ended.WithLabelValues(string(s))
		d.duration[string(s)] = duration.WithLabelValues(string(s))
	}
	d.nodes[0], d.nodes[1] = nodes.WithLabelValues("failed"), nodes.WithLabelValues("ok")
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
		d.nodes[1].Inc()
	} else {
		d.nodes[0].Inc()
	}
}
