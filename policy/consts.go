package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// constRef is a constant rule's path as strings: data, the package, the
// rule name and at most one more key (a constant written with a ref
// head, a.b := 1). Comparable, so a lookup costs no allocation.
type constRef [5]string

// constants holds the value of every rule that is a constant (x := 5,
// t := {"a": 1}): a single definition with a ground value and no body.
// OPA would otherwise evaluate each constant again on every decision
// that reads it, at a cost of a rule evaluation each; the policies read
// their settings (tables, switches, weights) as such constants. The
// evaluation cache (vcache.go) answers them, and prune.go reads them to
// find the rules that can never hold.
type constants map[constRef]*ast.Term

// findConstants collects the compiled policy's constants.
func findConstants(c *ast.Compiler) constants {
	out := constants{}
	var walk func(n *ast.TreeNode)
	walk = func(n *ast.TreeNode) {
		for _, child := range n.Children {
			walk(child)
		}
		if len(n.Values) != 1 || len(n.Children) != 0 {
			return
		}
		r := n.Values[0]
		if !isConstant(r) {
			return
		}
		if k, ok := constKey(r.Ref()); ok {
			out[k] = r.Head.Value
		}
	}
	walk(c.RuleTree)
	return out
}

// isConstant reports whether r is `name := value` with a ground value:
// no body, no else, not a default, not a function.
func isConstant(r *ast.Rule) bool {
	h := r.Head
	if r.Default || r.Else != nil || len(h.Args) > 0 || h.Value == nil || h.Key != nil ||
		h.RuleKind() != ast.SingleValue || !h.Value.IsGround() || !h.Ref().IsGround() {
		return false
	}
	if len(r.Body) != 1 || r.Body[0].Negated || len(r.Body[0].With) > 0 {
		return false
	}
	t, ok := r.Body[0].Terms.(*ast.Term)
	return ok && ast.InternedTerm(true).Equal(t)
}

// constKey converts a ref of string keys under data to a constRef.
func constKey(ref ast.Ref) (constRef, bool) {
	var k constRef
	if len(ref) > len(k) || len(ref) < 2 || !ref[0].Equal(ast.DefaultRootDocument) {
		return k, false
	}
	k[0] = "data"
	for i, t := range ref[1:] {
		s, ok := t.Value.(ast.String)
		if !ok {
			return k, false
		}
		k[i+1] = string(s)
	}
	return k, true
}
