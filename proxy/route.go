package proxy

import (
	"bytes"
	"errors"

	"github.com/sequoia-qos/sequoia/internal/fnmap"
)

// routeKind says what a request is to the proxy.
type routeKind uint8

const (
	routeInvoke  routeKind = iota // a function invocation: queued and admitted
	routeControl                  // the platform's other API calls: forwarded as they are
)

// route is what parsing a request's target yields. Its byte slices point
// into the request or into the scratch buffer given to the parser.
type route struct {
	kind      routeKind
	function  []byte
	tenant    []byte
	qualifier []byte
}

// Parse errors. errNoRoute becomes 404, errBadPath 400.
var (
	errNoRoute = errors.New("no route")
	errBadPath = errors.New("bad path")
)

// routeError carries which part of a path was malformed.
type routeError struct {
	err  error
	what string
}

func (e *routeError) Error() string { return e.what }
func (e *routeError) Unwrap() error { return e.err }

func badPath(what string) error { return &routeError{errBadPath, what} }

var (
	owNamespaces = []byte("/api/v1/namespaces/")
	owWeb        = []byte("/api/v1/web/")
	owAPI        = []byte("/api/v1/")
	lambdaPrefix = []byte("/2015-03-31/functions/")
	lambdaSuffix = []byte("/invocations")
	actionsSeg   = []byte("actions")
	methodPost   = []byte("POST")
)

// parseOpenWhisk parses an OpenWhisk path: actions
// /api/v1/namespaces/{ns}/actions/[{pkg}/]{action} (POST invokes, other
// methods are control calls), web actions /api/v1/web/{ns}/{pkg}/{action}[.ext][/...],
// and any other /api/v1/ path as a control call. The function name
// "ns/[pkg/]action" is built in scratch.
func parseOpenWhisk(method, path, scratch []byte) (route, error) {
	switch {
	case bytes.HasPrefix(path, owNamespaces):
		rest := path[len(owNamespaces):]
		ns, rest, _ := bytes.Cut(rest, slash)
		kind, rest, hasRest := bytes.Cut(rest, slash)
		if !bytes.Equal(kind, actionsSeg) || !bytes.Equal(method, methodPost) {
			return route{kind: routeControl}, nil
		}
		if err := checkName(ns, "namespace", fnmap.OpenWhiskByte); err != nil {
			return route{}, err
		}
		if !hasRest {
			return route{}, badPath("action: missing")
		}
		pkg, action, hasPkg := bytes.Cut(rest, slash)
		if !hasPkg {
			action, pkg = pkg, nil
		} else if err := checkName(pkg, "package", fnmap.OpenWhiskByte); err != nil {
			return route{}, err
		}
		if err := checkName(action, "action", fnmap.OpenWhiskByte); err != nil {
			return route{}, err
		}
		return route{kind: routeInvoke, tenant: ns, function: joinName(scratch, ns, pkg, action)}, nil
	case bytes.HasPrefix(path, owWeb):
		rest := path[len(owWeb):]
		ns, rest, _ := bytes.Cut(rest, slash)
		pkg, rest, _ := bytes.Cut(rest, slash)
		action, _, _ := bytes.Cut(rest, slash)
		if i := bytes.IndexByte(action, '.'); i >= 0 {
			action = action[:i] // the extension picks the content type, not the action
		}
		for _, p := range [...]struct {
			name []byte
			what string
		}{{ns, "namespace"}, {pkg, "package"}, {action, "action"}} {
			if err := checkName(p.name, p.what, fnmap.OpenWhiskByte); err != nil {
				return route{}, err
			}
		}
		return route{kind: routeInvoke, tenant: ns, function: joinName(scratch, ns, pkg, action)}, nil
	case bytes.HasPrefix(path, owAPI):
		return route{kind: routeControl}, nil
	}
	return route{}, errNoRoute
}

// parseLambda parses Lambda's invoke path
// /2015-03-31/functions/{name-or-arn}/invocations; the qualifier comes from
// the query or the ARN. Other Lambda API paths (/YYYY-MM-DD/...) are control
// calls.
func parseLambda(method, path, qualifier []byte) (route, error) {
	if !bytes.HasPrefix(path, lambdaPrefix) {
		if isLambdaAPI(path) {
			return route{kind: routeControl}, nil
		}
		return route{}, errNoRoute
	}
	rest := path[len(lambdaPrefix):]
	name, ok := bytes.CutSuffix(rest, lambdaSuffix)
	if !ok || !bytes.Equal(method, methodPost) {
		return route{kind: routeControl}, nil
	}
	if bytes.IndexByte(name, '/') >= 0 {
		return route{}, badPath("function: contains '/'")
	}
	fn, tenant, q, err := splitLambdaName(name)
	if err != nil {
		return route{}, err
	}
	if len(qualifier) == 0 {
		qualifier = q
	}
	if len(qualifier) > 0 {
		if err := checkName(qualifier, "qualifier", fnmap.QualifierByte); err != nil {
			return route{}, err
		}
	}
	return route{kind: routeInvoke, function: fn, tenant: tenant, qualifier: qualifier}, nil
}

var arnPrefix = []byte("arn:")

// splitLambdaName accepts a function name, a partial ARN
// (account:function:name) or a full ARN (arn:partition:lambda:region:account:function:name),
// each optionally followed by :qualifier.
func splitLambdaName(name []byte) (fn, account, qualifier []byte, err error) {
	parts := bytes.Split(name, colon) // only on the ARN path: names have no ':'
	switch {
	case len(parts) == 1:
		fn = parts[0]
	case len(parts) == 2:
		fn, qualifier = parts[0], parts[1]
	case bytes.HasPrefix(name, arnPrefix) && (len(parts) == 7 || len(parts) == 8) && string(parts[5]) == "function":
		account, fn = parts[4], parts[6]
		if len(parts) == 8 {
			qualifier = parts[7]
		}
	case (len(parts) == 3 || len(parts) == 4) && string(parts[1]) == "function":
		account, fn = parts[0], parts[2]
		if len(parts) == 4 {
			qualifier = parts[3]
		}
	default:
		return nil, nil, nil, badPath("function: not a name or ARN")
	}
	if err := checkName(fn, "function", fnmap.LambdaByte); err != nil {
		return nil, nil, nil, err
	}
	if len(fn) > 64 {
		return nil, nil, nil, badPath("function: longer than 64 characters")
	}
	for _, c := range account {
		if c < '0' || c > '9' {
			return nil, nil, nil, badPath("function: ARN account is not numeric")
		}
	}
	if qualifier != nil && len(qualifier) == 0 {
		return nil, nil, nil, badPath("qualifier: empty")
	}
	return fn, account, qualifier, nil
}

// isLambdaAPI reports whether path starts with a Lambda API version segment
// /YYYY-MM-DD/.
func isLambdaAPI(path []byte) bool {
	if len(path) < 12 || path[0] != '/' || path[11] != '/' || path[5] != '-' || path[8] != '-' {
		return false
	}
	for _, i := range [...]int{1, 2, 3, 4, 6, 7, 9, 10} {
		if path[i] < '0' || path[i] > '9' {
			return false
		}
	}
	return true
}

// httpRoute says how an http backend's function is named.
type httpRoute uint8

const (
	httpRouteAuto httpRoute = iota
	httpRouteHost
	httpRoutePath
)

// parseHTTP names a plain HTTP or Knative function: by Host, whose first
// label is the service and second the namespace ({service}.{namespace}.{domain}),
// or by the first path segment.
func parseHTTP(mode httpRoute, host, path []byte) (route, error) {
	h := stripPort(host)
	useHost := mode == httpRouteHost || (mode == httpRouteAuto && isDNSName(h))
	if useHost {
		svc, rest, _ := bytes.Cut(h, dot)
		ns, _, hasDomain := bytes.Cut(rest, dot)
		if !hasDomain {
			ns = nil
		}
		if err := checkName(svc, "host", fnmap.HTTPByte); err != nil {
			return route{}, err
		}
		return route{kind: routeInvoke, function: svc, tenant: ns}, nil
	}
	seg, _, _ := bytes.Cut(bytes.TrimPrefix(path, slash), slash)
	if len(seg) == 0 {
		return route{}, errNoRoute
	}
	if err := checkName(seg, "function", fnmap.HTTPByte); err != nil {
		return route{}, err
	}
	return route{kind: routeInvoke, function: seg}, nil
}

// isDNSName reports whether h is a host name with a dot that is not an IP
// literal: a Knative-style virtual host rather than the proxy's own address.
func isDNSName(h []byte) bool {
	if len(h) == 0 || h[0] == '[' || bytes.IndexByte(h, '.') < 0 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && c != '.' {
			return true
		}
	}
	return false // dotted digits: an IPv4 literal
}

func stripPort(host []byte) []byte {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i >= 0 {
			return host[:i+1]
		}
		return host
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return host[:i]
	}
	return host
}

var (
	slash = []byte("/")
	colon = []byte(":")
	dot   = []byte(".")
)

// checkName checks one name segment with the API's character class (the
// rules internal/fnmap also checks overflow names with).
func checkName(b []byte, what string, ok func(byte) bool) error {
	if len(b) == 0 {
		return badPath(what + ": empty")
	}
	if len(b) > fnmap.MaxSegment {
		return badPath(what + ": too long")
	}
	for _, c := range b {
		if !ok(c) {
			return badPath(what + ": invalid character")
		}
	}
	if string(b) == "." || string(b) == ".." {
		return badPath(what + ": a dot segment")
	}
	return nil
}

// joinName writes "a/b/c" (skipping empty parts) into scratch.
func joinName(scratch []byte, parts ...[]byte) []byte {
	out := scratch[:0]
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		if len(out) > 0 {
			out = append(out, '/')
		}
		out = append(out, p...)
	}
	return out
}
