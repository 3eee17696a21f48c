package proxy

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// fasthttp reads header lines that end in a bare LF, unfolds obs-fold
// continuation lines and keeps names with spaces in them; it then writes
// each header it parsed on a line of its own. A front proxy or platform
// that reads the same bytes differently (a bare LF inside a value, a
// continuation line) would see other headers than sequoia, and a client
// could smuggle headers past it (X-Sequoia-Priority, Authorization). So
// the data port refuses, with 400, any request whose header block is not
// plain RFC 9112: every line ends in CRLF, no line starts with a space or
// a tab, every name is a token, no value holds a CR.

var (
	errBareLF = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: a header line ends in a bare LF; every header line must end in CRLF", 0})
	errBareCR = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: a header value holds a bare CR", 0})
	errFolded = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: a header line starts with a space or a tab (obsolete line folding is refused)", 0})
	errHeaderName = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: a header name is empty or holds a character other than letters, digits and !#$%&'*+-.^_`|~", 0})
)

// tchar marks the characters of an RFC 9110 token, which header names are.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// checkHeaders checks a request's header block as it came off the wire
// (fasthttp's RawHeaders: the lines after the request line, up to and
// including the empty line that ends them).
//
// Cost: one IndexByte pass over the block and a table look-up per name
// byte; no allocation.
func checkHeaders(raw []byte) *apiError {
	for len(raw) > 0 {
		i := bytes.IndexByte(raw, '\n')
		if i < 0 {
			return errBareCR // a block always ends in a line feed
		}
		if i == 0 || raw[i-1] != '\r' {
			return errBareLF
		}
		line := raw[:i-1]
		raw = raw[i+1:]
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errFolded
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errHeaderName
		}
		for _, c := range line[:colon] {
			if !tchar[c] {
				return errHeaderName
			}
		}
		if bytes.IndexByte(line[colon:], '\r') >= 0 {
			return errBareCR
		}
	}
	return nil
}
