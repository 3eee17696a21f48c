package policy

import (
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// evalCache is the virtual document cache of one evaluation, in place of
// OPA's: a decision caches a few dozen documents and function results,
// few enough that a slice searched by hash beats OPA's tree of hash maps
// (a map per path element), and it is pooled. Outside any `with`, it
// answers the policy's constants from a map first; inside a `with` (a
// pushed frame) a constant may be replaced, so only what was cached
// there answers.
type evalCache struct {
	consts constants
	frames [][]cacheEntry
}

type cacheEntry struct {
	hash  uint64
	ref   ast.Ref
	value *ast.Term // nil: the document is undefined
}

var evalCaches = sync.Pool{New: func() any { return &evalCache{} }}

// newEvalCache returns a cache with one frame; release it after the
// evaluation.
func newEvalCache(consts constants) *evalCache {
	c := evalCaches.Get().(*evalCache)
	c.consts = consts
	c.Push()
	return c
}

func (c *evalCache) release() {
	for len(c.frames) > 0 {
		c.Pop()
	}
	c.consts = nil
	evalCaches.Put(c)
}

func (c *evalCache) Push() {
	if len(c.frames) < cap(c.frames) {
		c.frames = c.frames[:len(c.frames)+1]
		return
	}
	c.frames = append(c.frames, nil)
}

func (c *evalCache) Pop() {
	top := len(c.frames) - 1
	clear(c.frames[top])
	c.frames[top] = c.frames[top][:0]
	c.frames = c.frames[:top]
}

func (c *evalCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if len(c.frames) == 1 {
		if k, ok := constKey(ref); ok {
			if v, ok := c.consts[k]; ok {
				return v, false
			}
		}
	}
	h := refHash(ref)
	for _, e := range c.frames[len(c.frames)-1] {
		if e.hash == h && e.ref.Equal(ref) {
			return e.value, e.value == nil
		}
	}
	return nil, false
}

func (c *evalCache) Put(ref ast.Ref, value *ast.Term) {
	top := len(c.frames) - 1
	h := refHash(ref)
	for i, e := range c.frames[top] {
		if e.hash == h && e.ref.Equal(ref) {
			c.frames[top][i].value = value
			return
		}
	}
	// OPA reuses the slice it passes: keep a copy.
	c.frames[top] = append(c.frames[top], cacheEntry{h, slices.Clone(ref), value})
}

func (c *evalCache) Keys() []ast.Ref {
	var keys []ast.Ref
	for _, e := range c.frames[len(c.frames)-1] {
		if e.value != nil {
			keys = append(keys, e.ref)
		}
	}
	return keys
}

// refHash hashes a ref without allocating for the usual string and var
// elements (FNV-1a); other elements use OPA's hash.
func refHash(ref ast.Ref) uint64 {
	h := uint64(14695981039346656037)
	mix := func(s string, tag byte) {
		h ^= uint64(tag)
		h *= 1099511628211
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	for _, t := range ref {
		switch v := t.Value.(type) {
		case ast.String:
			mix(string(v), 's')
		case ast.Var:
			mix(string(v), 'v')
		default:
			h ^= uint64(t.Hash())
			h *= 1099511628211
		}
	}
	return h
}

var _ topdown.VirtualCache = (*evalCache)(nil)
