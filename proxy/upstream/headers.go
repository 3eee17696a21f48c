package upstream

import (
	"bytes"

	"github.com/valyala/fasthttp"
)

// hopByHop are the headers RFC 9110 section 7.6.1 (and common practice for
// the obsolete ones) says belong to one connection and must not be
// forwarded. Transfer-Encoding and Content-Length are fasthttp's to manage.
var hopByHop = [...]string{
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authorization",
	"TE",
	"Trailer",
	"Upgrade",
}

var via = []byte("1.1 sequoia")

// PrepareRequest removes hop-by-hop headers, including those the Connection
// header names, and adds Via.
func PrepareRequest(h *fasthttp.RequestHeader) {
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 {
		forEachToken(conn, func(name []byte) { h.DelBytes(name) })
		h.Del(fasthttp.HeaderConnection)
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	h.ResetConnectionClose()
	h.AddBytesV("Via", via)
}

// PrepareResponse does the same for the platform's answer. A platform that
// closes its connection does not close the client's.
func PrepareResponse(h *fasthttp.ResponseHeader) {
	if conn := h.Peek(fasthttp.HeaderConnection); len(conn) > 0 {
		forEachToken(conn, func(name []byte) { h.DelBytes(name) })
		h.Del(fasthttp.HeaderConnection)
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	h.ResetConnectionClose()
	h.AddBytesV("Via", via)
}

// forEachToken calls fn for each comma-separated token of a Connection
// header value, skipping "close" and "keep-alive", which name no header.
func forEachToken(v []byte, fn func([]byte)) {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		tok = bytes.TrimSpace(tok)
		if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) {
			continue
		}
		fn(tok)
	}
}
