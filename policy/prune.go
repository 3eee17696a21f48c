package policy

import (
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// deadRules finds the rules that can never hold, whatever the input:
// rules with a body expression that is a constant false (sjf_enabled
// while sjf_enabled := false) or that looks a key up in a constant that
// cannot have it (caps_function_caps[input.function] while
// caps_function_caps := {}). The shipped policies are mostly off or
// empty until an operator fills them in, and OPA would otherwise evaluate
// every such rule on every decision.
//
// It is conservative: it looks only at a body's top-level expressions
// (not inside comprehensions, negations or every), and skips rules with
// an else, default rules, and, if any rule replaces a document with
// `with`, the whole policy, since a constant can then hold another value
// inside the with.
func deadRules(c *ast.Compiler, consts constants) map[string]bool {
	dead := map[string]bool{}
	for _, m := range c.Modules {
		withs := false
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			for _, w := range e.With {
				if !w.Target.Value.(ast.Ref).HasPrefix(ast.InputRootRef) {
					withs = true
				}
			}
			return withs
		})
		if withs {
			return nil
		}
	}
	for _, m := range c.Modules {
		for _, r := range m.Rules {
			if r.Default || r.Else != nil || r.Location == nil {
				continue
			}
			if ruleDead(r, consts) {
				dead[locKey(r.Location)] = true
			}
		}
	}
	return dead
}

func locKey(l *ast.Location) string { return fmt.Sprintf("%s:%d:%d", l.File, l.Row, l.Col) }

func ruleDead(r *ast.Rule, consts constants) bool {
	for _, e := range r.Body {
		if e.Negated || len(e.With) > 0 || e.IsCall() && (e.Operator().Equal(ast.Print.Ref()) || e.Operator().Equal(ast.InternalPrint.Ref())) {
			continue
		}
		if t, ok := e.Terms.(*ast.Term); ok {
			if ref, ok := t.Value.(ast.Ref); ok {
				if v, ok := constValue(ref, consts); ok && ast.InternedTerm(false).Value.Compare(v) == 0 {
					return true
				}
			}
		}
		if termsDead(e, consts) {
			return true
		}
	}
	// A head value that cannot be built leaves the rule undefined too.
	return r.Head.Value != nil && termsDead(r.Head.Value, consts)
}

// termsDead reports whether x holds, outside any comprehension, a
// reference that is undefined whatever the input.
func termsDead(x any, consts constants) bool {
	dead := false
	vis := ast.NewGenericVisitor(func(x any) bool {
		switch v := x.(type) {
		case *ast.ArrayComprehension, *ast.SetComprehension, *ast.ObjectComprehension, *ast.Every:
			return true // their own scope: an undefined term there yields nothing, not undefined
		case ast.Ref:
			if refDead(v, consts) {
				dead = true
			}
		}
		return dead
	})
	vis.Walk(x)
	return dead
}

// refDead reports whether ref reads past a constant into a key it does
// not hold: a ground key the constant lacks, or any key of an empty
// collection or a scalar.
func refDead(ref ast.Ref, consts constants) bool {
	val, rest, ok := constPrefix(ref, consts)
	if !ok {
		return false
	}
	for _, t := range rest {
		if !t.IsGround() {
			switch x := val.(type) {
			case ast.Object:
				return x.Len() == 0
			case ast.Set:
				return x.Len() == 0
			case *ast.Array:
				return x.Len() == 0
			}
			return true // a scalar has no keys
		}
		next, err := val.Find(ast.Ref{t})
		if err != nil {
			return true
		}
		val = next
	}
	return false
}

// constValue returns the value ref reads when it is a constant or a
// ground path into one.
func constValue(ref ast.Ref, consts constants) (ast.Value, bool) {
	val, rest, ok := constPrefix(ref, consts)
	if !ok || !rest.IsGround() {
		return nil, false
	}
	x, err := val.Find(rest)
	if err != nil {
		return nil, false
	}
	return x, true
}

// constPrefix finds the constant that ref starts with: its value, and the
// rest of ref past it. No constant is a prefix of another (findConstants
// takes leaves only), so the first found is the one.
func constPrefix(ref ast.Ref, consts constants) (ast.Value, ast.Ref, bool) {
	for i := 3; i <= len(ref) && i <= len(constRef{}); i++ {
		k, ok := constKey(ref[:i])
		if !ok {
			return nil, nil, false
		}
		if v, ok := consts[k]; ok {
			return v.Value, ref[i:], true
		}
	}
	return nil, nil, false
}

// prune removes the rules in dead from mods (freshly parsed modules:
// compiling changes the ones it is given) and returns how many went.
//
// Removing every rule of a name or of a set would change what remains:
// a bare name read elsewhere would become a local variable, and a set
// or object built by rules (deny contains ...) is empty, not undefined,
// when none holds. So the first of such rules stays, behind a leading
// `false`: it still never holds, but its name and its empty set remain.
func prune(mods map[string]*ast.Module, dead map[string]bool) int {
	isDead := func(r *ast.Rule) bool { return r.Location != nil && dead[locKey(r.Location)] }
	// groups are the keys of what r helps define: its package and name
	// and, for a multi-value rule, its package and ground path.
	groups := func(m *ast.Module, r *ast.Rule) []string {
		pkg, ref := m.Package.Path.String(), r.Head.Ref()
		gs := []string{"name\x00" + pkg + "\x00" + ref[0].String()}
		if r.Head.RuleKind() == ast.MultiValue {
			gs = append(gs, "path\x00"+pkg+"\x00"+ref.GroundPrefix().String())
		}
		return gs
	}
	// held: the groups with a rule left in, one that may hold or one
	// kept never holding.
	held := map[string]bool{}
	for _, m := range mods {
		for _, r := range m.Rules {
			if !isDead(r) {
				for _, g := range groups(m, r) {
					held[g] = true
				}
			}
		}
	}
	removed := 0
	for _, m := range mods {
		kept := m.Rules[:0]
		for _, r := range m.Rules {
			if isDead(r) {
				gs := groups(m, r)
				if !slices.ContainsFunc(gs, func(g string) bool { return !held[g] }) {
					removed++
					continue
				}
				// The group's first rule stays, never holding; the others go.
				for _, g := range gs {
					held[g] = true
				}
				r.Body = append(ast.NewBody(ast.NewExpr(ast.BooleanTerm(false))), r.Body...)
			}
			kept = append(kept, r)
		}
		m.Rules = kept
	}
	return removed
}
