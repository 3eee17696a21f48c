package policy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	cacheHit = iota
	cacheMiss
)

const (
	evalFailed = iota
	evalTimeout
)

const (
	reloadOK = iota
	reloadFailed
)

// engineMetrics are the engine's pre-bound series: counting a decision
// is an atomic add.
type engineMetrics struct {
	decisions [2]prometheus.Counter // allow, deny
	cache     [2]prometheus.Counter
	errors    [2]prometheus.Counter
	reloads   [2]prometheus.Counter
	info      *prometheus.GaugeVec

	mu      sync.Mutex
	version string
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	const ns, sub = "sequoia", "policy"
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "decisions_total",
		Help: "Policy decisions by result (allow or deny), cached or not.",
	}, []string{"result"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "cache_lookups_total",
		Help: "Decision cache lookups by result (hit or miss).",
	}, []string{"result"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "evaluation_errors_total",
		Help: "Evaluations that failed or timed out (SEQUOIA_POLICY_TIMEOUT); they decide by SEQUOIA_POLICY_ON_ERROR.",
	}, []string{"kind"})
	reloads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "reloads_total",
		Help: "Policy loads by result: ok (swapped in) or failed (the running policy stayed).",
	}, []string{"result"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "info",
		Help: "1 for the running policy version.",
	}, []string{"version"})
	m := &engineMetrics{info: info}
	m.decisions[0], m.decisions[1] = decisions.WithLabelValues("allow"), decisions.WithLabelValues("deny")
	m.cache[cacheHit], m.cache[cacheMiss] = cache.WithLabelValues("hit"), cache.WithLabelValues("miss")
	m.errors[evalFailed], m.errors[evalTimeout] = errs.WithLabelValues("error"), errs.WithLabelValues("timeout")
	m.reloads[reloadOK], m.reloads[reloadFailed] = reloads.WithLabelValues("ok"), reloads.WithLabelValues("failed")
	if reg != nil {
		reg.MustRegister(decisions, cache, errs, reloads, info)
	}
	return m
}

func (m *engineMetrics) count(d Decision) {
	if d.Deny {
		m.decisions[1].Inc()
	} else {
		m.decisions[0].Inc()
	}
}

func (m *engineMetrics) setVersion(v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.version != "" {
		m.info.DeleteLabelValues(m.version)
	}
	m.version = v
	m.info.WithLabelValues(v).Set(1)
}
