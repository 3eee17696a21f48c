package proxy

import (
	"bytes"
	"encoding/base64"

	"github.com/valyala/fasthttp"
)

var (
	owDefaultNamespace = []byte("_")
	basicPrefix        = []byte("Basic ")
)

// owTenant is the tenant of an OpenWhisk invocation: its namespace, or,
// for the "_" namespace (the one the caller's key belongs to), the key's
// subject: the user part of the Basic credentials, written after "_:" in
// buf. Callers without credentials share "_". The credentials themselves
// are forwarded untouched.
//
// Cost for "_": one base64 decode into buf, no allocation while buf is
// large enough.
func owTenant(ns []byte, h *fasthttp.RequestHeader, buf []byte) []byte {
	if !bytes.Equal(ns, owDefaultNamespace) {
		return ns
	}
	auth := h.Peek(fasthttp.HeaderAuthorization)
	if len(auth) <= len(basicPrefix) || !bytes.EqualFold(auth[:len(basicPrefix)], basicPrefix) {
		return ns
	}
	enc := bytes.TrimSpace(auth[len(basicPrefix):])
	out := append(buf[:0], "_:"...)
	need := base64.StdEncoding.DecodedLen(len(enc))
	if cap(out)-len(out) < need {
		out = append(make([]byte, 0, len(out)+need), out...)
	}
	n, err := base64.StdEncoding.Decode(out[len(out):len(out)+need], enc)
	if err != nil {
		return ns
	}
	user, _, ok := bytes.Cut(out[len(out):len(out)+n], []byte{':'})
	if !ok || len(user) == 0 {
		return ns
	}
	return out[:len(out)+len(user)]
}
