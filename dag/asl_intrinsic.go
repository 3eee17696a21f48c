package dag

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// intrinsic is a parsed intrinsic function call: States.Name(args...).
// An argument is a literal (string, number, boolean, null), a path, or a
// nested call.
type intrinsic struct {
	name string
	args []iarg
}

type iarg struct {
	lit   any
	path  *aslPath
	call  *intrinsic
	isLit bool
}

// intrinsicArity is every supported function with its argument counts
// (min, max; -1: any).
var intrinsicArity = map[string][2]int{
	"States.Format":         {1, -1},
	"States.StringToJson":   {1, 1},
	"States.JsonToString":   {1, 1},
	"States.Array":          {0, -1},
	"States.ArrayPartition": {2, 2},
	"States.ArrayContains":  {2, 2},
	"States.ArrayRange":     {3, 3},
	"States.ArrayGetItem":   {2, 2},
	"States.ArrayLength":    {1, 1},
	"States.ArrayUnique":    {1, 1},
	"States.Base64Encode":   {1, 1},
	"States.Base64Decode":   {1, 1},
	"States.Hash":           {2, 2},
	"States.JsonMerge":      {3, 3},
	"States.MathRandom":     {2, 3},
	"States.MathAdd":        {2, 2},
	"States.StringSplit":    {2, 2},
	"States.UUID":           {0, 0},
}

// parseIntrinsic parses s, a whole intrinsic function call.
func parseIntrinsic(s string) (*intrinsic, error) {
	p := &iparser{s: s}
	fn, err := p.call()
	if err != nil {
		return nil, fmt.Errorf("intrinsic %q: %v", s, err)
	}
	p.space()
	if p.i != len(s) {
		return nil, fmt.Errorf("intrinsic %q: unexpected %q after the call", s, s[p.i:])
	}
	return fn, nil
}

type iparser struct {
	s     string
	i     int
	depth int
}

func (p *iparser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *iparser) call() (*intrinsic, error) {
	if p.depth++; p.depth > 16 {
		return nil, fmt.Errorf("calls nested deeper than 16")
	}
	defer func() { p.depth-- }()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '(' {
		p.i++
	}
	name := strings.TrimSpace(p.s[start:p.i])
	ar, ok := intrinsicArity[name]
	if !ok {
		return nil, fmt.Errorf("unknown function %q", name)
	}
	if p.i == len(p.s) {
		return nil, fmt.Errorf("%s: no (", name)
	}
	p.i++ // (
	fn := &intrinsic{name: name}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ')' {
		p.i++
	} else {
		for {
			a, err := p.arg()
			if err != nil {
				return nil, err
			}
			fn.args = append(fn.args, a)
			p.space()
			if p.i == len(p.s) {
				return nil, fmt.Errorf("%s: no closing )", name)
			}
			c := p.s[p.i]
			p.i++
			if c == ')' {
				break
			}
			if c != ',' {
				return nil, fmt.Errorf("%s: want , or ) at %q", name, p.s[p.i-1:])
			}
		}
	}
	if n := len(fn.args); n < ar[0] || ar[1] >= 0 && n > ar[1] {
		return nil, fmt.Errorf("%s takes %s arguments, not %d", name, arity(ar), n)
	}
	return fn, nil
}

func arity(ar [2]int) string {
	switch {
	case ar[1] < 0:
		return fmt.Sprintf("at least %d", ar[0])
	case ar[0] == ar[1]:
		return strconv.Itoa(ar[0])
	}
	return fmt.Sprintf("%d to %d", ar[0], ar[1])
}

func (p *iparser) arg() (iarg, error) {
	p.space()
	if p.i == len(p.s) {
		return iarg{}, fmt.Errorf("missing argument")
	}
	rest := p.s[p.i:]
	switch {
	case rest[0] == '\'':
		var b strings.Builder
		for j := 1; j < len(rest); j++ {
			switch rest[j] {
			case '\\':
				if j+1 < len(rest) {
					j++
					if strings.IndexByte(`'{}\`, rest[j]) < 0 {
						b.WriteByte('\\') // not an escape: kept, as in Step Functions
					}
					b.WriteByte(rest[j])
				}
			case '\'':
				p.i += j + 1
				return iarg{lit: b.String(), isLit: true}, nil
			default:
				b.WriteByte(rest[j])
			}
		}
		return iarg{}, fmt.Errorf("unclosed string %s", rest)
	case rest[0] == '$':
		// A path runs to the , or ) outside brackets and quotes.
		j, depth := 0, 0
		var quote byte
	scan:
		for ; j < len(rest); j++ {
			c := rest[j]
			switch {
			case quote != 0:
				if c == '\\' {
					j++
				} else if c == quote {
					quote = 0
				}
			case c == '\'' || c == '"':
				quote = c
			case c == '[' || c == '(':
				depth++
			case c == ']':
				depth--
			case c == ')':
				if depth == 0 {
					break scan
				}
				depth--
			case c == ',' && depth == 0:
				break scan
			}
		}
		ap, err := compilePath(strings.TrimSpace(rest[:j]))
		if err != nil {
			return iarg{}, err
		}
		p.i += j
		return iarg{path: ap}, nil
	case strings.HasPrefix(rest, "States."):
		fn, err := p.call()
		if err != nil {
			return iarg{}, err
		}
		return iarg{call: fn}, nil
	}
	j := 0
	for j < len(rest) && rest[j] != ',' && rest[j] != ')' && rest[j] != ' ' {
		j++
	}
	tok := rest[:j]
	p.i += j
	switch tok {
	case "true":
		return iarg{lit: true, isLit: true}, nil
	case "false":
		return iarg{lit: false, isLit: true}, nil
	case "null":
		return iarg{lit: nil, isLit: true}, nil
	}
	if _, err := strconv.ParseFloat(tok, 64); err != nil || tok == "" {
		return iarg{}, fmt.Errorf("argument %q is not a string, number, boolean, null, path or function", tok)
	}
	return iarg{lit: json.Number(tok), isLit: true}, nil
}

func (fn *intrinsic) usesCx() bool {
	for _, a := range fn.args {
		if a.path != nil && a.path.ctx || a.call != nil && a.call.usesCx() {
			return true
		}
	}
	return false
}

// errIntrinsic marks a failure of an intrinsic function at run time
// (States.IntrinsicFailure).
type errIntrinsic struct{ msg string }

func (e *errIntrinsic) Error() string { return e.msg }

func (fn *intrinsic) fail(format string, args ...any) error {
	return &errIntrinsic{msg: fn.name + ": " + fmt.Sprintf(format, args...)}
}

// eval runs the function on data and the context object.
func (fn *intrinsic) eval(data, ctxObj any) (any, error) {
	args := make([]any, len(fn.args))
	for i, a := range fn.args {
		switch {
		case a.isLit:
			args[i] = a.lit
		case a.path != nil:
			v, err := a.path.get(data, ctxObj)
			if err != nil {
				return nil, fn.fail("%v", err)
			}
			args[i] = v
		default:
			v, err := a.call.eval(data, ctxObj)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
	}
	str := func(i int) (string, error) {
		s, ok := args[i].(string)
		if !ok {
			return "", fn.fail("argument %d is %s, not a string", i+1, jsonType(args[i]))
		}
		return s, nil
	}
	arr := func(i int) ([]any, error) {
		a, ok := args[i].([]any)
		if !ok {
			return nil, fn.fail("argument %d is %s, not an array", i+1, jsonType(args[i]))
		}
		return a, nil
	}
	integer := func(i int) (int64, error) {
		f, ok := number(args[i])
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, fn.fail("argument %d is not an integer", i+1)
		}
		return int64(f), nil
	}
	switch fn.name {
	case "States.Format":
		f, err := str(0)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		next := 1
		for i := 0; i < len(f); i++ {
			switch {
			case f[i] == '\\' && i+1 < len(f):
				i++
				b.WriteByte(f[i])
			case f[i] == '{' && i+1 < len(f) && f[i+1] == '}':
				if next >= len(args) {
					return nil, fn.fail("more {} than arguments")
				}
				switch v := args[next].(type) {
				case string:
					b.WriteString(v)
				case map[string]any, []any:
					return nil, fn.fail("argument %d is %s: only strings, numbers, booleans and null format", next+1, jsonType(v))
				default:
					s, _ := json.Marshal(v)
					b.Write(s)
				}
				next++
				i++
			default:
				b.WriteByte(f[i])
			}
		}
		if next != len(args) {
			return nil, fn.fail("%d arguments for %d {}", len(args)-1, next-1)
		}
		return b.String(), nil
	case "States.StringToJson":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		v, err := decode([]byte(s))
		if err != nil {
			return nil, fn.fail("not JSON: %v", err)
		}
		return v, nil
	case "States.JsonToString":
		b, err := json.Marshal(args[0])
		if err != nil {
			return nil, fn.fail("%v", err)
		}
		return string(b), nil
	case "States.Array":
		return args, nil
	case "States.ArrayPartition":
		a, err := arr(0)
		if err != nil {
			return nil, err
		}
		n, err := integer(1)
		if err != nil || n < 1 {
			return nil, fn.fail("the chunk size must be a positive integer")
		}
		out := []any{}
		for i := 0; i < len(a); i += int(n) {
			out = append(out, slices.Clone(a[i:min(len(a), i+int(n))]))
		}
		return out, nil
	case "States.ArrayContains":
		a, err := arr(0)
		if err != nil {
			return nil, err
		}
		for _, e := range a {
			if jsonEqual(e, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case "States.ArrayRange":
		lo, err1 := integer(0)
		hi, err2 := integer(1)
		step, err3 := integer(2)
		if err1 != nil || err2 != nil || err3 != nil || step == 0 {
			return nil, fn.fail("start, end and a non-zero step must be integers")
		}
		out := []any{}
		for v := lo; step > 0 && v <= hi || step < 0 && v >= hi; v += step {
			if len(out) == 1000 {
				return nil, fn.fail("more than 1000 items")
			}
			out = append(out, json.Number(strconv.FormatInt(v, 10)))
		}
		return out, nil
	case "States.ArrayGetItem":
		a, err := arr(0)
		if err != nil {
			return nil, err
		}
		i, err := integer(1)
		if err != nil || i < 0 || int(i) >= len(a) {
			return nil, fn.fail("index out of the array's %d items", len(a))
		}
		return a[i], nil
	case "States.ArrayLength":
		a, err := arr(0)
		if err != nil {
			return nil, err
		}
		return json.Number(strconv.Itoa(len(a))), nil
	case "States.ArrayUnique":
		a, err := arr(0)
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, e := range a {
			if !slices.ContainsFunc(out, func(o any) bool { return jsonEqual(o, e) }) {
				out = append(out, e)
			}
		}
		return out, nil
	case "States.Base64Encode":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "States.Base64Decode":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fn.fail("%v", err)
		}
		return string(b), nil
	case "States.Hash":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		alg, err := str(1)
		if err != nil {
			return nil, err
		}
		var h hash.Hash
		switch alg {
		case "MD5":
			h = md5.New()
		case "SHA-1":
			h = sha1.New()
		case "SHA-256":
			h = sha256.New()
		case "SHA-384":
			h = sha512.New384()
		case "SHA-512":
			h = sha512.New()
		default:
			return nil, fn.fail("algorithm %q: want MD5, SHA-1, SHA-256, SHA-384 or SHA-512", alg)
		}
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil)), nil
	case "States.JsonMerge":
		a, ok1 := args[0].(map[string]any)
		b, ok2 := args[1].(map[string]any)
		if !ok1 || !ok2 {
			return nil, fn.fail("merges two objects")
		}
		if deep, _ := args[2].(bool); deep {
			return nil, fn.fail("only the shallow merge (false) is supported, as in Step Functions")
		}
		out := make(map[string]any, len(a)+len(b))
		for k, v := range a {
			out[k] = v
		}
		for k, v := range b {
			out[k] = v
		}
		return out, nil
	case "States.MathRandom":
		lo, err1 := integer(0)
		hi, err2 := integer(1)
		if err1 != nil || err2 != nil || hi < lo {
			return nil, fn.fail("start and end must be integers, start <= end")
		}
		var r *rand.Rand
		if len(args) == 3 {
			seed, err := integer(2)
			if err != nil {
				return nil, err
			}
			r = rand.New(rand.NewPCG(uint64(seed), 0))
		} else {
			r = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		return json.Number(strconv.FormatInt(lo+r.Int64N(hi-lo+1), 10)), nil
	case "States.MathAdd":
		a, err1 := integer(0)
		b, err2 := integer(1)
		if err1 != nil || err2 != nil {
			return nil, fn.fail("adds two integers")
		}
		return json.Number(strconv.FormatInt(a+b, 10)), nil
	case "States.StringSplit":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		sep, err := str(1)
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(sep, r) }) {
			out = append(out, f)
		}
		return out, nil
	case "States.UUID":
		return uuid.NewString(), nil
	}
	return nil, fn.fail("unknown function")
}

// jsonEqual compares two decoded JSON values, numbers by value.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(normalize(a))
	y, _ := json.Marshal(normalize(b))
	return string(x) == string(y)
}
