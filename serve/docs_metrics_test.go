package serve

import (
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// descRE reads a descriptor's name and labels from prometheus.Desc's
// String, the only place client_golang shows them.
var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

// registeredMetrics returns every sequoia_ metric a server registers, with
// its labels, whether or not it has a series yet: with each backend (the
// parts they register differ) and every optional part on. types has the
// type of those with a series.
func registeredMetrics(t *testing.T) (labels map[string]string, types map[string]string) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "SEQUOIATESTKEY", "AWS_SECRET_ACCESS_KEY": "sequoia-test-secret", "AWS_REGION": "eu-west-1",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		t.Setenv(k, v)
	}
	_, addr := startEmulator(t, emulator.Config{Limit: 4})
	got, types := map[string]string{}, map[string]string{}
	for _, backend := range []string{"openwhisk", "lambda", "http"} {
		s := startServer(t, "SEQUOIA_BACKEND="+backend, "SEQUOIA_BACKEND_URL=http://"+addr, "SEQUOIA_PREWARM=true",
			"SEQUOIA_ADAPTIVE=true", "SEQUOIA_OVERFLOW_URL=http://"+addr)
		ch := make(chan *prometheus.Desc)
		go func() { s.Metrics().Registry().Describe(ch); close(ch) }()
		for d := range ch {
			m := descRE.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read %s", d)
			}
			if !strings.HasPrefix(m[1], "sequoia_") {
				continue
			}
			var labels []string
			for _, l := range strings.Split(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			slices.Sort(labels)
			got[m[1]] = strings.Join(labels, ",")
		}
		mfs, err := s.Metrics().Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			types[mf.GetName()] = strings.ToLower(mf.GetType().String())
		}
	}
	return got, types
}

// TestDocsListEveryMetric keeps docs/metrics.md and the registry in step:
// every metric sequoia registers has a row with its labels, and every row
// is a metric sequoia registers.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(sequoia_[a-z_]+)` \\| ([a-z]+) \\|([^|]*)\\|")
	documented, docTypes := map[string]string{}, map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(b), -1) {
		docTypes[m[1]] = m[2]
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		slices.Sort(labels)
		documented[m[1]] = strings.Join(labels, ",")
	}
	registered, types := registeredMetrics(t)
	for _, name := range slices.Sorted(maps.Keys(registered)) {
		labels, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("docs/metrics.md has no row for %s (labels %q)", name, registered[name])
		case labels != registered[name]:
			t.Errorf("docs/metrics.md: %s has labels %q, the registry %q", name, labels, registered[name])
		case types[name] != "" && types[name] != docTypes[name]:
			t.Errorf("docs/metrics.md: %s is a %s, the registry's a %s", name, docTypes[name], types[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if _, ok := registered[name]; !ok {
			t.Errorf("docs/metrics.md documents %s, which sequoia does not register", name)
		}
	}
}
