package cluster

import "github.com/prometheus/client_golang/prometheus"

// collector exposes the cluster as this replica sees it, read at scrape
// time: the budget, the replicas and each one's lease, use and queue, the
// NATS connection and whether this replica serves on a safe share.
type collector struct {
	e *Engine
	l *Leases
}

// NewCollector returns the cluster's gauges for e and l.
func NewCollector(e *Engine, l *Leases) prometheus.Collector { return collector{e, l} }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("sequoia_cluster_"+name, help, labels, nil)
}

var (
	descBudget    = desc("budget_slots", "SEQUOIA_MAX_CONCURRENCY: the platform concurrency the replicas of the cluster share.")
	descEffective = desc("effective_budget_slots", "The budget shared out: less than the budget when an adaptive limit found the platform takes less.")
	descReplicas  = desc("replicas", "Replicas of the cluster alive as this one last heard them, itself included.")
	descLease     = desc("lease_slots", "Each replica's lease of the budget, as this replica last read the leases.", "replica")
	descApplied   = desc("applied_slots", "The slots each replica uses now: its lease, less while it shrinks or on a safe share.", "replica")
	descInFlight  = desc("in_flight", "Invocations each replica has at the platform, as last heard.", "replica")
	descQueued    = desc("queue_depth", "Invocations waiting at each replica, both queues and classes, as last heard.", "replica")
	descConnected = desc("nats_connected", "1 while this replica is connected to NATS.")
	descFallback  = desc("fallback", "1 while this replica, cut off from NATS for longer than SEQUOIA_LEASE_TTL, serves on a safe share of the budget.")
	descChanges   = desc("lease_changes_total", "Changes of this replica's lease it wrote, by direction (grow, shrink).", "direction")
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBudget, descEffective, descReplicas, descLease, descApplied,
		descInFlight, descQueued, descConnected, descFallback, descChanges} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Status()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	g(descBudget, float64(st.Budget))
	g(descEffective, float64(st.Effective))
	g(descReplicas, float64(len(st.Replicas)))
	for _, r := range st.Replicas {
		g(descLease, float64(r.Lease), r.Name)
		g(descApplied, float64(r.Applied), r.Name)
		g(descInFlight, float64(r.InFlight), r.Name)
		g(descQueued, float64(r.Queued), r.Name)
	}
	g(descConnected, b(c.e.Connected()))
	g(descFallback, b(st.Fallback))
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Grown), "grow")
	ch <- prometheus.MustNewConstMetric(descChanges, prometheus.CounterValue, float64(st.Shrunk), "shrink")
}
