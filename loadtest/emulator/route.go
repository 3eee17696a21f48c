package emulator

import "bytes"

// shape is the platform API a request was addressed to; it decides the
// request's options and the format of every answer, throttles included.
type shape uint8

const (
	shapeNone      shape = iota // unknown path under a platform prefix: 404
	shapeOpenWhisk              // /api/v1/namespaces/{ns}/actions/[{pkg}/]{action}
	shapeWeb                    // /api/v1/web/{ns}/{pkg}/{action}[.ext][/...]
	shapeLambda                 // /2015-03-31/functions/{name}/invocations
	shapeHTTP                   // anything else: Knative or a plain HTTP function
	shapeAdmin                  // /emulator/{name}
)

func (s shape) String() string {
	switch s {
	case shapeOpenWhisk:
		return "openwhisk"
	case shapeWeb:
		return "openwhisk-web"
	case shapeLambda:
		return "lambda"
	case shapeHTTP:
		return "http"
	case shapeAdmin:
		return "admin"
	}
	return "none"
}

// route is a parsed request path. Its slices alias the path and host it was
// parsed from, so a route lives no longer than the request.
type route struct {
	shape shape
	ns    []byte // OpenWhisk namespace (both OpenWhisk shapes)
	pkg   []byte // OpenWhisk package; empty when the action has none
	name  []byte // action, Lambda function, HTTP function, or admin endpoint
}

const (
	owActionsPrefix = "/api/v1/namespaces/"
	owWebPrefix     = "/api/v1/web/"
	lambdaPrefix    = "/2015-03-31/functions/"
	lambdaSuffix    = "/invocations"
	adminPrefix     = "/emulator/"
)

// webExtensions are the content extensions OpenWhisk strips from a web
// action's name; any other dot is part of the name.
var webExtensions = [...]string{".json", ".html", ".http", ".svg", ".text"}

// parseRoute classifies a decoded request path. host is the Host header and
// is read only for a plain HTTP request to "/". It never allocates.
func parseRoute(path, host []byte) route {
	switch {
	case bytes.HasPrefix(path, []byte(adminPrefix)):
		return route{shape: shapeAdmin, name: path[len(adminPrefix):]}
	case bytes.HasPrefix(path, []byte(owActionsPrefix)):
		return parseOpenWhisk(path[len(owActionsPrefix):])
	case bytes.HasPrefix(path, []byte(owWebPrefix)):
		return parseWeb(path[len(owWebPrefix):])
	case bytes.HasPrefix(path, []byte(lambdaPrefix)):
		return parseLambda(path[len(lambdaPrefix):])
	}
	return parseHTTP(path, host)
}

// parseOpenWhisk reads "{ns}/actions/{action}" or "{ns}/actions/{pkg}/{action}".
func parseOpenWhisk(rest []byte) route {
	ns, rest, ok := bytes.Cut(rest, []byte("/"))
	if !ok || len(ns) == 0 {
		return route{}
	}
	coll, rest, ok := bytes.Cut(rest, []byte("/"))
	if !ok || string(coll) != "actions" {
		return route{}
	}
	pkg, action, ok := bytes.Cut(rest, []byte("/"))
	if !ok {
		pkg, action = nil, pkg
	}
	if len(action) == 0 || (ok && len(pkg) == 0) || bytes.IndexByte(action, '/') >= 0 {
		return route{}
	}
	return route{shape: shapeOpenWhisk, ns: ns, pkg: pkg, name: action}
}

// parseWeb reads "{ns}/{pkg}/{action}[.ext][/projection]". The package
// "default" means the action has none, as in OpenWhisk.
func parseWeb(rest []byte) route {
	ns, rest, _ := bytes.Cut(rest, []byte("/"))
	pkg, rest, _ := bytes.Cut(rest, []byte("/"))
	action, _, _ := bytes.Cut(rest, []byte("/"))
	for _, ext := range webExtensions {
		if len(action) > len(ext) && bytes.HasSuffix(action, []byte(ext)) {
			action = action[:len(action)-len(ext)]
			break
		}
	}
	if len(ns) == 0 || len(pkg) == 0 || len(action) == 0 {
		return route{}
	}
	if string(pkg) == "default" {
		pkg = nil
	}
	return route{shape: shapeWeb, ns: ns, pkg: pkg, name: action}
}

// parseLambda reads "{name}/invocations", where name may be a plain name,
// "name:qualifier", a partial ARN "acct:function:name[:qualifier]" or a full
// ARN "arn:aws:lambda:region:acct:function:name[:qualifier]".
func parseLambda(rest []byte) route {
	if !bytes.HasSuffix(rest, []byte(lambdaSuffix)) {
		return route{}
	}
	name := rest[:len(rest)-len(lambdaSuffix)]
	if i := bytes.Index(name, []byte(":function:")); i >= 0 {
		name = name[i+len(":function:"):]
	}
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[:i]
	}
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 {
		return route{}
	}
	return route{shape: shapeLambda, name: name}
}

// parseHTTP names the function by the first path segment, or for "/" by the
// first label of the Host, as a Knative route would. An IP-literal or empty
// Host names the function "default".
func parseHTTP(path, host []byte) route {
	seg := bytes.TrimPrefix(path, []byte("/"))
	seg, _, _ = bytes.Cut(seg, []byte("/"))
	if len(seg) > 0 {
		return route{shape: shapeHTTP, name: seg}
	}
	label, _, _ := bytes.Cut(host, []byte("."))
	label, _, _ = bytes.Cut(label, []byte(":"))
	if len(label) == 0 || host[0] == '[' || (label[0] >= '0' && label[0] <= '9') {
		label = []byte("default")
	}
	return route{shape: shapeHTTP, name: label}
}

// appendKey appends the function's identity: "ns/[pkg/]action" for OpenWhisk,
// the bare name for Lambda and HTTP functions.
func (r *route) appendKey(dst []byte) []byte {
	if r.shape == shapeOpenWhisk || r.shape == shapeWeb {
		dst = append(dst, r.ns...)
		dst = append(dst, '/')
		if len(r.pkg) > 0 {
			dst = append(dst, r.pkg...)
			dst = append(dst, '/')
		}
	}
	return append(dst, r.name...)
}

// isOpenWhisk reports whether answers take OpenWhisk's format.
func (r *route) isOpenWhisk() bool { return r.shape == shapeOpenWhisk || r.shape == shapeWeb }
