package slo

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exposes the objectives at scrape time: the events counted
// (which the shipped recording rules turn into burn rates), the targets,
// and sequoia's own last evaluation (budget left, burn rates, alerts),
// and the webhook's deliveries.
type Collector struct {
	t *Tracker
	n *Notifier // nil: no webhook

	events, objective, budget, burn, alert, sli, notes *prometheus.Desc
}

// NewCollector returns the collector of t's objectives and n's
// deliveries (n may be nil).
func NewCollector(t *Tracker, n *Notifier) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("sequoia_slo_"+name, help, labels, nil)
	}
	return &Collector{t: t, n: n,
		events:    d("events_total", "Events counted towards each service-level objective, good or bad (SEQUOIA_SLO_FILE).", "slo", "result"),
		objective: d("objective", "Each objective's target: the share of good events it promises.", "slo"),
		sli:       d("sli", "Each objective's share of good events over its window, at sequoia's last evaluation.", "slo"),
		budget:    d("error_budget_remaining", "Share of each objective's error budget left over its window (below 0: breached), at sequoia's last evaluation.", "slo"),
		burn:      d("burn_rate", "How many times faster than sustainable each objective's error budget burned over each alert window (scaled to its window), at sequoia's last evaluation.", "slo", "window"),
		alert:     d("alert", "1 for each of an objective's alerts firing at sequoia's last evaluation.", "slo", "alertname"),
		notes:     d("notifications_total", "SLO webhook messages: delivered, failed (attempts, retried) and superseded (replaced by a newer one before delivery).", "result"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.events, c.objective, c.sli, c.budget, c.burn, c.alert, c.notes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	states, counts := c.t.statesCounts()
	for i, st := range states {
		good, total := counts[i][0], counts[i][1]
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(good), st.Name, "good")
		ch <- prometheus.MustNewConstMetric(c.events, prometheus.CounterValue, float64(total-good), st.Name, "bad")
		ch <- prometheus.MustNewConstMetric(c.objective, prometheus.GaugeValue, st.Target, st.Name)
		ch <- prometheus.MustNewConstMetric(c.sli, prometheus.GaugeValue, st.SLI, st.Name)
		ch <- prometheus.MustNewConstMetric(c.budget, prometheus.GaugeValue, st.BudgetRemaining, st.Name)
		for w, v := range st.BurnRates {
			ch <- prometheus.MustNewConstMetric(c.burn, prometheus.GaugeValue, v, st.Name, w)
		}
		for _, a := range []string{AlertFastBurn, AlertSlowBurn, AlertBudgetExhausted} {
			v := 0.0
			if slices.Contains(st.Alerts, a) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.alert, prometheus.GaugeValue, v, st.Name, a)
		}
	}
	var delivered, failed, superseded int64
	if c.n != nil {
		delivered, failed, superseded = c.n.Stats()
	}
	for r, v := range map[string]int64{"delivered": delivered, "failed": failed, "superseded": superseded} {
		ch <- prometheus.MustNewConstMetric(c.notes, prometheus.CounterValue, float64(v), r)
	}
}
