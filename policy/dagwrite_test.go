package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDecideDAGShipped(t *testing.T) {
	e := newEngine(t, Options{})
	for _, tt := range []struct {
		name string
		in   DAGInput
		want bool
	}{
		{"new", DAGInput{Action: "put", DAG: "d", Caller: "a", Functions: []string{"a/f"}, Tenants: []string{"a"}}, true},
		{"own", DAGInput{Action: "put", DAG: "d", Caller: "a", Owner: "a", Exists: true}, true},
		{"another's", DAGInput{Action: "put", DAG: "d", Caller: "b", Owner: "a", Exists: true}, false},
		{"delete another's", DAGInput{Action: "delete", DAG: "d", Caller: "b", Owner: "a", Exists: true}, false},
		{"from the directory", DAGInput{Action: "delete", DAG: "d", Caller: "b", Exists: true}, true},
	} {
		ok, reasons, err := e.DecideDAG(context.Background(), &tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if ok != tt.want {
			t.Errorf("%s: allowed = %v (%v), want %v", tt.name, ok, reasons, tt.want)
		}
		if !ok && (len(reasons) != 1 || !strings.Contains(reasons[0], `belongs to "a"`)) {
			t.Errorf("%s: reasons = %q, want the owner named", tt.name, reasons)
		}
	}
}

func TestDecideDAGOwnPolicies(t *testing.T) {
	for _, tt := range []struct {
		name, src string
		caller    string
		want      bool
	}{
		{"no DAG rules: allowed", "package sequoia\n\ndecision := {}\n", "x", true},
		{"allow-list", "package sequoia\n\ndecision := {}\n\ndefault dag_allowed := false\n\ndag_allowed if input.caller == \"ci\"\n", "x", false},
		{"allow-list, listed", "package sequoia\n\ndecision := {}\n\ndefault dag_allowed := false\n\ndag_allowed if input.caller == \"ci\"\n", "ci", true},
		{"a reason alone refuses", "package sequoia\n\ndecision := {}\n\ndag_deny contains \"frozen\" if input.action == \"put\"\n", "ci", false},
	} {
		e := newEngineFiles(t, []File{{Name: "p.rego", Data: []byte(tt.src)}})
		ok, _, err := e.DecideDAG(context.Background(), &DAGInput{Action: "put", DAG: "d", Caller: tt.caller})
		if err != nil || ok != tt.want {
			t.Errorf("%s: allowed = %v, %v; want %v", tt.name, ok, err, tt.want)
		}
	}
}

func TestDAGDocumentsOfTheWrongTypeDoNotLoad(t *testing.T) {
	for _, src := range []string{
		"package sequoia\n\ndecision := {}\n\ndag_allowed := \"yes\"\n",
		"package sequoia\n\ndecision := {}\n\ndag_deny := {1}\n",
		"package sequoia\n\ndecision := {}\n\ndag_deny := \"no\"\n",
	} {
		_, err := compile(context.Background(), []File{{Name: "p.rego", Data: []byte(src)}}, nil)
		var pe *Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "DAG write validation") {
			t.Errorf("%q: err = %v, want a DAG write validation problem", src, err)
		}
	}
}

func newEngineFiles(t *testing.T, files []File) *Engine {
	t.Helper()
	dir := t.TempDir()
	m := map[string]string{}
	for _, f := range files {
		m[f.Name] = string(f.Data)
	}
	writePolicy(t, dir, m)
	return newEngine(t, Options{Dir: dir})
}
