package policy

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

func TestInvocationsAppliesDecision(t *testing.T) {
	dir := t.TempDir()
	src := `package sequoia

decision := {"allow": false, "reason": "async batch only"} if {
	input.type == "sync"
	input.function == "reports"
}

decision := {"class": "batch", "priority": input.step, "concurrency_cap": 2, "chain_deadline_ms": 1500,
	"chain_steps": 4, "queue_timeout_ms": 250, "idempotent": true, "prewarm": 3} if {
	input.type == "async"
	input.function == "reports"
}

decision := {} if input.function != "reports"
`
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{"c1": 2} // the chain's second request
	a := NewInvocations(newEngine(t, Options{Dir: dir}), func(id string) int { return steps[id] })
	req := &fasthttp.Request{}
	req.SetRequestURI("/2015-03-31/functions/reports/invocations")
	inv := &invocation.Invocation{Function: "reports", Platform: invocation.Lambda, Chain: "c1", Req: req, Class: qos.Interactive}
	if deny, reason := a.Decide(inv); !deny || reason != "async batch only" {
		t.Fatalf("sync: deny %v %q", deny, reason)
	}

	req.Header.Set("X-Amz-Invocation-Type", "Event")
	inv = &invocation.Invocation{Function: "reports", Platform: invocation.Lambda, Chain: "c1", Req: req, Class: qos.Interactive}
	if deny, _ := a.Decide(inv); deny {
		t.Fatal("async: denied")
	}
	want := invocation.Invocation{Function: "reports", Platform: invocation.Lambda, Chain: "c1", Req: req,
		Class: qos.Batch, Priority: 2, FunctionCap: 2, Budget: 1500 * time.Millisecond, Steps: 4,
		QueueTimeout: 250 * time.Millisecond, Idempotent: true, Prewarm: 3}
	if *inv != want {
		t.Errorf("applied:\n got %+v\nwant %+v", *inv, want)
	}
}

// TestAssignedChainIsStepOne: a chain id the proxy assigned to this very
// request is step 1 without asking the scheduler.
func TestAssignedChainIsStepOne(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package sequoia\n\ndecision := {\"priority\": input.step}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asked := 0
	a := NewInvocations(newEngine(t, Options{Dir: dir}), func(string) int { asked++; return 7 })
	inv := &invocation.Invocation{Function: "f", Platform: invocation.HTTP, Chain: "sq-x-1", ChainAssigned: true}
	if deny, _ := a.Decide(inv); deny || inv.Priority != 1 || asked != 0 {
		t.Errorf("assigned id: priority (step) %d, scheduler asked %d times; want 1, 0", inv.Priority, asked)
	}
	inv = &invocation.Invocation{Function: "f", Platform: invocation.HTTP, Chain: "given"}
	if deny, _ := a.Decide(inv); deny || inv.Priority != 7 || asked != 1 {
		t.Errorf("given id: priority (step) %d, scheduler asked %d times; want 7, 1", inv.Priority, asked)
	}
}

func TestInvocationType(t *testing.T) {
	for _, tc := range []struct {
		platform invocation.Platform
		uri      string
		header   string
		want     string
	}{
		{invocation.Lambda, "/2015-03-31/functions/f/invocations", "", "sync"},
		{invocation.Lambda, "/2015-03-31/functions/f/invocations", "Event", "async"},
		{invocation.OpenWhisk, "/api/v1/namespaces/ns/actions/f", "", "async"},
		{invocation.OpenWhisk, "/api/v1/namespaces/ns/actions/f?blocking=true", "", "sync"},
		{invocation.OpenWhisk, "/api/v1/web/ns/default/f.json", "", "sync"},
		{invocation.HTTP, "/f/", "", "sync"},
	} {
		req := &fasthttp.Request{}
		req.SetRequestURI(tc.uri)
		if tc.header != "" {
			req.Header.Set("X-Amz-Invocation-Type", tc.header)
		}
		if got := invocationType(&invocation.Invocation{Platform: tc.platform, Req: req}); got != tc.want {
			t.Errorf("%v %s %q: %s, want %s", tc.platform, tc.uri, tc.header, got, tc.want)
		}
	}
}

// The input carries only the fields the policy reads, and all of them
// when it reads input as a whole.
func TestInputHoldsWhatThePolicyReads(t *testing.T) {
	in := Input{Function: "f", Tenant: "t", Platform: "http", Class: "batch", ChainID: "c", Step: 2, ChainSteps: 3, Type: "sync"}
	for _, tc := range []struct {
		src  string
		want int
	}{
		{"package sequoia\n\ndecision := {\"priority\": input.step}\n", 2},
		{"package sequoia\n\ndecision := {\"priority\": count(input)}\n", 10},
		{"package sequoia\n\ndecision := {\"priority\": count(object.keys(input))} if input.tenant == \"t\"\n", 10},
	} {
		p, err := compile(context.Background(), []File{{Name: "p.rego", Data: []byte(tc.src)}}, DefaultClasses)
		if err != nil {
			t.Fatal(err)
		}
		d, err := p.eval(context.Background(), &in, emptySnapshotTerm(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		if d.Priority == nil || *d.Priority != tc.want {
			t.Errorf("%s: priority %v, want %d", tc.src, d.Priority, tc.want)
		}
	}
	if got := in.value(ast.NullTerm(), useTenant|useStep).(ast.Object).Keys(); len(got) != 2 {
		t.Errorf("keys %v, want tenant and step", got)
	}
}

// TestDenyAlwaysHasAReason: a policy may deny without a reason; every
// caller (the proxy's 403, a DAG node's failure) then gets one.
func TestDenyAlwaysHasAReason(t *testing.T) {
	dir := t.TempDir()
	src := "package sequoia\n\ndecision := {\"allow\": false}\n"
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	a := NewInvocations(newEngine(t, Options{Dir: dir}), func(string) int { return 1 })
	inv := &invocation.Invocation{Function: "f", Platform: invocation.Lambda, Req: &fasthttp.Request{}}
	if deny, reason := a.Decide(inv); !deny || reason != "denied by policy" {
		t.Errorf("deny %v, reason %q; want a deny saying \"denied by policy\"", deny, reason)
	}
}

// TestTicketedChainIsAContinuation: an id carrying another replica's
// admission ticket (a cluster's) is at least step 2, though this replica
// has not seen the chain.
func TestTicketedChainIsAContinuation(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package sequoia\n\ndecision := {\"priority\": input.step}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	step := 1
	a := NewInvocations(newEngine(t, Options{Dir: dir}), func(string) int { return step })
	inv := &invocation.Invocation{Function: "f", Platform: invocation.HTTP, Chain: "sq-0123456789abcdef-1", ChainTicket: "0.2.AAAAAAAAAAAAAAAA"}
	if deny, _ := a.Decide(inv); deny || inv.Priority != 2 {
		t.Errorf("ticketed id unknown here: step %d, want 2", inv.Priority)
	}
	step = 3
	inv = &invocation.Invocation{Function: "f", Platform: invocation.HTTP, Chain: "sq-0123456789abcdef-1", ChainTicket: "0.2.AAAAAAAAAAAAAAAA"}
	if deny, _ := a.Decide(inv); deny || inv.Priority != 3 {
		t.Errorf("ticketed id seen here twice: step %d, want 3", inv.Priority)
	}
}
