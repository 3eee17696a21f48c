package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"
)

// aslPath is a compiled ASL path: an RFC 9535 JSONPath over the state's
// data ("$...") or over the context object ("$$..."). A singular path
// (names and indexes only) selects one value; any other (wildcards,
// slices, filters, "..") selects the array of what it matches, as Step
// Functions does.
type aslPath struct {
	src    string
	ctx    bool // $$: the context object
	p      *jsonpath.Path
	single bool
	ref    []refStep // the steps of a singular path
}

// refStep is one step of a reference path: a member name or an index.
type refStep struct {
	name  string
	index int // -1: a name
}

// compilePath compiles an ASL path. Member names in dot notation may hold
// characters RFC 9535 keeps for brackets ("$.ship-date"), as ASL allows.
func compilePath(s string) (*aslPath, error) {
	ap := &aslPath{src: s}
	q := s
	if strings.HasPrefix(q, "$$") {
		ap.ctx, q = true, q[1:]
	}
	if !strings.HasPrefix(q, "$") {
		return nil, fmt.Errorf("path %q must start with $ (or $$ for the context object)", s)
	}
	p, err := jsonpath.Parse(bracketNames(q))
	if err != nil {
		return nil, fmt.Errorf("path %q: %v", s, strings.TrimPrefix(err.Error(), "jsonpath: "))
	}
	ap.p = p
	ap.single = p.Query().Singular() != nil
	if ap.single {
		for _, seg := range p.Query().Segments() {
			for _, sel := range seg.Selectors() {
				switch v := sel.(type) {
				case spec.Name:
					ap.ref = append(ap.ref, refStep{name: string(v), index: -1})
				case spec.Index:
					if v < 0 {
						ap.single = false // counts from the end: not a reference path
						ap.ref = nil
						return ap, nil
					}
					ap.ref = append(ap.ref, refStep{index: int(v)})
				}
			}
		}
	}
	return ap, nil
}

// compileRefPath compiles a reference path (ResultPath): one that names a
// single place, by member names and indexes only.
func compileRefPath(s string) (*aslPath, error) {
	ap, err := compilePath(s)
	if err != nil {
		return nil, err
	}
	if ap.ctx {
		return nil, fmt.Errorf("%q: a reference path cannot name the context object", s)
	}
	if !ap.single {
		return nil, fmt.Errorf("%q is not a reference path: only member names and non-negative indexes, no wildcard, slice, filter or descendant (..)", s)
	}
	return ap, nil
}

// bracketNames rewrites ".name" steps whose name RFC 9535's shorthand does
// not allow (a '-', a leading digit) as "['name']", outside string
// literals.
func bracketNames(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(s))
			b.WriteString(s[i:j])
			i = j
		case c == '.' && i+1 < len(s) && s[i+1] != '.' && s[i+1] != '[' && s[i+1] != '*':
			j := i + 1
			for j < len(s) && !strings.ContainsRune(".[]()'\" =<>!&|,", rune(s[j])) {
				j++
			}
			name := s[i+1 : j]
			if shorthand(name) {
				b.WriteString(s[i:j])
			} else {
				b.WriteString("['")
				b.WriteString(strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), `'`, `\'`))
				b.WriteString("']")
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func shorthand(name string) bool {
	if name == "" {
		return true // let the parser name the problem
	}
	for i, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80 || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// errNoMatch is a singular path that selects nothing.
var errNoMatch = errors.New("selects nothing")

// get selects from data (or, for $$, from the context object).
func (ap *aslPath) get(data, ctxObj any) (any, error) {
	src := data
	if ap.ctx {
		src = ctxObj
	}
	got := ap.p.Select(src)
	if ap.single {
		if len(got) == 0 {
			return nil, fmt.Errorf("path %q %w", ap.src, errNoMatch)
		}
		return got[0], nil
	}
	return []any(got), nil
}

// set returns root with v at ap's place: the objects and arrays on the
// way are copied (the input may be shared with other branches), missing
// objects are created.
func (ap *aslPath) set(root, v any) (any, error) {
	return setRef(root, ap.ref, v, ap.src)
}

func setRef(cur any, steps []refStep, v any, src string) (any, error) {
	if len(steps) == 0 {
		return v, nil
	}
	s := steps[0]
	if s.index < 0 {
		var m map[string]any
		switch x := cur.(type) {
		case map[string]any:
			m = make(map[string]any, len(x)+1)
			for k, e := range x {
				m[k] = e
			}
		case nil:
			m = map[string]any{}
		default:
			return nil, fmt.Errorf("%q: cannot set member %q of %s", src, s.name, jsonType(cur))
		}
		nv, err := setRef(m[s.name], steps[1:], v, src)
		if err != nil {
			return nil, err
		}
		m[s.name] = nv
		return m, nil
	}
	arr, ok := cur.([]any)
	if !ok || s.index >= len(arr) {
		return nil, fmt.Errorf("%q: index %d is not in %s", src, s.index, jsonType(cur))
	}
	c := append([]any(nil), arr...)
	nv, err := setRef(c[s.index], steps[1:], v, src)
	if err != nil {
		return nil, err
	}
	c[s.index] = nv
	return c, nil
}

// tmpl is a compiled payload template (Parameters, ResultSelector,
// ItemSelector, BatchInput, a Pass state's Result): static JSON in which
// a member whose name ends in ".$" takes the value of a path or an
// intrinsic function.
type tmpl struct {
	static any // a value with nothing to evaluate
	keys   []string
	vals   []*tmpl // an object's members
	elems  []*tmpl // an array's
	isObj  bool
	isArr  bool
	path   *aslPath
	fn     *intrinsic
	usesCx bool // reads the context object somewhere
}

// compileTmpl compiles a template from its JSON.
func compileTmpl(raw json.RawMessage) (*tmpl, error) {
	v, err := decode(raw)
	if err != nil {
		return nil, err
	}
	return compileTmplValue(v)
}

func compileTmplValue(v any) (*tmpl, error) {
	switch x := v.(type) {
	case map[string]any:
		t := &tmpl{isObj: true}
		dynamic := false
		for k, e := range x {
			if name, ok := strings.CutSuffix(k, ".$"); ok {
				s, isStr := e.(string)
				if !isStr {
					return nil, fmt.Errorf("%q: a member ending in .$ takes a path or an intrinsic function, not %s", k, jsonType(e))
				}
				d, err := compileDynamic(s)
				if err != nil {
					return nil, fmt.Errorf("%q: %v", k, err)
				}
				if _, dup := x[name]; dup {
					return nil, fmt.Errorf("%q and %q both name %q", k, name, name)
				}
				t.keys, t.vals = append(t.keys, name), append(t.vals, d)
				t.usesCx = t.usesCx || d.usesCx
				dynamic = true
				continue
			}
			c, err := compileTmplValue(e)
			if err != nil {
				return nil, fmt.Errorf("%q: %v", k, err)
			}
			dynamic = dynamic || c.static == nil && (c.isObj || c.isArr || c.path != nil || c.fn != nil)
			t.keys, t.vals = append(t.keys, k), append(t.vals, c)
			t.usesCx = t.usesCx || c.usesCx
		}
		if !dynamic {
			return &tmpl{static: v}, nil
		}
		return t, nil
	case []any:
		t := &tmpl{isArr: true}
		dynamic := false
		for i, e := range x {
			c, err := compileTmplValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %v", i, err)
			}
			dynamic = dynamic || c.static == nil && (c.isObj || c.isArr || c.path != nil || c.fn != nil)
			t.elems = append(t.elems, c)
			t.usesCx = t.usesCx || c.usesCx
		}
		if !dynamic {
			return &tmpl{static: v}, nil
		}
		return t, nil
	}
	if v == nil {
		return &tmpl{static: jsonNull{}}, nil
	}
	return &tmpl{static: v}, nil
}

// jsonNull stands for a static null in a template (a nil static means
// "not static").
type jsonNull struct{}

func compileDynamic(s string) (*tmpl, error) {
	if strings.HasPrefix(s, "States.") {
		fn, err := parseIntrinsic(s)
		if err != nil {
			return nil, err
		}
		return &tmpl{fn: fn, usesCx: fn.usesCx()}, nil
	}
	p, err := compilePath(s)
	if err != nil {
		return nil, err
	}
	return &tmpl{path: p, usesCx: p.ctx}, nil
}

// eval builds the template's value from data and the context object.
func (t *tmpl) eval(data, ctxObj any) (any, error) {
	switch {
	case t.static != nil:
		if _, null := t.static.(jsonNull); null {
			return nil, nil
		}
		return t.static, nil
	case t.path != nil:
		return t.path.get(data, ctxObj)
	case t.fn != nil:
		return t.fn.eval(data, ctxObj)
	case t.isObj:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			v, err := t.vals[i].eval(data, ctxObj)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case t.isArr:
		a := make([]any, len(t.elems))
		for i, e := range t.elems {
			v, err := e.eval(data, ctxObj)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	}
	return nil, nil
}
