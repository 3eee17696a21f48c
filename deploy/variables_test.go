package deploy

import (
	"io/fs"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/config"
)

var variableName = regexp.MustCompile(`\bSEQUOIA_[A-Z0-9_]*[A-Z0-9]`)

// Every SEQUOIA_* name in a deployment file (manifests, patches, chart
// templates and values, Dockerfile, dashboard, rules) and in every object
// the overlays build and the chart renders is a variable sequoia reads.
func TestVariablesExist(t *testing.T) {
	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v.Name] = true
	}
	seen := 0
	unknown := map[string][]string{} // name -> where
	check := func(source, text string) {
		for _, name := range variableName.FindAllString(text, -1) {
			seen++
			if !known[name] && !slices.Contains(unknown[name], source) {
				unknown[name] = append(unknown[name], source)
			}
		}
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || strings.HasPrefix(path, "go.") {
			return err
		}
		check(path, string(readFile(t, path)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range overlays {
		for _, o := range build(t, dir) {
			checkObjectVariables(t, o, check)
		}
	}
	c := loadChart(t)
	for _, r := range renders {
		for _, o := range renderObjects(t, c, r) {
			checkObjectVariables(t, o, check)
		}
	}
	if seen == 0 {
		t.Fatal("no SEQUOIA_* variable found anywhere")
	}
	for _, name := range slices.Sorted(maps.Keys(unknown)) {
		t.Errorf("%s is not in config.Variables(), yet %d deployment files and objects name it: %s",
			name, len(unknown[name]), strings.Join(unknown[name], ", "))
	}
}

func checkObjectVariables(t *testing.T, o object, check func(source, text string)) {
	t.Helper()
	b, err := yamlOf(o.obj)
	if err != nil {
		t.Fatal(err)
	}
	check(o.String(), string(b))
}
