package policy

import (
	"bytes"
	"cmp"
	"context"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// Invocations applies the engine's decisions to invocations: it is the
// proxy's Decider. It builds the policy input from the parsed invocation
// (names and scheduling headers only: never the body, never credentials)
// and writes what the decision says into the invocation's scheduling
// fields, leaving the rest to configuration.
type Invocations struct {
	e    *Engine
	step func(chain string) int
}

// NewInvocations returns the adapter. step numbers an invocation within
// its chain (1 for a chain's first request), so that policies can tell a
// first step from continuations; the scheduler's ChainStep, which counts
// the requests its chain table admitted, so that a request refused before
// admission (by the policy, a full queue, a deadline) is not counted and
// its retry is still step 1. Nil numbers every invocation 1.
func NewInvocations(e *Engine, step func(chain string) int) *Invocations {
	if step == nil {
		step = func(string) int { return 1 }
	}
	return &Invocations{e: e, step: step}
}

var (
	headerInvocationType = []byte("X-Amz-Invocation-Type")
	argBlocking          = []byte("blocking")
)

// invocationType says whether the caller waits for the result.
func invocationType(inv *invocation.Invocation) string {
	if inv.Req == nil {
		return "sync"
	}
	switch inv.Platform {
	case invocation.Lambda:
		if bytes.Equal(inv.Req.Header.PeekBytes(headerInvocationType), []byte("Event")) {
			return "async"
		}
	case invocation.OpenWhisk:
		// The REST API's default is non-blocking; web actions always wait.
		if bytes.Contains(inv.Req.URI().Path(), []byte("/actions/")) &&
			!bytes.Equal(inv.Req.URI().QueryArgs().PeekBytes(argBlocking), []byte("true")) {
			return "async"
		}
	}
	return "sync"
}

// stepOf numbers inv within its chain: 1 without a lookup for a chain id
// the proxy assigned to this very request; 2 at least for an id carrying
// another replica's admission ticket (a cluster's), which is issued only
// once the chain's first step was admitted. (The ticket is verified at
// admission, not here: a forged one only reorders its sender's own
// waiting first steps.)
func (a *Invocations) stepOf(inv *invocation.Invocation) int {
	if inv.ChainAssigned {
		return 1
	}
	step := a.step(inv.Chain)
	if inv.ChainTicket != "" {
		step = max(step, 2)
	}
	return step
}

// Decide evaluates the policy for inv and applies the decision. It
// reports whether the invocation is refused, and why. An evaluation
// error has already been counted and decided by SEQUOIA_POLICY_ON_ERROR.
func (a *Invocations) Decide(inv *invocation.Invocation) (deny bool, reason string) {
	in := Input{
		Function:      inv.Function,
		Tenant:        inv.Tenant,
		Platform:      inv.Platform.String(),
		Class:         qos.ClassName(inv.Class),
		ChainID:       inv.Chain,
		Step:          a.stepOf(inv),
		ChainDeadline: inv.Budget,
		ChainSteps:    inv.Steps,
		Type:          invocationType(inv),
	}
	d, _ := a.e.Decide(context.Background(), &in)
	if d.Deny {
		return true, cmp.Or(d.Reason, "denied by policy") // a policy may deny without saying why
	}
	Apply(d, inv)
	return false, ""
}

// Apply writes what d says into inv's scheduling fields; what d leaves
// out keeps the value parsing gave it.
func Apply(d Decision, inv *invocation.Invocation) {
	if d.Class != "" {
		if c, ok := qos.ParseClass([]byte(d.Class)); ok {
			inv.Class = c
		}
	}
	if d.ChainDeadline > 0 {
		inv.Budget = d.ChainDeadline
	}
	if d.ChainSteps > 0 {
		inv.Steps = d.ChainSteps
	}
	if d.Priority != nil {
		inv.Priority = *d.Priority
	}
	if d.ConcurrencyCap > 0 {
		inv.FunctionCap = d.ConcurrencyCap
	}
	if d.QueueTimeout > 0 {
		inv.QueueTimeout = d.QueueTimeout
	}
	if d.Idempotent != nil {
		inv.Idempotent = *d.Idempotent
	}
	if d.Prewarm > 0 {
		inv.Prewarm = d.Prewarm
	}
}
