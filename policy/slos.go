package policy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sequoia-qos/sequoia/slo"
)

// A policy may declare service-level objectives as well as decide:
// data.sequoia.slos, evaluated once each time the policy loads (with no
// input and no snapshot), is a list of objectives in the shape of
// SEQUOIA_SLO_FILE's "objectives" (package slo):
//
//	slos := [{"name": "checkout-p99", "kind": "latency", "function": "checkout",
//		"percentile": 99, "threshold_ms": 300, "window": "7d"}]
//
// A policy whose objectives are not valid does not load: the error names
// the objective and the field, and the running version stays. Undefined
// declares none.
const SLOQuery = "data.sequoia.slos"

var (
	slosVar   = ast.Var("slos")
	slosRef   = ast.MustParseRef(SLOQuery)
	slosQuery = ast.NewBody(ast.Equality.Expr(ast.NewTerm(slosVar), ast.NewTerm(ast.MustParseRef(SLOQuery))))
)

// loadSLOs evaluates the policy's objectives into p.slos.
func (p *compiled) loadSLOs(ctx context.Context) error {
	q, err := p.queryCompiler.Compile(slosQuery)
	if err != nil {
		return astProblems(err)
	}
	loc := p.decision
	if rules := p.compiler.GetRules(slosRef); len(rules) > 0 {
		loc = rules[0].Location
	}
	t, err := p.evalOne(ctx, SLOQuery, q, slosVar, ast.NewTerm(ast.NewObject()), 0, nil)
	if err != nil {
		return problem(loc, "%s: %v", SLOQuery, err)
	}
	if t == nil {
		return nil
	}
	v, err := ast.JSON(t.Value)
	if err != nil {
		return problem(loc, "%s: %v", SLOQuery, err)
	}
	if _, ok := v.([]any); !ok {
		return problem(loc, "%s must be a list of objectives, got %s", SLOQuery, ast.ValueName(t.Value))
	}
	b, err := json.Marshal(map[string]any{"objectives": v})
	if err != nil {
		return problem(loc, "%s: %v", SLOQuery, err)
	}
	if p.slos, err = slo.Parse(b); err != nil {
		return problem(loc, "%s: %v", SLOQuery, err)
	}
	return nil
}

// Objectives returns the service-level objectives the running policy
// declares (data.sequoia.slos); nil when it declares none.
func (e *Engine) Objectives() []slo.Objective { return e.cur.Load().slos }

// errSLOs wraps what Options.SLOs refused.
func errSLOs(err error) error { return fmt.Errorf("%s: %w", SLOQuery, err) }
