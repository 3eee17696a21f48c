package policy

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/policies"
)

const reportPolicy = `package sequoia

decision := {"allow": true, "priority": p}

p := 5 if input.step > 1

p := 1 if input.step <= 1

big if input.step > 3
`

// TestFailingTestReport: a failing Rego test is reported at its failing
// expression, with the input it gave and the values it compared.
func TestFailingTestReport(t *testing.T) {
	for _, tc := range []struct {
		name, test string
		line       int
		want       []string
	}{
		{"equality", `test_eq if {
	decision.priority == 10 with input as {"step": 2}
}`, 4, []string{`decision.priority == 10 with input as {"step": 2}`, `input:    {"step": 2}`, "expected: 10", "actual:   5"}},
		{"constant on the left", `test_left if {
	10 == decision.priority with input as {"step": 2}
}`, 4, []string{"expected: 10", "actual:   5"}},
		{"local", `base := {"step": 1}

test_local if {
	d := decision with input as base
	d == {"allow": true, "priority": 3}
}`, 7, []string{`input:    {"step": 1}`, `expected: {"allow": true, "priority": 3}`, `actual:   {"allow": true, "priority": 1}`}},
		{"undefined", `test_undefined if {
	decision.priority == 1 with input as {}
}`, 4, []string{`input:    {}`, "expected: 1", "actual:   undefined"}},
		{"negation", `test_not if {
	not decision.priority with input as {"step": 2}
}`, 4, []string{"expected: undefined or false", "actual:   5"}},
		{"comparison", `test_gt if {
	a := decision.priority with input as {"step": 1}
	b := decision.priority with input as {"step": 2}
	a > b
}`, 6, []string{"argument 1: 1", "argument 2: 5"}},
		{"boolean", `test_bool if {
	big with input as {"step": 1}
}`, 4, []string{"expected: true", "actual:   undefined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := []File{{Name: "p.rego", Data: []byte(reportPolicy)},
				{Name: "p_test.rego", Data: []byte("package sequoia\n\n" + tc.test + "\n")}}
			_, err := Check(context.Background(), files, nil)
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) != 1 {
				t.Fatalf("err = %v, want one problem", err)
			}
			p := perr.Problems[0]
			if p.File != "p_test.rego" || p.Line != tc.line || p.Test == "" {
				t.Errorf("problem at %s:%d (test %q), want p_test.rego:%d", p.File, p.Line, p.Test, tc.line)
			}
			got := p.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("report lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestBadFieldBlamesItsContribution: a decision that breaks the schema is
// reported at the contribution that set the field, not at decision.rego's
// merge.
func TestBadFieldBlamesItsContribution(t *testing.T) {
	files := []File{
		{Name: "decision.rego", Data: []byte(`package sequoia

decision := object.union_n([{"allow": true}, c]) if {
	cs := [x | some x in data.sequoia.contribution]
	c := object.union_n(cs)
}
`)},
		{Name: "good.rego", Data: []byte("package sequoia\n\ncontribution.good := {\"priority\": 1}\n")},
		{Name: "mine.rego", Data: []byte("package sequoia\n\ncontribution.mine := {\n\t\"concurrency_cap\": 2,\n\t\"priorty\": 5,\n}\n")},
		{Name: "other.rego", Data: []byte("package sequoia\n\ncontribution.other := {\"class\": \"gold\"} if input.step >= 1\n")},
	}
	_, err := Check(context.Background(), files, nil)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v, want problems", err)
	}
	got := perr.Error()
	for _, want := range []string{
		"mine.rego:5: contribution.mine sets decision.priorty: unknown field",
		`other.rego:3: contribution.other sets decision.class: "gold" is not a class`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "decision.rego") || strings.Contains(got, "good.rego") {
		t.Errorf("problems blame the merge or a good contribution:\n%s", got)
	}
	// allow and reason are deny's: two contributions that set allow
	// make the shipped merge list them, which the schema refuses.
	merge, err := fs.ReadFile(policies.FS, "decision.rego")
	if err != nil {
		t.Fatal(err)
	}
	files = []File{{Name: "decision.rego", Data: merge},
		{Name: "a.rego", Data: []byte("package sequoia\n\ncontribution.a := {\"allow\": false}\n")},
		{Name: "b.rego", Data: []byte("package sequoia\n\ncontribution.b := {\"priority\": 1, \"allow\": true}\n")}}
	_, err = Check(context.Background(), files, nil)
	for _, want := range []string{`a.rego:3: contribution.a sets "allow": only deny decides allow and reason`,
		`b.rego:3: contribution.b sets "allow": only deny decides`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}
