package policy

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/slo"
)

const slosPolicy = `package sequoia

decision := {}

slos := [
	{"name": "checkout-p99", "kind": "latency", "function": "checkout", "percentile": 99, "threshold_ms": 300},
	{"name": "acme-chains", "kind": "chains", "tenant": "acme", "target": 0.999, "window": "7d"},
]
`

// TestPolicyDeclaresSLOs: a policy's data.sequoia.slos are its objectives,
// handed to Options.SLOs as it goes live; a policy with a bad objective,
// or whose objectives Options.SLOs refuses, does not load and the running
// version stays.
func TestPolicyDeclaresSLOs(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"p.rego": slosPolicy})
	var got []slo.Objective
	refuse := false
	e := newEngine(t, Options{Dir: dir, SLOs: func(objs []slo.Objective) error {
		if refuse {
			return errors.New("name taken")
		}
		got = objs
		return nil
	}})
	if len(got) != 2 || got[0].Name != "checkout-p99" || got[1].Tenant != "acme" || len(e.Objectives()) != 2 {
		t.Fatalf("objectives %+v, want the policy's two", got)
	}
	running := e.Version()
	for _, tc := range []struct{ src, want string }{
		{strings.Replace(slosPolicy, `"threshold_ms": 300`, `"threshold_ms": -1`, 1), `p.rego:5: data.sequoia.slos: invalid objective: objectives[0] ("checkout-p99"): threshold_ms`},
		{"package sequoia\n\ndecision := {}\n\nslos := {\"name\": \"x\"}\n", "p.rego:5: data.sequoia.slos must be a list of objectives, got object"},
		{"package sequoia\n\ndecision := {}\n\nslos := [{\"name\": \"x\", \"kind\": \"success\", \"target\": 0.9, \"team\": \"web\"}]\n", `unknown field "team"`},
	} {
		writePolicy(t, dir, map[string]string{"p.rego": tc.src})
		err := e.Reload(context.Background())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reload = %v, want an error containing %q", err, tc.want)
		}
		if e.Version() != running || len(e.Objectives()) != 2 {
			t.Errorf("a refused policy replaced the running one")
		}
	}
	// The hook refuses: the version does not go live.
	refuse = true
	writePolicy(t, dir, map[string]string{"p.rego": strings.Replace(slosPolicy, "0.999", "0.99", 1)})
	if err := e.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "data.sequoia.slos: name taken") {
		t.Errorf("Reload = %v, want the hook's refusal", err)
	}
	if e.Version() != running {
		t.Error("a version the hook refused went live")
	}
	// None declared: none.
	refuse = false
	writePolicy(t, dir, map[string]string{"p.rego": "package sequoia\n\ndecision := {}\n"})
	if err := e.Reload(context.Background()); err != nil || len(got) != 0 || e.Objectives() != nil {
		t.Errorf("Reload = %v, objectives %+v; want none", err, got)
	}
}
