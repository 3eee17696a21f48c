package policy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sequoia-qos/sequoia/policy"
)

// The shipped defaults put continuations of running chains first.
func ExampleEngine_Decide() {
	e, err := policy.New(context.Background(), policy.Options{Timeout: time.Second})
	if err != nil {
		panic(err)
	}
	first, _ := e.Decide(context.Background(), &policy.Input{Function: "ns/resize", Tenant: "ns", Step: 1})
	next, _ := e.Decide(context.Background(), &policy.Input{Function: "ns/resize", Tenant: "ns", Step: 2})
	fmt.Println(first.Deny, first.Priority == nil)
	fmt.Println(next.Deny, *next.Priority)
	// Output:
	// false true
	// false 100
}

// A policy directory of one's own: here a policy that denies one tenant
// and caps one function.
func ExampleNew_dir() {
	dir, _ := os.MkdirTemp("", "policies")
	defer os.RemoveAll(dir)
	_ = os.WriteFile(filepath.Join(dir, "decision.rego"), []byte(`package sequoia

decision := {"allow": false, "reason": "tenant suspended"} if input.tenant == "acme"

decision := {"concurrency_cap": 5} if input.tenant != "acme"
`), 0o644)
	e, err := policy.New(context.Background(), policy.Options{Dir: dir, Timeout: time.Second})
	if err != nil {
		panic(err)
	}
	d, _ := e.Decide(context.Background(), &policy.Input{Function: "acme/f", Tenant: "acme"})
	fmt.Println(d.Deny, d.Reason)
	d, _ = e.Decide(context.Background(), &policy.Input{Function: "other/f", Tenant: "other"})
	fmt.Println(d.Deny, d.ConcurrencyCap)
	// Output:
	// true tenant suspended
	// false 5
}

// A decision document is checked against the schema.
func ExampleDecodeDecision() {
	d, err := policy.DecodeDecision([]byte(`{"allow": true, "class": "batch", "chain_deadline_ms": 1500}`), nil)
	fmt.Println(d.Class, d.ChainDeadline, err)
	_, err = policy.DecodeDecision([]byte(`{"allow": true, "concurrency_cap": -2}`), nil)
	fmt.Println(err)
	// Output:
	// batch 1.5s <nil>
	// decision.concurrency_cap: -2 is out of range [0, 2147483648)
}
