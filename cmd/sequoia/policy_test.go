package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/policies"
	"github.com/sequoia-qos/sequoia/policy"
)

// copyShipped writes the shipped policies into a new directory, with
// edit applied to each file's source.
func copyShipped(t *testing.T, edit func(name, src string) string) string {
	t.Helper()
	dir := t.TempDir()
	files, err := policy.ReadFiles(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src := string(f.Data)
		if edit != nil {
			src = edit(f.Name, src)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPolicyCheckShipped(t *testing.T) {
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"check", copyShipped(t, nil)}, &out); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "ok: 14 files, ") {
		t.Errorf("output %q", out.String())
	}
}

func TestPolicyCheckFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(name, src string) string
		want string
	}{
		{"syntax", func(name, src string) string {
			if name == "shed.rego" {
				return strings.Replace(src, "shed_threshold_ms := 200", "shed_threshold_ms := ", 1)
			}
			return src
		}, "shed.rego:14: var cannot be used for rule name"},
		{"failing test", func(name, src string) string {
			if name == "shed.rego" {
				return strings.Replace(src, "shed_threshold_ms := 200", "shed_threshold_ms := 900", 1)
			}
			return src
		}, "shed_test.rego:"},
		{"schema", func(name, src string) string {
			if name == "caps.rego" {
				return src + "\nclass.caps := \"gold\"\n"
			}
			return src
		}, `decision.class: "gold" is not a class`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyShipped(t, tc.edit)
			var out bytes.Buffer
			err := runPolicy(context.Background(), []string{"check", dir}, &out)
			if err == nil {
				t.Fatalf("check passed:\n%s", out.String())
			}
			if !strings.Contains(out.String(), filepath.Join(dir, tc.want)) && !strings.Contains(out.String(), tc.want) {
				t.Errorf("output %q, want it to mention %q", out.String(), tc.want)
			}
		})
	}
}

func TestPolicyEval(t *testing.T) {
	dir := copyShipped(t, func(name, src string) string {
		if name == "shed.rego" {
			return strings.Replace(src, "shed_enabled := false", "shed_enabled := true", 1)
		}
		return src
	})
	input := filepath.Join(t.TempDir(), "in.json")
	doc := `{"function": "ns/report", "tenant": "ns", "class": "batch", "step": 1,
	         "snapshot": {"classes": {"interactive": {"wait_p99_ms": 450}}}}`
	if err := os.WriteFile(input, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"eval", "--input", input, "--dir", dir}, &out); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if got["allow"] != false || !strings.Contains(got["reason"].(string), "450ms") {
		t.Errorf("decision %s", out.String())
	}

	// Without --dir: the shipped defaults, which allow.
	out.Reset()
	if err := runPolicy(context.Background(), []string{"eval", "--input", input}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "{\n  \"allow\": true\n}" {
		t.Errorf("decision %s", out.String())
	}

	for _, args := range [][]string{{"eval"}, {"eval", "--input", filepath.Join(dir, "missing.json")}, {"check"}, {"nope"}} {
		if err := runPolicy(context.Background(), args, &out); err == nil {
			t.Errorf("policy %v: no error", args)
		}
	}
}
