package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// selector picks a value out of a JSON document: the compiled form of a
// JSON pointer or a small JSON path. The zero selector picks the whole.
type selector struct {
	src  string
	toks []token
}

// token is one step: an object member, or an array index when index >= 0
// (a pointer's numeric token may be either; path form decides).
type token struct {
	key   string
	index int // -1: key only
	keyOK bool
}

// compileSelector accepts "" and "$" (the whole input), an RFC 6901 JSON
// pointer ("/a/0/b", "~0" for '~' and "~1" for '/'), or a JSON path of
// member and index steps ("$.a[0].b", "$['a b'][2]").
func compileSelector(s string) (selector, error) {
	sel := selector{src: s}
	switch {
	case s == "" || s == "$":
		return sel, nil
	case s[0] == '/':
		for _, raw := range strings.Split(s[1:], "/") {
			key := strings.ReplaceAll(strings.ReplaceAll(raw, "~1", "/"), "~0", "~")
			t := token{key: key, index: -1, keyOK: true}
			if n, err := strconv.Atoi(raw); err == nil && n >= 0 && (raw == "0" || raw[0] != '0') {
				t.index = n
			}
			sel.toks = append(sel.toks, t)
		}
		return sel, nil
	case s[0] == '$':
		rest := s[1:]
		for rest != "" {
			switch rest[0] {
			case '.':
				rest = rest[1:]
				end := strings.IndexAny(rest, ".[")
				if end < 0 {
					end = len(rest)
				}
				if end == 0 {
					return sel, fmt.Errorf("%q: empty member name", s)
				}
				sel.toks = append(sel.toks, token{key: rest[:end], index: -1, keyOK: true})
				rest = rest[end:]
			case '[':
				end := strings.IndexByte(rest, ']')
				if end < 0 {
					return sel, fmt.Errorf("%q: unclosed [", s)
				}
				in := rest[1:end]
				rest = rest[end+1:]
				if len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0] {
					sel.toks = append(sel.toks, token{key: in[1 : len(in)-1], index: -1, keyOK: true})
					continue
				}
				n, err := strconv.Atoi(in)
				if err != nil || n < 0 {
					return sel, fmt.Errorf("%q: [%s] is neither an index nor a quoted name", s, in)
				}
				sel.toks = append(sel.toks, token{index: n})
			default:
				return sel, fmt.Errorf("%q: want . or [ after $ or a step", s)
			}
		}
		return sel, nil
	}
	return sel, errors.New("want a JSON pointer (/a/0) or a JSON path ($.a[0])")
}

// pick returns the value sel selects in v, and whether there is one.
func (sel selector) pick(v any) (any, bool) {
	for _, t := range sel.toks {
		switch x := v.(type) {
		case map[string]any:
			if !t.keyOK {
				return nil, false
			}
			var ok bool
			if v, ok = x[t.key]; !ok {
				return nil, false
			}
		case []any:
			if t.index < 0 || t.index >= len(x) {
				return nil, false
			}
			v = x[t.index]
		default:
			return nil, false
		}
	}
	return v, true
}

// whole reports whether sel selects the whole input.
func (sel selector) whole() bool { return len(sel.toks) == 0 }

// decode reads a JSON document, keeping numbers as written.
func decode(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// number reads a JSON number decoded by decode or json.Unmarshal.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	}
	return 0, false
}

// holds evaluates r on the choice's input v.
func (r *Rule) holds(v any) bool {
	got, ok := r.sel.pick(v)
	switch r.Op {
	case "exists":
		return ok
	case "missing":
		return !ok
	}
	if !ok {
		return r.Op == "ne"
	}
	if a, isNum := number(got); isNum {
		if b, ok := number(r.value); ok {
			return compare(r.Op, cmpFloat(a, b))
		}
		return r.Op == "ne"
	}
	if a, isStr := got.(string); isStr {
		if b, ok := r.value.(string); ok {
			return compare(r.Op, strings.Compare(a, b))
		}
		return r.Op == "ne"
	}
	// Booleans, null, arrays and objects: equality of their JSON.
	if r.Op != "eq" && r.Op != "ne" {
		return false
	}
	ga, _ := json.Marshal(normalize(got))
	gb, _ := json.Marshal(r.value)
	return (string(ga) == string(gb)) == (r.Op == "eq")
}

// normalize turns json.Numbers into float64s, for comparing JSON texts.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compare(op string, c int) bool {
	switch op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	}
	return false
}
