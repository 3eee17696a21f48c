package proxy

import (
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/tracing"
)

// Decider is what the proxy needs of the policy engine: one decision per
// invocation, once it is parsed and before it queues. Decide may set the
// invocation's scheduling fields (class, priority, caps, chain deadline
// and steps, queue timeout); it reports whether the invocation is refused
// and why (a reason is always given). It sees the invocation's names and
// headers, never its body.
type Decider interface {
	Decide(inv *invocation.Invocation) (deny bool, reason string)
}

// refusedByPolicy asks the Decider about inv and, on a deny, answers 403
// with the policy's reason. It reports whether the request was answered.
func (p *Proxy) refusedByPolicy(ctx *fasthttp.RequestCtx, inv *invocation.Invocation, fn *metrics.Function, span *tracing.Invocation) bool {
	if p.cfg.Decider == nil {
		return false
	}
	deny, reason := p.cfg.Decider.Decide(inv)
	span.Decided(inv, !deny, reason)
	if !deny {
		return false
	}
	fn.Count(metrics.PolicyDenied)
	p.writeError(ctx, &apiError{fasthttp.StatusForbidden, "policy_denied", "sequoia: " + reason, 0})
	ctx.Response.Header.Set("X-Sequoia-Chain-Id", inv.Chain)
	span.End(inv, fasthttp.StatusForbidden, 0, fmt.Errorf("%w: %s", tracing.ErrPolicyDenied, reason))
	return true
}
