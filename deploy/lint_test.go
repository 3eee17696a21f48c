package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestChartLint runs what `helm lint --strict` runs, with the default and
// the sidecar values, and with API tokens: warnings fail too.
func TestChartLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion("v1.33.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ file, set string }{
		{"", ""}, {"values-sidecar.yaml", ""}, {"values-sidecar-cluster.yaml", ""},
		{"", "apiTokens: {existingSecret: sequoia-api-tokens}"},
	} {
		file := tc.file
		vals := map[string]any{}
		if file != "" {
			if vals, err = chartutil.ReadValuesFile(filepath.Join(chartDir, file)); err != nil {
				t.Fatal(err)
			}
		}
		if tc.set != "" {
			v, err := chartutil.ReadValues([]byte(tc.set))
			if err != nil {
				t.Fatal(err)
			}
			vals = chartutil.CoalesceTables(v, vals)
			file += " + " + tc.set
		}
		l := lint.AllWithKubeVersion(chartDir, vals, "sequoia", kv)
		for _, m := range l.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (values %q): %s", file, m)
			} else {
				t.Logf("helm lint (values %q): %s", file, m)
			}
		}
	}
}
