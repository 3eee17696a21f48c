package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestSnapshotFairShare: the converted snapshot carries each tenant's fair
// share of the limit while two or more tenants have work in flight, and
// none while one tenant alone (or none) has.
func TestSnapshotFairShare(t *testing.T) {
	for _, tc := range []struct {
		name    string
		snap    Snapshot
		want    string // the fair_share term, "" for absent
		present bool
	}{
		{"two tenants", Snapshot{Limit: 10, Tenants: map[string]TenantStats{"a": {InFlight: 6}, "b": {InFlight: 1}}}, "5", true},
		{"three tenants", Snapshot{Limit: 10, Tenants: map[string]TenantStats{"a": {}, "b": {}, "c": {}}}, "3.3333333333333335", true},
		{"one tenant", Snapshot{Limit: 10, Tenants: map[string]TenantStats{"a": {InFlight: 10}}}, "", false},
		{"no limit", Snapshot{Tenants: map[string]TenantStats{"a": {}, "b": {}}}, "", false},
		{"given", Snapshot{Limit: 10, FairShare: 2, Tenants: map[string]TenantStats{"a": {}, "b": {}}}, "2", true},
	} {
		v, err := tc.snap.value()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := v.(ast.Object).Get(ast.StringTerm("fair_share"))
		if (got != nil) != tc.present || got != nil && got.String() != tc.want {
			t.Errorf("%s: fair_share = %v, want %q (present %v)", tc.name, got, tc.want, tc.present)
		}
	}
}
