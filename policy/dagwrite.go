package policy

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// DAG writes (registering, replacing or deleting a DAG through sequoia's
// API) are decided by two documents of package sequoia, evaluated once per
// write and never cached:
//
//	data.sequoia.dag_allowed   a boolean; undefined counts as true
//	data.sequoia.dag_deny      a set of reasons; any refuses the write
//
// A write is allowed when dag_allowed is not false and dag_deny is empty.
// The shipped dags.rego makes a DAG its registering caller's: only its
// owner or a caller in dags_admins may replace or delete it. A write that
// fails to evaluate is refused, whatever SEQUOIA_POLICY_ON_ERROR says:
// it changes what other callers' runs invoke.

// Queries of a DAG write.
const (
	DAGAllowedQuery = "data.sequoia.dag_allowed"
	DAGDenyQuery    = "data.sequoia.dag_deny"
)

var (
	dagAllowedVar   = ast.Var("allowed")
	dagDenyVar      = ast.Var("deny")
	dagAllowedQuery = ast.NewBody(ast.Equality.Expr(ast.NewTerm(dagAllowedVar), ast.NewTerm(ast.MustParseRef(DAGAllowedQuery))))
	dagDenyQuery    = ast.NewBody(ast.Equality.Expr(ast.NewTerm(dagDenyVar), ast.NewTerm(ast.MustParseRef(DAGDenyQuery))))
)

// DAGInput is what a policy knows of a DAG write: input.action, input.dag,
// and so on.
type DAGInput struct {
	// Action is "put" (register or replace) or "delete".
	Action string `json:"action"`
	DAG    string `json:"dag"`
	// Caller is the name of the token the write presented
	// (SEQUOIA_API_TOKEN_FILE).
	Caller string `json:"caller"`
	// Owner is the caller who registered the DAG now under that name: ""
	// when none is or it came from SEQUOIA_DAG_DIR. Exists says whether
	// one is.
	Owner  string `json:"owner"`
	Exists bool   `json:"exists"`
	// Functions are the functions the new DAG's tasks invoke, and Tenants
	// their tenants (OpenWhisk namespaces, Lambda ARN accounts); empty for
	// a delete.
	Functions []string `json:"functions"`
	Tenants   []string `json:"tenants"`
}

func (in *DAGInput) value() (ast.Value, error) {
	c := *in
	if c.Functions == nil {
		c.Functions = []string{}
	}
	if c.Tenants == nil {
		c.Tenants = []string{}
	}
	return ast.InterfaceToValue(map[string]any{
		"action": c.Action, "dag": c.DAG, "caller": c.Caller, "owner": c.Owner, "exists": c.Exists,
		"functions": c.Functions, "tenants": c.Tenants,
	})
}

// DecideDAG decides a DAG write: whether it is allowed and, when it is
// not, the policy's reasons. An error (wrapping ErrEvaluation) refuses it.
func (e *Engine) DecideDAG(ctx context.Context, in *DAGInput) (allowed bool, reasons []string, err error) {
	r := e.cur.Load()
	allowed, reasons, err = r.evalDAG(ctx, in, e.opts.Timeout)
	if err != nil {
		e.m.errors[evalFailed].Inc()
		e.log.Error("policy: a DAG write could not be decided; it is refused", "dag", in.DAG, "caller", in.Caller, "err", err)
		return false, []string{"the policy could not decide: " + err.Error()}, fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	return allowed, reasons, nil
}

// evalDAG evaluates both documents for in; timeout 0 means none.
func (p *compiled) evalDAG(ctx context.Context, in *DAGInput, timeout time.Duration) (bool, []string, error) {
	v, err := in.value()
	if err != nil {
		return false, nil, err
	}
	input := ast.NewTerm(v)
	allowed := true
	if t, err := p.evalOne(ctx, DAGAllowedQuery, p.dagAllowed, dagAllowedVar, input, timeout, nil); err != nil {
		return false, nil, err
	} else if t != nil {
		b, ok := t.Value.(ast.Boolean)
		if !ok {
			return false, nil, fmt.Errorf("%s must be a boolean, got %s", DAGAllowedQuery, ast.ValueName(t.Value))
		}
		allowed = bool(b)
	}
	var reasons []string
	t, err := p.evalOne(ctx, DAGDenyQuery, p.dagDeny, dagDenyVar, input, timeout, nil)
	if err != nil {
		return false, nil, err
	}
	if t != nil {
		set, ok := t.Value.(ast.Set)
		if !ok {
			return false, nil, fmt.Errorf("%s must be a set of strings, got %s", DAGDenyQuery, ast.ValueName(t.Value))
		}
		var bad error
		set.Foreach(func(x *ast.Term) {
			s, ok := x.Value.(ast.String)
			if !ok {
				bad = fmt.Errorf("%s must be a set of strings, holds %s", DAGDenyQuery, ast.ValueName(x.Value))
				return
			}
			reasons = append(reasons, string(s))
		})
		if bad != nil {
			return false, nil, bad
		}
	}
	slices.Sort(reasons)
	return allowed && len(reasons) == 0, reasons, nil
}

// compileDAG prepares the DAG-write queries of p.
func (p *compiled) compileDAG() error {
	var err error
	if p.dagAllowed, err = p.queryCompiler.Compile(dagAllowedQuery); err != nil {
		return astProblems(err)
	}
	if p.dagDeny, err = p.queryCompiler.Compile(dagDenyQuery); err != nil {
		return astProblems(err)
	}
	return nil
}

// dagValidationInputs are evaluated at every load: documents that error or
// have the wrong type for any of them never go live.
var dagValidationInputs = []DAGInput{
	{Action: "put", DAG: "sequoia-validate", Caller: "sequoia", Functions: []string{"ns/f"}, Tenants: []string{"ns"}},
	{Action: "delete", DAG: "sequoia-validate", Caller: "sequoia", Owner: "other", Exists: true},
}

func (p *compiled) validateDAG(ctx context.Context) error {
	for i := range dagValidationInputs {
		if _, _, err := p.evalDAG(ctx, &dagValidationInputs[i], 0); err != nil {
			return problem(p.decision, "DAG write validation input %d: %v", i+1, err)
		}
	}
	return nil
}
