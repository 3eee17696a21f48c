package policy

import (
	"context"
	"fmt"
	"sort"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

var (
	contributionRef   = ast.MustParseRef("data.sequoia.contribution")
	contributionVar   = ast.Var("contribution")
	contributionQuery = ast.NewBody(ast.Equality.Expr(ast.NewTerm(contributionVar), ast.NewTerm(contributionRef)))
)

// blame finds the contributions that make a decision break the schema, for
// the input that showed it: decision.rego only merges, so the field at
// fault comes from a contribution.NAME of some file, and that is the line
// to show. It returns nil when no contribution is at fault (the decision
// rule itself, a deny reason that is not a string, ...).
func (p *compiled) blame(ctx context.Context, in *Input, snap *ast.Term) *Error {
	contribs, err := p.evalContributions(ctx, in, snap)
	if err != nil || contribs == nil {
		return nil
	}
	var out Error
	contribs.Foreach(func(k, v *ast.Term) {
		ks, ok := k.Value.(ast.String)
		if !ok {
			return
		}
		name := string(ks)
		obj, ok := v.Value.(ast.Object)
		if !ok {
			out.Problems = append(out.Problems, p.contributionProblem(name, "",
				fmt.Sprintf("contribution.%s must be an object of decision fields, got %s", name, ast.ValueName(v.Value))))
			return
		}
		var fields []string
		obj.Foreach(func(fk, _ *ast.Term) {
			if s, ok := fk.Value.(ast.String); ok {
				fields = append(fields, string(s))
			}
		})
		sort.Strings(fields)
		for _, f := range fields {
			if f == fieldAllow || f == fieldReason {
				out.Problems = append(out.Problems, p.contributionProblem(name, f,
					fmt.Sprintf("contribution.%s sets %q: only deny decides allow and reason (deny contains REASON)", name, f)))
				continue
			}
			one := ast.NewObject(ast.Item(ast.StringTerm(f), obj.Get(ast.StringTerm(f))))
			if _, err := decode(one, p.classes); err != nil {
				out.Problems = append(out.Problems, p.contributionProblem(name, f,
					fmt.Sprintf("contribution.%s sets %v", name, err)))
			}
		}
	})
	if len(out.Problems) == 0 {
		return nil
	}
	sort.SliceStable(out.Problems, func(i, j int) bool {
		a, b := out.Problems[i], out.Problems[j]
		return a.File < b.File || a.File == b.File && a.Line < b.Line
	})
	return &out
}

// contributionProblem locates a problem at the rule that defines
// contribution.NAME, at FIELD's key when the rule writes the object out.
func (p *compiled) contributionProblem(name, field, msg string) Problem {
	pr := Problem{Message: msg}
	rules := p.compiler.GetRules(contributionRef.Append(ast.StringTerm(name)))
	var loc *ast.Location
	for _, r := range rules {
		if loc == nil {
			loc = r.Location
		}
		if r.Head.Value == nil || field == "" {
			continue
		}
		if obj, ok := r.Head.Value.Value.(ast.Object); ok {
			if kt := keyTerm(obj, field); kt != nil && kt.Location != nil {
				loc = kt.Location
				break
			}
		}
	}
	if loc != nil {
		pr.File, pr.Line = loc.File, loc.Row
	}
	return pr
}

// keyTerm is obj's key term for field, whose location is where the field
// is written.
func keyTerm(obj ast.Object, field string) *ast.Term {
	var found *ast.Term
	obj.Foreach(func(k, _ *ast.Term) {
		if s, ok := k.Value.(ast.String); ok && string(s) == field && found == nil {
			found = k
		}
	})
	return found
}

// evalContributions evaluates data.sequoia.contribution for in: an object
// of NAME to contribution, or nil when no policy contributes.
func (p *compiled) evalContributions(ctx context.Context, in *Input, snap *ast.Term) (ast.Object, error) {
	query, err := p.queryCompiler.Compile(contributionQuery)
	if err != nil {
		return nil, err
	}
	txn, err := p.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer p.store.Abort(ctx, txn)
	q := topdown.NewQuery(query).
		WithQueryCompiler(p.queryCompiler).
		WithCompiler(p.compiler).
		WithStore(p.store).
		WithTransaction(txn).
		WithInput(ast.NewTerm(in.value(snap, p.uses)))
	var result ast.Object
	err = q.Iter(ctx, func(qr topdown.QueryResult) error {
		if obj, ok := qr[contributionVar].Value.(ast.Object); ok {
			result = obj
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return result, nil
}
