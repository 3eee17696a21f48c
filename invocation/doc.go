// Package invocation defines Invocation, the one value that carries a request
// through sequoia's one-way pipeline: the proxy parses a platform request into
// it, the policy decides on it, qos queues and admits it, and an upstream
// client invokes it.
//
// The package is a leaf: it imports nothing of sequoia's, so every stage can
// share the type without importing an earlier stage.
//
// Usage:
//
//	inv := invocation.Get()
//	defer invocation.Put(inv)
//	inv.Function, inv.Tenant = "guest/hello", "guest"
//	inv.Platform = invocation.OpenWhisk
package invocation
