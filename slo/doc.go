// Package slo owns service-level objectives: an operator declares them
// (SEQUOIA_SLO_FILE) per function, per tenant or for chains; sequoia
// tracks each over its window (SLI, error budget left, the burn rates of
// the SRE workbook's multi-window, multi-burn-rate alerts), exposes them
// in metrics, /sequoia/v1/status and the policies' snapshot, and calls a
// webhook in Alertmanager's format when their alerts fire or resolve.
//
// Goals. Counting costs the request path next to nothing: an ended
// invocation costs a map look-up per selector and, for each objective it
// belongs to, two atomic adds; nothing else runs per request. Evaluation
// runs at an interval off the request path. Alerts are the workbook's,
// scaled to each objective's window, so that a one-hour objective pages
// within minutes. A breach is notified once per change, not once per
// evaluation, and retried until delivered.
//
// Internal organisation.
//
//   - Objective and Parse (config.go) are the declaration: kind (latency,
//     success, chains), selector, target, window.
//   - Tracker (tracker.go) counts events into cumulative counters
//     (Finished, an observer of the proxy's and DAG runs' invocations;
//     ChainEnded, from the scheduler's chain events) and, at each
//     Evaluate, samples them into two histories (one sample per
//     evaluation for the short windows, 8640 for the whole window), from
//     which the counts over any window are two look-ups. Evaluate computes
//     each objective's State and hands the states to Notify.
//   - Notifier (notify.go) turns states into Alertmanager messages, one
//     group per objective: a message when the set of firing alerts
//     changes (resolved alerts included once), a newer message replacing
//     an undelivered one, retries with exponential backoff on failure.
//   - Collector (metrics.go) exposes it all at scrape time.
//
// Usage:
//
//	objs, err := slo.Load("/etc/sequoia/slo.json")
//	n := slo.NewNotifier(slo.NotifierConfig{URL: "http://alertmanager-bridge/hook"}, objs)
//	t := slo.New(slo.Config{Objectives: objs, Interval: 30 * time.Second, Notify: n.Update})
//	reg.MustRegister(slo.NewCollector(t, n))
//	go t.Run(stop)
//	// proxy and DAG runs: t.Finished(inv, atPlatform, err); the scheduler: t.ChainEnded(class, outcome)
package slo
