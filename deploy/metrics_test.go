package deploy

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/qos"
)

// The files whose metric names must exist in the binary.
var metricUsers = []string{
	"grafana/sequoia.json",
	chartDir + "/files/sequoia-rules.yaml",
	"kustomize/overlays/gateway/prometheusrule.yaml",
}

// metricName finds sequoia's metric names in PromQL, descriptions and
// legends alike: every mention must be a real metric.
var metricName = regexp.MustCompile(`\bsequoia_[a-zA-Z0-9_]+`)

// gauges is a scheduler at rest, for the scrape-time gauges.
type gauges struct{}

func (gauges) InFlight() int                  { return 0 }
func (gauges) Queued() int                    { return 0 }
func (gauges) Limit() int                     { return 1 }
func (gauges) Depth(qos.QueueKind, uint8) int { return 0 }
func (gauges) ActiveChains() int              { return 0 }

// registered registers sequoia's collectors the way `sequoia serve` does,
// binds one series of each vector and returns every name a scrape exposes
// (a histogram's _bucket, _sum and _count included), with the names of
// collectors that are described but have no series yet.
func registered(t *testing.T) (exposed, described map[string]bool) {
	t.Helper()
	m := metrics.New(10)
	m.NewChains()
	m.WatchScheduler(gauges{})
	m.WatchChains(gauges{})
	// Vectors bound on first use.
	m.PlatformStatus(200)
	m.Function([]byte("f")).Count(metrics.Forwarded)

	reg := m.Registry()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	exposed = map[string]bool{}
	for _, f := range families {
		name := f.GetName()
		exposed[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			exposed[name+"_bucket"], exposed[name+"_sum"], exposed[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			exposed[name+"_sum"], exposed[name+"_count"] = true, true
		}
	}
	described = map[string]bool{}
	ch := make(chan *prometheus.Desc)
	go func() { reg.Describe(ch); close(ch) }()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		if s := fq.FindStringSubmatch(d.String()); s != nil {
			described[s[1]] = true
		}
	}
	return exposed, described
}

func TestRegisteredMetricsSanity(t *testing.T) {
	exposed, described := registered(t)
	for _, name := range []string{"sequoia_in_flight", "sequoia_queue_wait_seconds_bucket", "sequoia_chains_dropped_total", "go_goroutines"} {
		if !exposed[name] {
			t.Errorf("%s not exposed; exposed: %v", name, slices.Sorted(maps.Keys(exposed)))
		}
	}
	if len(described) == 0 {
		t.Error("no collector described")
	}
}

func TestDashboardAndRulesUseRegisteredMetrics(t *testing.T) {
	exposed, described := registered(t)
	total := 0
	for _, f := range metricUsers {
		used := metricName.FindAllString(string(readFile(t, f)), -1)
		if len(used) == 0 {
			t.Errorf("%s uses no sequoia metric", f)
		}
		total += len(used)
		for _, name := range slices.Compact(slices.Sorted(slices.Values(used))) {
			switch {
			case exposed[name]:
			case described[name]:
				// A vector with no series yet: its name is real, its type
				// unknown here; suffixed names would not reach this case.
			default:
				t.Errorf("%s uses %s, which sequoia does not register", f, name)
			}
		}
	}
	if total == 0 {
		t.Fatal("no metric uses found")
	}
}

// The dashboard is a Grafana dashboard: every panel has a unique id, a
// position and, unless it is a row, queries on the data source variable.
func TestDashboard(t *testing.T) {
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID         int                 `json:"id"`
			Type       string              `json:"type"`
			Title      string              `json:"title"`
			GridPos    *struct{ W, H int } `json:"gridPos"`
			Datasource json.RawMessage     `json:"datasource"`
			Targets    []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, "grafana/sequoia.json"), &dash); err != nil {
		t.Fatalf("grafana/sequoia.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard needs a title, a uid and panels")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no position", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") || len(p.Targets) == 0 {
			t.Errorf("panel %q: want targets on the ${datasource} variable", p.Title)
		}
		for _, q := range p.Targets {
			if !metricName.MatchString(q.Expr) || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") ||
				strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") {
				t.Errorf("panel %q query %s: %q is not a query on a sequoia metric with balanced brackets", p.Title, q.RefID, q.Expr)
			}
		}
	}
}
