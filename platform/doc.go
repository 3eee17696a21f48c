// Package platform owns the outbound side: the clients that carry an
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
// sigv4.go re-signs Lambda requests: a client's SigV4 signature covers the
// Host and cannot survive a proxy, so it is stripped, unverified, and the
// request is signed again (aws-sdk-go-v2's signer) with sequoia's own
// credentials from the standard AWS chain, on every attempt. BenchmarkSign:
// about 9µs and 66 allocations for an empty body, 11µs for 1 KiB, 170µs for
// 256 KiB (the body's SHA-256); the signer and the credentials cache are
// shared, and the empty body's hash is a constant.
//
// classify.go reads an answer into a Verdict: a function error (never
// retried), a concurrency throttle (Lambda's concurrency reasons,
// OpenWhisk's "Too many concurrent requests in flight", Knative's 503
// "pending request queue full"), a rate throttle (Lambda's rate reasons,
// OpenWhisk's "in the last minute"), a platform 503/504, a 202 (background
// work), or done; with the platform's Retry-After.
//
// translate.go is the overflow to a platform of another API: Translator
// builds that platform's own invoke request (the function named by
// internal/fnmap, the JSON body, the invocation type, sequoia's own
// credentials and never the client's) and writes its answer back in the
// primary's shape (a Lambda payload as OpenWhisk's result or activation
// record, OpenWhisk's 502 as Lambda's X-Amz-Function-Error, and so on).
// What it cannot carry is an UntranslatableError, sent nowhere; a throttle
// or refusal of the overflow platform an OverflowError.
//
// Usage:
//
//	signer, err := platform.NewLambdaSigner(ctx, platform.SignerConfig{Region: "eu-west-1", Host: "lambda.eu-west-1.amazonaws.com"})
//	c, err := platform.New(platform.Config{URL: "https://lambda.eu-west-1.amazonaws.com", Kind: invocation.Lambda, MaxConns: 100, Signer: signer})
//	err = c.Invoke(inv) // fills inv.Resp
//	if errors.Is(err, platform.ErrTimeout) { ... } // 504; other errors: 502
//	v, retryAfter := platform.Classify(invocation.Lambda, inv.Resp) // e.g. platform.ThrottledConcurrency, 1s
package platform
