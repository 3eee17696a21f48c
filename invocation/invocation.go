package invocation

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Platform is the invoke API a request arrived in, which is also the one the
// configured backend speaks.
type Platform uint8

// The platforms sequoia speaks.
const (
	HTTP Platform = iota // plain HTTP or Knative functions, routed by Host or path
	OpenWhisk
	Lambda
)

var platformNames = [...]string{HTTP: "http", OpenWhisk: "openwhisk", Lambda: "lambda"}

// String returns the platform's configuration name.
func (p Platform) String() string {
	if int(p) < len(platformNames) {
		return platformNames[p]
	}
	return "unknown"
}

// ParsePlatform maps a configuration name to a Platform.
func ParsePlatform(s string) (Platform, bool) {
	for i, n := range platformNames {
		if n == s {
			return Platform(i), true
		}
	}
	return 0, false
}

// Invocation is one function invocation on its way through sequoia.
//
// Strings in it are interned by the stage that sets them (the proxy interns
// function and tenant names), so filling one allocates nothing per request.
type Invocation struct {
	// Function names the function in the platform's own terms:
	// "ns/[pkg/]action" for OpenWhisk, the function name for Lambda, the
	// service for HTTP/Knative.
	Function string
	// Tenant is who the invocation is billed to: the OpenWhisk namespace,
	// the Knative namespace, or "" when the platform has no such notion.
	Tenant string
	// Qualifier is Lambda's version or alias, "" when absent.
	Qualifier string
	Platform  Platform

	// Arrival is when the proxy received the request.
	Arrival time.Time
	// Chain is the X-Sequoia-Chain-Id the invocation belongs to: given by
	// the caller or assigned by the proxy.
	Chain string
	// ChainAssigned: the proxy assigned Chain to this request just now, so
	// no request of the chain was admitted before and nothing needs to
	// look it up (the policy's step is 1, qos starts a new chain). qos
	// clears it once the chain is admitted, so that a retry of the same
	// invocation finds its chain.
	ChainAssigned bool
	// ChainTicket is, in a cluster, the signed admission ticket that rides
	// on a chain id sequoia assigned ("<Chain>.<ticket>"): as received, or
	// the one issued when this replica admits the chain; the proxy sends
	// and answers the id with it. Empty outside a cluster.
	ChainTicket string
	// Cluster is the cluster's note between admission and the answer (a
	// client-chosen id's registration, awaited before the first answer);
	// nil outside a cluster.
	Cluster any
	// Budget is the chain's deadline from X-Sequoia-Deadline-Ms, counted
	// from its first request; 0 when not given. Steps is
	// X-Sequoia-Chain-Steps, 0 when not given. Both matter on a chain's
	// first request only.
	Budget time.Duration
	Steps  int
	// Class is the scheduling class (qos.Interactive, qos.Batch).
	Class uint8
	// Set from the policy's decision (package policy); zero means the
	// configuration decides. Priority orders invocations within a class
	// (higher first), FunctionCap bounds this function's invocations in
	// flight, QueueTimeout bounds this invocation's wait for a slot,
	// Idempotent marks it safe to retry, Prewarm asks for that many warm
	// instances of the function.
	Priority     int
	FunctionCap  int
	QueueTimeout time.Duration
	Idempotent   bool
	Prewarm      int
	// Continuation and Deadline are set by qos: whether the chain was
	// already running, and when its budget ends (zero: no deadline).
	Continuation bool
	Deadline     time.Time

	// Attempt counts the platform attempts made before this one: 0 for
	// the first, set by the proxy's retry loop.
	Attempt int
	// RetryIn, set by the invoker when an attempt ends, says that the
	// attempt will be sent again after that wait (RetryReason says why):
	// the scheduler books it as no step of its chain (a throttle is not a
	// run), and the next attempt's admission as no new request of it.
	// Zero: the attempt's answer is final. The scheduler clears it when
	// the next attempt is admitted; a caller that plans a retry and does
	// not make it says so (qos.Scheduler.GiveUp).
	RetryIn     time.Duration
	RetryReason string

	// Warm is the warm pool's note between Arrived and Finished (the
	// function's state, so that Finished need not look it up); nil when
	// the pool is off or has not seen the invocation.
	Warm any

	// Req and Resp are the platform request as received and the response
	// to return. They belong to the inbound server and must not be kept
	// after the handler that owns them returns.
	Req  *fasthttp.Request
	Resp *fasthttp.Response
}

var pool = sync.Pool{New: func() any { return new(Invocation) }}

// Get returns a zeroed Invocation from a pool.
func Get() *Invocation { return pool.Get().(*Invocation) }

// Put clears inv and returns it to the pool. inv must not be used afterwards.
func Put(inv *Invocation) {
	*inv = Invocation{}
	pool.Put(inv)
}
