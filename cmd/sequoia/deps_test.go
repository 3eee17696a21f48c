package main

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// forbidden are import path prefixes that must stay out of the binary: the
// Kubernetes, Helm and Kustomize libraries the deployment checks use live
// in the separate deploy module (deploy/go.mod) for that reason.
var forbidden = []string{"k8s.io/", "helm.sh/", "sigs.k8s.io/", "github.com/prometheus-operator/"}

// TestNoHeavyDependencies lists the packages linked into sequoia and fails
// on any from the deployment tooling.
func TestNoHeavyDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", ".").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	// The listing must be the binary's, or an empty one would pass.
	for _, want := range []string{"github.com/sequoia-qos/sequoia/cmd/sequoia", "github.com/sequoia-qos/sequoia/proxy", "github.com/valyala/fasthttp"} {
		if !slices.Contains(deps, want) {
			t.Fatalf("go list -deps lacks %s; got %d packages", want, len(deps))
		}
	}
	for _, d := range deps {
		for _, p := range forbidden {
			if strings.HasPrefix(d, p) {
				t.Errorf("the sequoia binary imports %s; deployment tooling belongs in the deploy module", d)
			}
		}
	}
}
