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
)

// copyShipped writes the shipped policies into a new directory, with
// edit applied to each file's source.
func copyShipped(t *testing.T, edit func(name, src string) string) string {
	t.Helper()
	dir := t.TempDir()
	if err := policies.CopyTo(dir, edit); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPolicyCheckShipped(t *testing.T) {
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"check", copyShipped(t, nil)}, &out); err != nil {
		t.Fatalf("check: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "ok: 16 files, ") {
		t.Errorf("output %q", out.String())
	}
}

// TestPolicyCheckEditedCopy: the shipped tests keep passing in a copy
// whose settings an operator changed, since they set what they rely on.
func TestPolicyCheckEditedCopy(t *testing.T) {
	dir := copyShipped(t, func(name, src string) string {
		for _, r := range [][2]string{
			{"sjf_enabled := false", "sjf_enabled := true"},
			{"shed_enabled := false", "shed_enabled := true"},
			{"shed_threshold_ms := 200", "shed_threshold_ms := 50"},
			{"chains_continuation_boost := 100", "chains_continuation_boost := 500"},
			{"caps_function_caps := {}", `caps_function_caps := {"f": 1, "thumb": 9}`},
			{"caps_function_ranks := {}", `caps_function_ranks := {"f": 3}`},
			{"functions_table := {}", `functions_table := {"f": {"prewarm": 1}, "g": {"chain_steps": 2}}`},
			{"deny_tenants := {}", `deny_tenants := {"t": "suspended"}`},
			{"deny_functions := {}", `deny_functions := {"old": "retired"}`},
		} {
			src = strings.Replace(src, r[0], r[1], 1)
		}
		return src
	})
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"check", dir}, &out); err != nil {
		t.Fatalf("check of an edited copy: %v\n%s", err, out.String())
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
				return strings.Replace(src, "batch work is shed while", "shedding batch while", 1)
			}
			return src
		}, "shed_test.rego:"},
		{"schema", func(name, src string) string {
			if name == "caps.rego" {
				return src + "\ncontribution.caps_gold := {\"class\": \"gold\"}\n"
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

// TestPolicyCheckAddedPolicy: with a policy added to a copy of the shipped
// ones, the shipped tests of the whole decision fail; check says so, with
// what they expected and got, and that they pass without the added file.
// A misspelt field is reported at the added file's line.
func TestPolicyCheckAddedPolicy(t *testing.T) {
	dir := copyShipped(t, nil)
	write := func(src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "mine.rego"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("package sequoia\n\ncontribution.mine := {\"priority\": 5}\n")
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"check", dir}, &out); err == nil {
		t.Fatalf("check passed:\n%s", out.String())
	}
	got := out.String()
	for _, want := range []string{
		filepath.Join(dir, "decision_test.rego") + ":35: test data.sequoia_test.test_priorities_add failed: d.priority == 2100",
		"\n    expected: 2100\n    actual:   2105\n    a shipped test of the shipped policies alone: it passes without mine.rego",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}

	write("package sequoia\n\ncontribution.mine := {\n\t\"priority\": 5,\n\t\"priorty\": 5,\n}\n")
	out.Reset()
	_ = runPolicy(context.Background(), []string{"check", dir}, &out)
	if want := filepath.Join(dir, "mine.rego") + ":5: contribution.mine sets decision.priorty: unknown field"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "decision.rego:") {
		t.Errorf("output blames the merge:\n%s", out.String())
	}
}
