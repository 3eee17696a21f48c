package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// tmpDir holds what the tests build; TestMain removes it.
var tmpDir string

func TestMain(m *testing.M) {
	var err error
	if tmpDir, err = os.MkdirTemp("", "sequoia-deploy-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

// The policies the ConfigMaps carry pass `sequoia policy check` (compile,
// validate the decision): the kustomize and chart copies, and what the
// chart renders when policies.files replaces one.
func TestPoliciesPassPolicyCheck(t *testing.T) {
	bin := sequoiaBinary(t)
	dirs := []string{"kustomize/base/policies", chartDir + "/files/policies"}
	// docs/deployment.md's example: deny a tenant by replacing deny.rego.
	shipped := string(readFile(t, chartDir+"/files/policies/deny.rego"))
	deny := strings.Replace(shipped, "deny_tenants := {}", `deny_tenants := {"acme": "over its contract"}`, 1)
	if deny == shipped {
		t.Fatal("the shipped deny.rego has no `deny_tenants := {}` to fill in: update this test, values.yaml and docs/deployment.md")
	}
	objs := renderObjects(t, loadChart(t), render{name: "deny a tenant", set: "policies:\n  files:\n    deny.rego: |\n" + indent(deny, "      ")})
	for _, cm := range ofKind[corev1.ConfigMap](objs) {
		dir := t.TempDir()
		for name, src := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	if len(dirs) != 3 {
		t.Fatalf("the chart rendered %d policy ConfigMaps, want 1", len(dirs)-2)
	}
	for _, dir := range dirs {
		out, err := exec.Command(bin, "policy", "check", dir).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "ok:") {
			t.Errorf("sequoia policy check %s: %v\n%s", dir, err, out)
		}
	}
	// And a broken one fails, so the check above means something.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "broken.rego"), []byte("package sequoia\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "policy", "check", bad).CombinedOutput(); err == nil {
		t.Errorf("sequoia policy check accepted a broken policy:\n%s", out)
	}
}
