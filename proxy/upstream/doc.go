// Package upstream owns the outbound side: the clients that carry an
// admitted invocation to the configured platform and bring its answer back.
//
// Organisation: Client forwards over one fasthttp.HostClient bound to
// SEQUOIA_BACKEND_URL, so no request can reach any other address whatever
// its target or Host header says (no open relay). The request and response
// are the inbound server's own buffers: the body is written from where it
// was read and the answer is read into the response that goes back, with no
// copy in between. Hop-by-hop headers (RFC 9110 section 7.6.1) are removed
// in both directions and a Via header is added.
//
// Usage:
//
//	c, err := upstream.New(upstream.Config{URL: "http://127.0.0.1:8081", Kind: invocation.OpenWhisk, MaxConns: 100})
//	err = c.Invoke(inv) // fills inv.Resp
//	if errors.Is(err, upstream.ErrTimeout) { ... } // 504; other errors: 502
package upstream
