package config

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/config/internal/refgen"
)

func TestDefaults(t *testing.T) {
	cfg, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Serving.Listen != ":8080" || cfg.Serving.AdminListen != "127.0.0.1:9090" ||
		cfg.Limits.MaxConcurrency != 100 || cfg.Limits.QueueTimeout != 30*time.Second || cfg.Backend.Kind != "http" {
		t.Errorf("defaults = %+v", cfg)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct{ env, name, value string }{
		{"SEQUOIA_MAX_CONCURRENCY=ten", "SEQUOIA_MAX_CONCURRENCY", "ten"},
		{"SEQUOIA_MAX_CONCURRENCY=0", "SEQUOIA_MAX_CONCURRENCY", "0"},
		{"SEQUOIA_QUEUE_CAPACITY=-1", "SEQUOIA_QUEUE_CAPACITY", "-1"},
		{"SEQUOIA_QUEUE_TIMEOUT=soon", "SEQUOIA_QUEUE_TIMEOUT", "soon"},
		{"SEQUOIA_QUEUE_TIMEOUT=0s", "SEQUOIA_QUEUE_TIMEOUT", "0s"},
		{"SEQUOIA_BACKEND=azure", "SEQUOIA_BACKEND", "azure"},
		{"SEQUOIA_BACKEND_URL=ftp://host", "SEQUOIA_BACKEND_URL", "ftp://host"},
		{"SEQUOIA_BACKEND_URL=http://host/path", "SEQUOIA_BACKEND_URL", "http://host/path"},
		{"SEQUOIA_LISTEN=8080", "SEQUOIA_LISTEN", "8080"},
		{"SEQUOIA_MAX_BODY_BYTES=big", "SEQUOIA_MAX_BODY_BYTES", "big"},
		{"SEQUOIA_LOG_LEVEL=loud", "SEQUOIA_LOG_LEVEL", "loud"},
		{"SEQUOIA_HTTP_ROUTE=dns", "SEQUOIA_HTTP_ROUTE", "dns"},
		{"SEQUOIA_ADMISSION_HEADROOM_MAX=0.95", "SEQUOIA_ADMISSION_HEADROOM_MAX", "0.95"},
		{"SEQUOIA_ADMISSION_HEADROOM_MAX=0.01", "SEQUOIA_ADMISSION_HEADROOM_MAX", "0.01"},
		{"SEQUOIA_REQUEST_START_HEADER=X Request Start", "SEQUOIA_REQUEST_START_HEADER", "X Request Start"},
		{"SEQUOIA_REQUEST_START_HEADER=X-Start:", "SEQUOIA_REQUEST_START_HEADER", "X-Start:"},
	}
	for _, tt := range tests {
		_, err := LoadFrom([]string{tt.env})
		if err == nil {
			t.Errorf("%s: no error", tt.env)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.value) {
			t.Errorf("%s: error %q does not name the variable and value", tt.env, msg)
		}
	}
}

func TestFieldNamesAreUnique(t *testing.T) {
	// caarlos0/env reports a parse error by Go field name; explain maps it
	// back to the variable, which needs field names unique across structs.
	seen := map[string]int{}
	n := 0
	walkFields(func(name string) { seen[name]++; n++ })
	for name, c := range seen {
		if c > 1 {
			t.Errorf("field name %s used %d times", name, c)
		}
	}
	if n != len(Variables()) {
		t.Errorf("%d fields, %d variables", n, len(Variables()))
	}
}

// TestDocsDocumentEveryVariable keeps docs/configuration.md and the
// structs in step: every variable has a row with its real default.
func TestDocsDocumentEveryVariable(t *testing.T) {
	b, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, v := range Variables() {
		row := regexp.MustCompile("(?m)^\\| `" + v.Name + "` \\| (`([^`]*)`|\\*empty\\*) \\|")
		m := row.FindStringSubmatch(doc)
		if m == nil {
			t.Errorf("docs/configuration.md has no table row for %s", v.Name)
			continue
		}
		if m[2] != v.Default {
			t.Errorf("docs/configuration.md: default of %s = %q, want %q", v.Name, m[2], v.Default)
		}
	}
}

// TestGeneratedFilesAreCurrent fails when a doc comment, tag or field
// changed without `go generate ./config`.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files, err := refgen.Generate(".")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `go generate ./config`", filepath.Clean(filepath.Join("config", name)))
		}
	}
}

// TestReferenceListsEveryVariable: what `serve --help` and `sequoia
// config` print covers every variable Config reads, with its default.
func TestReferenceListsEveryVariable(t *testing.T) {
	var got []Variable
	for _, c := range Reference() {
		for _, v := range c.Variables {
			got = append(got, Variable{Name: v.Name, Default: v.Default, Secret: v.Secret})
		}
	}
	want := Variables()
	if len(got) != len(want) {
		t.Fatalf("reference has %d variables, Config %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Default != want[i].Default || got[i].Secret != want[i].Secret {
			t.Errorf("reference[%d] = %+v, Config's = %+v", i, got[i], want[i])
		}
	}
}
