// Package deploy holds no code: it is the module in which sequoia's
// deployment files (Kustomize base and overlays, Helm chart, Dockerfile,
// Grafana dashboard, alert rules) are checked, so that the Kubernetes, Helm
// and Kustomize libraries the checks need stay out of the main module and
// the sequoia binary.
//
// The tests build the overlays with krusty and render the chart with
// Helm's engine, decode every object strictly into the Kubernetes (and
// Prometheus Operator) API types, check every SEQUOIA_* variable against
// config.Variables and every metric the dashboard and the alert rules use
// against what the binary registers (with the example objectives of
// slo/objectives.json loaded, so that the SLO series exist), check that the
// SLO rules are the SRE workbook's multi-window, multi-burn-rate alerts,
// and that the API token file (the chart's apiTokens, the optional
// api-tokens component) is a read-only Secret volume sequoia can read:
//
//	cd deploy && go test ./...
package deploy
