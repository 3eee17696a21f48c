package policies_test

import (
	"context"
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
