// Package intern maps byte-slice keys to long-lived values without allocating
// on lookups: a copy-on-write map behind an atomic pointer, read lock-free,
// written rarely (once per new key) and bounded in size.
//
// It is how the proxy turns a function name parsed from a request's bytes
// into the interned string and per-function state it keeps, at the cost of
// one atomic load and one map lookup per request.
//
// Usage:
//
//	t := intern.New(1000, func(name string) *State { return &State{Name: name} }, overflow)
//	st := t.Get(nameBytes)
package intern
