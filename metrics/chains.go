package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/qos"
)

// Chains holds the chain and per-queue collectors; it implements
// qos.Events. Every series is bound at start-up, so reporting costs one
// array index and one atomic add (two for histograms).
type Chains struct {
	started, refused [qos.NumClasses]prometheus.Counter
	ended            [qos.NumClasses][qos.NumChainOutcomes]prometheus.Counter
	wait             [qos.NumQueues][qos.NumClasses]prometheus.Observer
	ratio            [qos.NumClasses]prometheus.Observer
	duration         [qos.NumClasses]prometheus.Observer
}

var _ qos.Events = (*Chains)(nil)

// ChainSource is what the scheduler exposes for the scrape-time chain
// gauges.
type ChainSource interface {
	Depth(k qos.QueueKind, class uint8) int
	ActiveChains() int
	Headroom() float64
}

// NewChains registers the chain collectors on m's registry.
func (m *Metrics) NewChains() *Chains {
	c := &Chains{}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, []string{"class"})
	}
	started := counter("chains_started_total", "Chains admitted: first requests let in by deadline-aware admission.")
	refused := counter("chains_refused_total", "Chains refused at entry (429): they could not finish within their deadline.")
	completed := counter("chains_completed_total", "Admitted chains whose every request was invoked.")
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "chains_dropped_total",
		Help: "Admitted chains that did work and whose client did not get its answer in time, by reason: deadline (a continuation's deadline passed while it waited: 504), late (a step answered after the chain's deadline), client_gone (the client left before its step was answered)."},
		[]string{"class", "reason"})
	failed := counter("chains_failed_total", "Admitted chains that ended otherwise: first step never ran (its client gone included), platform error, the caller made fewer steps than it announced.")
	wait := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "queue_wait_by_class_seconds",
		Help:    "Time invocations waited for a worker slot, by queue (chain_running, pending) and class.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18),
	}, []string{"queue", "class"})
	ratio := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "chain_estimate_ratio",
		Help:    "Completed chains' actual duration divided by admission's estimate of it (1 is a perfect estimate; above 1, admission was optimistic).",
		Buckets: []float64{0.25, 0.5, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 2, 4},
	}, []string{"class"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "chain_duration_seconds",
		Help:    "Completed chains' time from first request to end.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	}, []string{"class"})
	for cl := range qos.NumClasses {
		name := qos.ClassName(cl)
		c.started[cl], c.refused[cl] = started.WithLabelValues(name), refused.WithLabelValues(name)
		c.ended[cl][qos.ChainCompleted] = completed.WithLabelValues(name)
		c.ended[cl][qos.ChainFailed] = failed.WithLabelValues(name)
		for o := range qos.NumChainOutcomes {
			if o.Dropped() {
				c.ended[cl][o] = dropped.WithLabelValues(name, o.DropReason())
			}
		}
		c.ratio[cl], c.duration[cl] = ratio.WithLabelValues(name), duration.WithLabelValues(name)
		for k := range qos.NumQueues {
			c.wait[k][cl] = wait.WithLabelValues(k.String(), name)
		}
	}
	m.reg.MustRegister(started, refused, completed, dropped, failed, wait, ratio, duration)
	return c
}

// WatchChains registers gauges that read src at scrape time: queue depth
// by queue and class, active chains, and admission's headroom.
func (m *Metrics) WatchChains(src ChainSource) {
	depth := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "queue_depth_by_class",
		Help: "Invocations waiting, by queue (chain_running, pending) and class."}, []string{"queue", "class"})
	m.reg.MustRegister(&depthCollector{desc: depth, src: src},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "active_chains",
			Help: "Chains started and not yet ended (a chain of unknown length ends once its caller has gone quiet)."},
			func() float64 { return float64(src.ActiveChains()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "admission_headroom_ratio",
			Help: "Fraction of each chain's budget admission keeps in reserve: SEQUOIA_ADMISSION_HEADROOM, or more, learned from answers that came too late for their clients."},
			src.Headroom))
}

// depthCollector reads the queue depths at scrape time.
type depthCollector struct {
	desc *prometheus.GaugeVec
	src  ChainSource
}

func (d *depthCollector) Describe(ch chan<- *prometheus.Desc) { d.desc.Describe(ch) }

func (d *depthCollector) Collect(ch chan<- prometheus.Metric) {
	for k := range qos.NumQueues {
		for cl := range qos.NumClasses {
			d.desc.WithLabelValues(k.String(), qos.ClassName(cl)).Set(float64(d.src.Depth(k, cl)))
		}
	}
	d.desc.Collect(ch)
}

// ChainStarted implements qos.Events.
func (c *Chains) ChainStarted(class uint8) { c.started[min(class, qos.NumClasses-1)].Inc() }

// ChainRefused implements qos.Events.
func (c *Chains) ChainRefused(class uint8) { c.refused[min(class, qos.NumClasses-1)].Inc() }

// ChainEnded implements qos.Events.
func (c *Chains) ChainEnded(e qos.ChainEnd) {
	class := min(e.Class, qos.NumClasses-1)
	c.ended[class][e.Outcome].Inc()
	if e.Outcome == qos.ChainCompleted {
		c.duration[class].Observe(e.Actual.Seconds())
		if e.Predicted > 0 {
			c.ratio[class].Observe(float64(e.Actual) / float64(e.Predicted))
		}
	}
}

// Waited implements qos.Events.
func (c *Chains) Waited(q qos.QueueKind, class uint8, d time.Duration) {
	c.wait[q][min(class, qos.NumClasses-1)].Observe(d.Seconds())
}
