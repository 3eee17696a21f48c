package deploy

import (
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/sequoia-qos/sequoia/slo"
)

// The example objectives file parses as sequoia parses it.
func TestExampleObjectives(t *testing.T) {
	objs, err := slo.Parse(readFile(t, "slo/objectives.json"))
	if err != nil || len(objs) == 0 {
		t.Fatalf("slo/objectives.json: %v", err)
	}
}

// The SLO rules are the SRE workbook's multi-window, multi-burn-rate
// alerts for 30-day objectives, named as sequoia's own evaluation names
// them: each alert pairs a long and a short window over the factor of
// the workbook's table, and each recording rule's range is its name's.
func TestSLORulesFollowTheWorkbook(t *testing.T) {
	var plain rulesFile
	if err := decodeStrict(readFile(t, chartDir+"/files/sequoia-rules.yaml"), &plain); err != nil {
		t.Fatal(err)
	}
	want := map[string][][3]string{ // alert → (long, short, factor)
		slo.AlertFastBurn: {{"1h", "5m", "14.4"}, {"6h", "30m", "6"}},
		slo.AlertSlowBurn: {{"1d", "2h", "3"}, {"3d", "6h", "1"}},
	}
	found := map[string]bool{}
	for _, g := range plain.Groups {
		for _, r := range g.Rules {
			expr := r.Expr.String()
			if rate, ok := strings.CutPrefix(r.Record, "sequoia:slo_error_ratio:rate"); ok {
				if _, err := model.ParseDuration(rate); err != nil || strings.Count(expr, "["+rate+"]") != 2 {
					t.Errorf("%s: %q does not rate over [%s] twice", r.Record, expr, rate)
				}
			}
			if pairs, ok := want[r.Alert]; ok {
				found[r.Alert] = true
				for _, p := range pairs {
					for _, w := range p[:2] {
						if !strings.Contains(expr, "sequoia:slo_error_ratio:rate"+w+" > on (namespace, job, slo) ("+p[2]+" * sequoia:slo_error_budget:ratio)") {
							t.Errorf("%s: no %s window over %s times the budget in %q", r.Alert, w, p[2], expr)
						}
					}
				}
			}
			if r.Alert == slo.AlertBudgetExhausted {
				found[r.Alert] = true
			}
		}
	}
	if len(found) != 3 {
		t.Errorf("SLO alerts found: %v, want %s, %s and %s", found, slo.AlertFastBurn, slo.AlertSlowBurn, slo.AlertBudgetExhausted)
	}
}
