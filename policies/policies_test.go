package policies_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/policies"
	"github.com/sequoia-qos/sequoia/policy"
)

// TestRego compiles the shipped policies as the proxy loads them,
// validates their decision and runs their Rego unit tests through OPA's
// tester.
func TestRego(t *testing.T) {
	files, err := policy.ReadFiles(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	var tests, policyFiles int
	for _, f := range files {
		if f.IsTest() {
			tests++
		} else {
			policyFiles++
		}
	}
	// Every policy file has its tests.
	if tests != policyFiles {
		t.Errorf("%d policy files but %d test files", policyFiles, tests)
	}
	n, err := policy.Check(context.Background(), files, nil)
	if err != nil {
		t.Fatalf("policy check:\n%v", err)
	}
	if n < 15 {
		t.Errorf("ran %d Rego tests, want at least 15", n)
	}
	t.Logf("%d Rego tests passed", n)
}

// TestDocsListTestsOfTheShippedSetAlone: docs/policies.md names the shipped
// tests that check the shipped policies alone, those a policy added beside
// them fails. They are found by adding one that contributes every field
// and denies.
func TestDocsListTestsOfTheShippedSetAlone(t *testing.T) {
	files, err := policy.ReadFiles(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, policy.File{Name: "probe.rego", Data: []byte(`package sequoia

contribution.probe := {"priority": 1, "concurrency_cap": 1, "chain_deadline_ms": 1, "chain_steps": 99,
	"queue_timeout_ms": 1, "idempotent": true, "prewarm": 99, "class": "batch"}

deny contains "probe"
`)})
	_, err = policy.Check(context.Background(), files, nil)
	var perr *policy.Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v, want failing tests", err)
	}
	var failing []string
	for _, p := range perr.Problems {
		if p.Test == "" {
			t.Fatalf("not a test failure: %v", p)
		}
		failing = append(failing, "`"+p.File+"`: `"+strings.TrimPrefix(p.Test, "data.sequoia_test.")+"`")
	}
	b, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "<!-- shipped-set tests -->\n")
	j := strings.Index(doc, "<!-- end -->")
	if i < 0 || j < i {
		t.Fatal("docs/policies.md has no <!-- shipped-set tests --> ... <!-- end --> list")
	}
	var listed []string
	for _, l := range strings.Split(strings.TrimSpace(doc[i+len("<!-- shipped-set tests -->\n"):j]), "\n") {
		listed = append(listed, strings.TrimPrefix(l, "- "))
	}
	slices.Sort(failing)
	slices.Sort(listed)
	if !slices.Equal(failing, listed) {
		t.Errorf("docs/policies.md lists\n%s\nbut these fail with a policy added:\n- %s", strings.Join(listed, "\n"), strings.Join(failing, "\n- "))
	}
}
