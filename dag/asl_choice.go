package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// choiceRule is one rule of a Choice state: a comparison of the value
// Variable selects, or And/Or/Not of rules. Top-level rules have Next.
type choiceRule struct {
	next string

	and, or []*choiceRule
	not     *choiceRule

	variable *aslPath
	op       string // the comparison operator, without "Path"
	byPath   bool   // the operand is a path (e.g. NumericEqualsPath)
	operand  any
	opPath   *aslPath
}

// comparisons are the ASL comparison operators, each with the type of its
// operand: "string", "number", "boolean", "timestamp", "pattern" or
// "test" (IsNull and the like, whose operand is a boolean).
var comparisons = map[string]string{
	"StringEquals": "string", "StringLessThan": "string", "StringGreaterThan": "string",
	"StringLessThanEquals": "string", "StringGreaterThanEquals": "string", "StringMatches": "pattern",
	"NumericEquals": "number", "NumericLessThan": "number", "NumericGreaterThan": "number",
	"NumericLessThanEquals": "number", "NumericGreaterThanEquals": "number",
	"BooleanEquals":   "boolean",
	"TimestampEquals": "timestamp", "TimestampLessThan": "timestamp", "TimestampGreaterThan": "timestamp",
	"TimestampLessThanEquals": "timestamp", "TimestampGreaterThanEquals": "timestamp",
	"IsNull": "test", "IsPresent": "test", "IsNumeric": "test", "IsString": "test", "IsBoolean": "test", "IsTimestamp": "test",
}

// compileRule compiles one rule; top says whether it is a Choices entry
// (which has Next) or nested in And/Or/Not (which has none).
func compileRule(raw json.RawMessage, top bool) (*choiceRule, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, errors.New("a rule must be an object")
	}
	r := &choiceRule{}
	if top {
		if err := json.Unmarshal(m["Next"], &r.next); err != nil || r.next == "" {
			return nil, errors.New("a rule needs Next, a state name")
		}
	} else if _, ok := m["Next"]; ok {
		return nil, errors.New("a rule inside And, Or or Not has no Next")
	}
	delete(m, "Next")
	delete(m, "Comment")
	if _, ok := m["Condition"]; ok {
		return nil, errors.New("the Condition field is JSONata, which sequoia does not run; use Variable and a comparison")
	}
	for _, key := range []string{"And", "Or"} {
		sub, ok := m[key]
		if !ok {
			continue
		}
		if len(m) != 1 {
			return nil, fmt.Errorf("an %s stands alone in its rule", key)
		}
		var list []json.RawMessage
		if err := json.Unmarshal(sub, &list); err != nil || len(list) == 0 {
			return nil, fmt.Errorf("an %s takes a non-empty array of rules", key)
		}
		for i, s := range list {
			c, err := compileRule(s, false)
			if err != nil {
				return nil, fmt.Errorf("%s[%d]: %v", key, i, err)
			}
			if key == "And" {
				r.and = append(r.and, c)
			} else {
				r.or = append(r.or, c)
			}
		}
		return r, nil
	}
	if sub, ok := m["Not"]; ok {
		if len(m) != 1 {
			return nil, errors.New("a Not stands alone in its rule")
		}
		c, err := compileRule(sub, false)
		if err != nil {
			return nil, fmt.Errorf("in Not: %v", err)
		}
		r.not = c
		return r, nil
	}
	var variable string
	if err := json.Unmarshal(m["Variable"], &variable); err != nil || variable == "" {
		return nil, errors.New("a comparison needs Variable, a path")
	}
	var err error
	if r.variable, err = compilePath(variable); err != nil {
		return nil, fmt.Errorf("in Variable: %v", err)
	}
	delete(m, "Variable")
	if len(m) != 1 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		return nil, fmt.Errorf("a comparison has exactly one operator, not %q", keys)
	}
	for k, v := range m {
		op, byPath := strings.CutSuffix(k, "Path")
		typ, ok := comparisons[op]
		if !ok || byPath && typ == "test" || byPath && typ == "pattern" {
			return nil, fmt.Errorf("unknown comparison operator %q", k)
		}
		r.op, r.byPath = op, byPath
		if byPath {
			var p string
			if err := json.Unmarshal(v, &p); err != nil {
				return nil, fmt.Errorf("%s takes a path", k)
			}
			if r.opPath, err = compilePath(p); err != nil {
				return nil, fmt.Errorf("%s: %v", k, err)
			}
			continue
		}
		val, err := decode(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
		if !operandOK(typ, val) {
			return nil, fmt.Errorf("%s compares with %s, not %s", k, typeWord(typ), jsonType(val))
		}
		r.operand = val
	}
	return r, nil
}

func typeWord(typ string) string {
	switch typ {
	case "test", "boolean":
		return "a boolean"
	case "number":
		return "a number"
	case "timestamp":
		return "an RFC 3339 timestamp"
	}
	return "a string"
}

func operandOK(typ string, v any) bool {
	switch typ {
	case "string", "pattern":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := number(v)
		return ok
	case "boolean", "test":
		_, ok := v.(bool)
		return ok
	case "timestamp":
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	}
	return false
}

// targets lists the states the rule leads to.
func (r *choiceRule) usesCx() bool {
	if r.variable != nil && r.variable.ctx || r.opPath != nil && r.opPath.ctx {
		return true
	}
	for _, c := range append(append([]*choiceRule(nil), r.and...), r.or...) {
		if c.usesCx() {
			return true
		}
	}
	return r.not != nil && r.not.usesCx()
}

// errChoicePath is a rule whose Variable selects nothing (States.Runtime,
// as in Step Functions).
type errChoicePath struct{ path string }

func (e *errChoicePath) Error() string {
	return fmt.Sprintf("invalid path %q: the choice state's condition path references an invalid value", e.path)
}

// holds evaluates the rule on the choice's input.
func (r *choiceRule) holds(data, ctxObj any) (bool, error) {
	switch {
	case r.and != nil:
		for _, c := range r.and {
			if ok, err := c.holds(data, ctxObj); err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case r.or != nil:
		for _, c := range r.or {
			if ok, err := c.holds(data, ctxObj); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case r.not != nil:
		ok, err := r.not.holds(data, ctxObj)
		return !ok, err
	}
	got, err := r.variable.get(data, ctxObj)
	present := err == nil
	if r.op == "IsPresent" {
		return present == r.operand.(bool), nil
	}
	if !present {
		return false, &errChoicePath{path: r.variable.src}
	}
	want := r.operand
	if r.byPath {
		if want, err = r.opPath.get(data, ctxObj); err != nil {
			return false, &errChoicePath{path: r.opPath.src}
		}
	}
	switch comparisons[r.op] {
	case "test":
		var is bool
		switch r.op {
		case "IsNull":
			is = got == nil
		case "IsNumeric":
			_, is = number(got)
		case "IsString":
			_, is = got.(string)
		case "IsBoolean":
			_, is = got.(bool)
		case "IsTimestamp":
			s, ok := got.(string)
			if ok {
				_, err := time.Parse(time.RFC3339Nano, s)
				is = err == nil
			}
		}
		return is == want.(bool), nil
	case "string":
		a, ok1 := got.(string)
		b, ok2 := want.(string)
		return ok1 && ok2 && relation(r.op, strings.Compare(a, b)), nil
	case "pattern":
		a, ok1 := got.(string)
		b, ok2 := want.(string)
		return ok1 && ok2 && matchWildcard(b, a), nil
	case "number":
		a, ok1 := number(got)
		b, ok2 := number(want)
		return ok1 && ok2 && relation(r.op, cmpFloat(a, b)), nil
	case "boolean":
		a, ok1 := got.(bool)
		b, ok2 := want.(bool)
		return ok1 && ok2 && a == b, nil
	case "timestamp":
		a, ok1 := got.(string)
		b, ok2 := want.(string)
		if !ok1 || !ok2 {
			return false, nil
		}
		ta, err1 := time.Parse(time.RFC3339Nano, a)
		tb, err2 := time.Parse(time.RFC3339Nano, b)
		return err1 == nil && err2 == nil && relation(r.op, ta.Compare(tb)), nil
	}
	return false, nil
}

// relation applies the comparison op names (…Equals, …LessThan, …) to c.
func relation(op string, c int) bool {
	switch {
	case strings.HasSuffix(op, "LessThanEquals"):
		return c <= 0
	case strings.HasSuffix(op, "GreaterThanEquals"):
		return c >= 0
	case strings.HasSuffix(op, "LessThan"):
		return c < 0
	case strings.HasSuffix(op, "GreaterThan"):
		return c > 0
	}
	return c == 0
}

// matchWildcard is StringMatches: '*' matches any run of characters, "\*"
// a star and "\\" a backslash.
func matchWildcard(pattern, s string) bool {
	type tok struct {
		lit  string
		star bool
	}
	var toks []tok
	var lit strings.Builder
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern):
			i++
			lit.WriteByte(pattern[i])
		case c == '*':
			toks = append(toks, tok{lit: lit.String()}, tok{star: true})
			lit.Reset()
		default:
			lit.WriteByte(c)
		}
	}
	toks = append(toks, tok{lit: lit.String()})
	// Literals between stars: the first is a prefix, the last a suffix,
	// and each in between matches leftmost (enough with '*' alone).
	var lits []string
	for _, t := range toks {
		if !t.star {
			lits = append(lits, t.lit)
		}
	}
	if len(lits) == 1 {
		return s == lits[0]
	}
	rest, ok := strings.CutPrefix(s, lits[0])
	if !ok {
		return false
	}
	last := lits[len(lits)-1]
	if len(rest) < len(last) || !strings.HasSuffix(rest, last) {
		return false
	}
	rest = rest[:len(rest)-len(last)]
	for _, l := range lits[1 : len(lits)-1] {
		i := strings.Index(rest, l)
		if i < 0 {
			return false
		}
		rest = rest[i+len(l):]
	}
	return true
}
