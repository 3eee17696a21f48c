package policy

import (
	"context"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Constants are answered without evaluating their rules, except under
// `with`, where a policy may replace one.
func TestConstants(t *testing.T) {
	src := `package sequoia

k := 5

t := {"a": 1}

q := k

f(x) := x

decision := {"priority": k + t.a + inner + q} if {
	inner := q with data.sequoia.k as 100
}
`
	p, err := compile(context.Background(), []File{{Name: "p.rego", Data: []byte(src)}}, DefaultClasses)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range p.consts {
		got = append(got, k[2])
	}
	if len(got) != 2 || p.consts[constRef{"data", "sequoia", "k"}] == nil || p.consts[constRef{"data", "sequoia", "t"}] == nil {
		t.Errorf("constants %v, want k and t", got)
	}
	d, err := p.eval(context.Background(), &Input{}, emptySnapshotTerm(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Priority == nil || *d.Priority != 5+1+100+5 {
		t.Errorf("priority %v, want 111", d.Priority)
	}
}

func emptySnapshotTerm(t *testing.T) *ast.Term {
	t.Helper()
	return snapshotTerm(t, Snapshot{})
}

// snapshotTerm converts s as the engine does at a refresh.
func snapshotTerm(tb testing.TB, s Snapshot) *ast.Term {
	tb.Helper()
	v, err := s.value()
	if err != nil {
		tb.Fatal(err)
	}
	return ast.NewTerm(v)
}
