package fnmap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Target is a function as the overflow platform names it.
type Target struct {
	Kind invocation.Platform
	// Namespace and Package are OpenWhisk's; Namespace is "_" (the API
	// key's own) unless the mapping gave one.
	Namespace, Package string
	// Name is the action, the Lambda function or the http service.
	Name string
	// Qualifier is Lambda's version or alias; "" for none.
	Qualifier string
}

// String writes t the way SEQUOIA_OVERFLOW_FUNCTIONS does.
func (t Target) String() string {
	switch t.Kind {
	case invocation.OpenWhisk:
		s := "/" + t.Namespace + "/"
		if t.Package != "" {
			s += t.Package + "/"
		}
		return s + t.Name
	case invocation.Lambda:
		if t.Qualifier != "" {
			return t.Name + ":" + t.Qualifier
		}
	}
	return t.Name
}

// Resolver names the overflow platform's function for each of the
// primary's. Safe for concurrent use: it is read-only once built.
type Resolver struct {
	from, to invocation.Platform
	host     bool // http services are named by Host: DNS labels only
	explicit map[string]Target
}

// New parses spec, the value of SEQUOIA_OVERFLOW_FUNCTIONS: entries
// "primary=overflow" separated by commas. A primary name is the function
// as sequoia names it for the primary's API (OpenWhisk "ns/[pkg/]action",
// Lambda "name" or "name:qualifier", http "service"); an overflow name is
// as the overflow's API names it (OpenWhisk "action", "pkg/action",
// "/ns/action" or "/ns/pkg/action"; Lambda "name" or "name:qualifier";
// http "service"). host says that http services are reached by Host, so
// their names must be DNS labels.
func New(spec string, from, to invocation.Platform, host bool) (*Resolver, error) {
	r := &Resolver{from: from, to: to, host: host, explicit: map[string]Target{}}
	if strings.TrimSpace(spec) == "" {
		return r, nil
	}
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		k, v, ok := strings.Cut(entry, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case entry == "":
			return nil, fmt.Errorf("entry %d is empty", i+1)
		case !ok:
			return nil, fmt.Errorf("entry %d %q: want primary=overflow", i+1, entry)
		}
		if err := checkPrimary(from, k); err != nil {
			return nil, fmt.Errorf("entry %d %q: %s name %q: %w", i+1, entry, from, k, err)
		}
		t, err := ParseTarget(to, v, host)
		if err != nil {
			return nil, fmt.Errorf("entry %d %q: %s name %q: %w", i+1, entry, to, v, err)
		}
		if _, dup := r.explicit[k]; dup {
			return nil, fmt.Errorf("entry %d %q: %q is mapped twice", i+1, entry, k)
		}
		r.explicit[k] = t
	}
	return r, nil
}

// Len returns the number of explicit mappings.
func (r *Resolver) Len() int { return len(r.explicit) }

// Resolve names the overflow's function for the primary's function and
// qualifier: an explicit mapping of "function:qualifier", else of
// "function", else the default mapping. The error says why there is none.
//
// Default mapping: OpenWhisk "ns/action" is "action" and "ns/pkg/action"
// is "pkg-action" (the namespace is the tenant, not part of the name);
// a Lambda function or http service "name" is the OpenWhisk action
// "/_/name" and keeps its name between Lambda and http. A Lambda qualifier
// is not carried by the default. The name must be one the overflow's API
// accepts.
func (r *Resolver) Resolve(function, qualifier string) (Target, error) {
	if qualifier != "" {
		if t, ok := r.explicit[function+":"+qualifier]; ok {
			return t, nil
		}
	}
	if t, ok := r.explicit[function]; ok {
		return t, nil
	}
	name := function
	if r.from == invocation.OpenWhisk {
		_, rest, ok := strings.Cut(function, "/")
		if !ok {
			return Target{}, fmt.Errorf("OpenWhisk name %q has no namespace", function)
		}
		name = strings.Replace(rest, "/", "-", 1)
	}
	t := Target{Kind: r.to, Name: name}
	var err error
	switch r.to {
	case invocation.OpenWhisk:
		t.Namespace = "_"
		err = checkSegment(name, OpenWhiskByte)
	case invocation.Lambda:
		err = checkLambdaName(name)
	default:
		err = checkHTTPName(name, r.host)
	}
	if err != nil {
		return Target{}, fmt.Errorf("no default %s name for %q (%q: %v); map it in SEQUOIA_OVERFLOW_FUNCTIONS", r.to, function, name, err)
	}
	return t, nil
}

// ParseTarget reads an overflow name of kind's API.
func ParseTarget(kind invocation.Platform, s string, host bool) (Target, error) {
	t := Target{Kind: kind}
	switch kind {
	case invocation.OpenWhisk:
		t.Namespace = "_"
		rest := s
		qualified := strings.HasPrefix(s, "/")
		if qualified {
			rest = s[1:]
		}
		parts := strings.Split(rest, "/")
		switch {
		case qualified && len(parts) == 2:
			t.Namespace, t.Name = parts[0], parts[1]
		case qualified && len(parts) == 3:
			t.Namespace, t.Package, t.Name = parts[0], parts[1], parts[2]
		case !qualified && len(parts) == 1:
			t.Name = parts[0]
		case !qualified && len(parts) == 2:
			t.Package, t.Name = parts[0], parts[1]
		default:
			return Target{}, errors.New(`want "action", "pkg/action", "/ns/action" or "/ns/pkg/action"`)
		}
		segs := []string{t.Namespace, t.Name}
		if t.Package != "" || len(parts) == 3 || !qualified && len(parts) == 2 {
			segs = append(segs, t.Package)
		}
		for _, seg := range segs {
			if err := checkSegment(seg, OpenWhiskByte); err != nil {
				return Target{}, err
			}
		}
	case invocation.Lambda:
		name, q, hasQ := strings.Cut(s, ":")
		if err := checkLambdaName(name); err != nil {
			return Target{}, err
		}
		if hasQ {
			if err := checkQualifier(q); err != nil {
				return Target{}, err
			}
			t.Qualifier = q
		}
		t.Name = name
	default:
		if err := checkHTTPName(s, host); err != nil {
			return Target{}, err
		}
		t.Name = s
	}
	return t, nil
}

// checkPrimary checks a primary name as sequoia's router produces it. A
// Lambda or http name is written as the overflow's would be ("name[:qualifier]",
// "service" by path); OpenWhisk's is "ns/[pkg/]action".
func checkPrimary(kind invocation.Platform, s string) error {
	if kind != invocation.OpenWhisk {
		_, err := ParseTarget(kind, s, false)
		return err
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return errors.New(`want "ns/action" or "ns/pkg/action"`)
	}
	for _, p := range parts {
		if err := checkSegment(p, OpenWhiskByte); err != nil {
			return err
		}
	}
	return nil
}

// MaxSegment bounds every name segment, well above the platforms' own
// limits; sequoia's router applies it too.
const MaxSegment = 256

func checkSegment(s string, ok func(byte) bool) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxSegment:
		return errors.New("too long")
	case s == "." || s == "..":
		return errors.New("a dot segment")
	}
	for i := range len(s) {
		if !ok(s[i]) {
			return fmt.Errorf("character %q not allowed", s[i])
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return errors.New("leading or trailing space")
	}
	return nil
}

func checkLambdaName(s string) error {
	if len(s) > 64 {
		return errors.New("longer than 64 characters")
	}
	return checkSegment(s, LambdaByte)
}

func checkQualifier(s string) error {
	if len(s) > 128 {
		return errors.New("qualifier longer than 128 characters")
	}
	if err := checkSegment(s, QualifierByte); err != nil {
		return fmt.Errorf("qualifier: %w", err)
	}
	return nil
}

func checkHTTPName(s string, host bool) error {
	if !host {
		return checkSegment(s, HTTPByte)
	}
	if len(s) > 63 {
		return errors.New("longer than a DNS label (63)")
	}
	if err := checkSegment(s, dnsByte); err != nil {
		return err
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return errors.New("a DNS label cannot start or end with '-'")
	}
	return nil
}

func alnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// The characters each API allows in a name; sequoia's router checks
// requests with the same rules.

// OpenWhiskByte: entity names: alphanumerics, '_', '@', '.', '-' and
// inner spaces.
func OpenWhiskByte(c byte) bool {
	return alnum(c) || c == '_' || c == '@' || c == '.' || c == '-' || c == ' '
}

// LambdaByte: Lambda function names: alphanumerics, '-', '_'.
func LambdaByte(c byte) bool { return alnum(c) || c == '-' || c == '_' }

// QualifierByte: Lambda qualifiers: versions, aliases and $LATEST.
func QualifierByte(c byte) bool { return alnum(c) || c == '-' || c == '_' || c == '$' }

// HTTPByte: HTTP function names: DNS label and path-safe characters.
func HTTPByte(c byte) bool { return alnum(c) || c == '-' || c == '_' || c == '.' }

func dnsByte(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' }
