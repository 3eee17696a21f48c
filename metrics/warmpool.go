package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/warmpool"
)

// WarmPool holds the warm pool's collectors; it implements
// warmpool.Reporter. Warm-up series are bound at start-up; the cold-start
// counter is labelled by function names the proxy already bounded
// (SEQUOIA_MAX_FUNCTIONS), and is touched only on a cold start.
type WarmPool struct {
	warmups [warmpool.NumReasons][2]prometheus.Counter
	cold    *prometheus.CounterVec
	held    prometheus.Counter
	rounds  [2]prometheus.Counter // unverified, verified
}

var _ warmpool.Reporter = (*WarmPool)(nil)

// NewWarmPool registers the warm pool's collectors on m's registry. warm
// reports the instances believed warm per function, read at scrape time.
func (m *Metrics) NewWarmPool(warm func(yield func(function string, n int))) *WarmPool {
	w := &WarmPool{}
	warmups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "warmups_total",
		Help: "Warm-ups sent to the platform, by reason (keepalive, burst, chain) and result (ok, failed).",
	}, []string{"reason", "result"})
	for r := range warmpool.NumReasons {
		w.warmups[r][0] = warmups.WithLabelValues(r.String(), "failed")
		w.warmups[r][1] = warmups.WithLabelValues(r.String(), "ok")
	}
	w.cold = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "cold_starts_total",
		Help: "Cold starts paid by real invocations (not warm-ups), by function: the platform's signal where it gives one, else detected from latency.",
	}, []string{"function"})
	w.held = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "warmup_hold_seconds_total",
		Help: "Hold the warm-ups asked the platform for (sequoia_warmup_hold_ms), summed: their slot-time at the platform, cold starts aside.",
	})
	rounds := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "warmup_rounds_total",
		Help: "Rounds of warm-ups sent together and checked, by result: verified (their round trips prove they held distinct instances) or unverified (they may have shared instances: the hold was too short for the round trips, or the function does not hold).",
	}, []string{"result"})
	w.rounds[0], w.rounds[1] = rounds.WithLabelValues("unverified"), rounds.WithLabelValues("verified")
	m.reg.MustRegister(warmups, w.cold, w.held, rounds, &warmCollector{
		desc: prometheus.NewDesc(Namespace+"_warm_instances", "Instances the warm pool believes warm per function: running, warming or idle within the platform's keep-alive.", []string{"function"}, nil),
		src:  warm,
	})
	return w
}

// Warmup implements warmpool.Reporter.
func (w *WarmPool) Warmup(r warmpool.Reason, ok bool) {
	i := 0
	if ok {
		i = 1
	}
	w.warmups[r][i].Inc()
}

// ColdStart implements warmpool.Reporter.
func (w *WarmPool) ColdStart(function string) { w.cold.WithLabelValues(function).Inc() }

// Held implements warmpool.Reporter.
func (w *WarmPool) Held(hold time.Duration) { w.held.Add(hold.Seconds()) }

// Round implements warmpool.Reporter.
func (w *WarmPool) Round(verified bool) {
	i := 0
	if verified {
		i = 1
	}
	w.rounds[i].Inc()
}

// warmCollector reads the believed-warm counts at scrape time, so that a
// function the pool forgot leaves no stale series.
type warmCollector struct {
	desc *prometheus.Desc
	src  func(yield func(function string, n int))
}

func (c *warmCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *warmCollector) Collect(ch chan<- prometheus.Metric) {
	c.src(func(fn string, n int) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), fn)
	})
}
