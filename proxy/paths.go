package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// errPathEscape refuses a request target that could name another path
// once decoded: fasthttp decodes and normalises the path the parsers see,
// so "/functions/%2e%2e/x" or "..%2F..%2Fweb" would otherwise route, and be
// forwarded, as a path the client did not spell.
var errPathEscape = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
	"sequoia: the request path has a dot segment (. or .., plain or percent-encoded) or an encoded slash or backslash; function and namespace names cannot contain them", 0})

// errEmptySegment refuses "//" in a path: fasthttp would forward "//x" as
// "/x" (and "//host/x" can read as a host), a path the client did not
// spell.
var errEmptySegment = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
	"sequoia: the request path has an empty segment (//); sequoia forwards paths as they are sent and will not rewrite it", 0})

// checkRawPath checks target's path part (before any '?'): no dot
// segments, no encoded slashes or backslashes, no empty segment but a
// trailing one. It returns the answer to a path that fails, else nil.
//
// Cost: one pass over the path, no allocation.
func checkRawPath(target []byte) *apiError {
	if i := bytes.IndexByte(target, '?'); i >= 0 {
		target = target[:i]
	}
	if bytes.Contains(target, doubleSlash) {
		return errEmptySegment
	}
	for seg := range bytes.SplitSeq(target, slash) {
		if isDotSegment(seg) {
			return errPathEscape
		}
		if bytes.IndexByte(seg, '\\') >= 0 {
			return errPathEscape
		}
		for i := 0; i+2 < len(seg); i++ {
			if seg[i] != '%' {
				continue
			}
			if seg[i+1] == '2' && (seg[i+2] == 'f' || seg[i+2] == 'F') ||
				seg[i+1] == '5' && (seg[i+2] == 'c' || seg[i+2] == 'C') {
				return errPathEscape
			}
		}
	}
	return nil
}

var doubleSlash = []byte("//")

// isDotSegment reports "." or "..", with each dot plain or as %2e.
func isDotSegment(seg []byte) bool {
	dots := 0
	for len(seg) > 0 {
		switch {
		case seg[0] == '.':
			seg = seg[1:]
		case len(seg) >= 3 && seg[0] == '%' && seg[1] == '2' && (seg[2] == 'e' || seg[2] == 'E'):
			seg = seg[3:]
		default:
			return false
		}
		dots++
	}
	return dots == 1 || dots == 2
}
