package policy

import (
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// maxShown bounds a value shown in a failing test's report.
const maxShown = 400

// failure explains a failed Rego test from its evaluation trace: where it
// failed (the test's own expression, as written), the input it gave, and
// what was expected against what came out.
func failure(r *tester.Result) Problem {
	p := Problem{Test: r.Package + "." + r.Name, Message: "test " + r.Package + "." + r.Name + " failed"}
	if r.Location != nil {
		p.File, p.Line = r.Location.File, r.Location.Row
	}
	// The test rule's body is the query its Enter event opens.
	q := uint64(0)
	found := false
	for _, e := range r.Trace {
		if rule, ok := e.Node.(*ast.Rule); ok && e.Op == topdown.EnterOp && r.Location != nil && rule.Location != nil &&
			rule.Location.File == r.Location.File && rule.Location.Row == r.Location.Row {
			q, found = e.QueryID, true
			break
		}
	}
	if !found {
		return p
	}
	// The failing expression is the last one of that body to fail.
	fail := -1
	for i, e := range r.Trace {
		if _, ok := e.Node.(*ast.Expr); ok && e.Op == topdown.FailOp && e.QueryID == q {
			fail = i
		}
	}
	if fail < 0 {
		return p
	}
	ev := r.Trace[fail]
	expr := ev.Node.(*ast.Expr)
	if expr.Location != nil {
		p.File, p.Line = expr.Location.File, expr.Location.Row
		p.Message += ": " + oneLine(string(expr.Location.Text))
	}
	if in := inputOf(r.Trace[:fail+1], q); in != "" {
		p.Details = append(p.Details, "input:    "+in)
	}
	p.Details = append(p.Details, compared(r.Trace[:fail], q, ev, expr)...)
	return p
}

// inputOf is the input the test gave by the failing expression: the `with
// input as` of the last expression of query q evaluated so far.
func inputOf(trace []*topdown.Event, q uint64) string {
	for i := len(trace) - 1; i >= 0; i-- {
		e := trace[i]
		expr, ok := e.Node.(*ast.Expr)
		if !ok || e.QueryID != q || e.Op != topdown.EvalOp && e.Op != topdown.FailOp {
			continue
		}
		for _, w := range expr.With {
			if ref, ok := w.Target.Value.(ast.Ref); ok && ref.Equal(ast.InputRootRef) {
				return shown(plug(e, w.Value))
			}
		}
	}
	return ""
}

// compared reports what the failing expression compared: expected against
// actual where the test wrote one side as a constant, else each side.
func compared(trace []*topdown.Event, q uint64, ev *topdown.Event, expr *ast.Expr) []string {
	// The last unification of the expression in the body holds both sides
	// evaluated, when both had a value.
	unified := func(query uint64, parent bool) *topdown.Event {
		for i := len(trace) - 1; i >= 0; i-- {
			e := trace[i]
			if _, ok := e.Node.(*ast.Expr); !ok || e.Op != topdown.UnifyOp || !sameLocation(e.Location, ev.Location) {
				continue
			}
			if parent && e.ParentID == query || !parent && e.QueryID == query {
				return e
			}
		}
		return nil
	}
	switch {
	case expr.Negated:
		// `not X`: X held. Its value is what X unified with in the
		// nested query.
		actual := "defined"
		if u := unified(q, true); u != nil {
			if x := u.Node.(*ast.Expr); x.IsEquality() {
				actual = shown(plug(u, x.Operand(0)))
			}
		}
		return []string{"expected: undefined or false", "actual:   " + actual}
	case expr.IsEquality():
		a, b := expr.Operand(0), expr.Operand(1)
		// The failure's own locals may hold both sides; else both sides'
		// values are in the first unification after the expression's last
		// evaluation that has them (later ones may unify parts of objects
		// or arrays).
		var left, right *ast.Term
		l, r := plug(ev, a), plug(ev, b)
		plugged := ast.IsConstant(l.Value) && ast.IsConstant(r.Value)
		if plugged {
			left, right = l, r
		}
		for i := len(trace) - 1; i >= 0 && !plugged; i-- {
			e := trace[i]
			if !sameLocation(e.Location, ev.Location) || e.QueryID != q {
				continue
			}
			if e.Op == topdown.EvalOp {
				break
			}
			if x, ok := e.Node.(*ast.Expr); ok && e.Op == topdown.UnifyOp && x.IsEquality() {
				l, r := plug(e, x.Operand(0)), plug(e, x.Operand(1))
				if ast.IsConstant(l.Value) && ast.IsConstant(r.Value) {
					left, right = l, r
				}
			}
		}
		var expected *ast.Term
		switch {
		case ast.IsConstant(b.Value) && !ast.IsConstant(a.Value):
			expected = b
		case ast.IsConstant(a.Value) && !ast.IsConstant(b.Value):
			expected = a
		}
		if expected == nil {
			lv, rv := "undefined", "undefined"
			if left != nil {
				lv, rv = shown(left), shown(right)
			}
			return []string{"left:     " + lv, "right:    " + rv}
		}
		actual := "undefined"
		switch {
		case left == nil:
		case left.Equal(expected):
			actual = shown(right)
		default:
			actual = shown(left)
		}
		return []string{"expected: " + shown(expected), "actual:   " + actual}
	case expr.IsCall():
		var out []string
		for i, t := range expr.Operands() {
			v := "undefined"
			if pt := plug(ev, t); ast.IsConstant(pt.Value) {
				v = shown(pt)
			}
			out = append(out, "argument "+strconv.Itoa(i+1)+": "+v)
		}
		return out
	}
	if t, ok := expr.Terms.(*ast.Term); ok {
		v := "undefined"
		if pt := plug(ev, t); ast.IsConstant(pt.Value) {
			v = shown(pt)
		}
		return []string{"expected: true", "actual:   " + v}
	}
	return nil
}

// plug replaces the variables of t by the values they had when e was
// traced (the bindings themselves are undone by the time a test's trace is
// read).
func plug(e *topdown.Event, t *ast.Term) *ast.Term {
	if e.Locals == nil {
		return t
	}
	out := t.Value
	for range 8 { // a local's value may name other locals
		// Transform rewrites terms in place: work on a copy, never on
		// the trace's terms, the compiled policy's or OPA's interned
		// ones, which other evaluations share.
		next, err := ast.TransformVars(ast.NewTerm(out).Copy().Value, func(v ast.Var) (ast.Value, error) {
			if x := e.Locals.Get(v); x != nil {
				return ast.NewTerm(x).Copy().Value, nil
			}
			return v, nil
		})
		nv, ok := next.(ast.Value)
		if err != nil || !ok {
			break
		}
		if nv.Compare(out) == 0 {
			break
		}
		out = nv
	}
	return ast.NewTerm(out)
}

// sameLocation reports whether a and b are the same place in the same file
// (their texts may differ: a unification's location spans less).
func sameLocation(a, b *ast.Location) bool {
	return a != nil && b != nil && a.File == b.File && a.Row == b.Row && a.Col == b.Col
}

// shown renders a value on one line, bounded.
func shown(t *ast.Term) string {
	s := oneLine(t.String())
	if len(s) > maxShown {
		s = s[:maxShown] + "…"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
