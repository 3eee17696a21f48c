package deploy

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestChartLint runs what `helm lint --strict` runs, with the default and
// the sidecar values: warnings fail too.
func TestChartLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion("v1.33.0")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"", "values-sidecar.yaml", "values-sidecar-cluster.yaml"} {
		vals := map[string]any{}
		if file != "" {
			if vals, err = chartutil.ReadValuesFile(filepath.Join(chartDir, file)); err != nil {
				t.Fatal(err)
			}
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
