package policy

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestEvalCache(t *testing.T) {
	k := ast.MustParseRef("data.sequoia.k")
	c := newEvalCache(constants{{"data", "sequoia", "k"}: ast.IntNumberTerm(5)})
	defer c.release()
	if v, undef := c.Get(k); undef || v == nil || !v.Equal(ast.IntNumberTerm(5)) {
		t.Errorf("constant: %v %v", v, undef)
	}

	// A put keeps its own copy of the ref: OPA reuses the slice.
	r := ast.MustParseRef(`data.sequoia.f["a"]`)
	c.Put(r, ast.StringTerm("x"))
	r[3] = ast.StringTerm("b")
	if v, _ := c.Get(ast.MustParseRef(`data.sequoia.f["a"]`)); v == nil || !v.Equal(ast.StringTerm("x")) {
		t.Errorf("after the caller changed its ref: %v", v)
	}
	if v, undef := c.Get(r); v != nil || undef {
		t.Errorf("never put: %v %v", v, undef)
	}
	c.Put(r, nil)
	if v, undef := c.Get(r); v != nil || !undef {
		t.Errorf("undefined: %v %v", v, undef)
	}
	if keys := c.Keys(); len(keys) != 1 {
		t.Errorf("keys %v, want the defined one", keys)
	}

	// Inside a with: neither the constants nor the outer frame answer.
	c.Push()
	if v, undef := c.Get(k); v != nil || undef {
		t.Errorf("constant inside a with: %v %v", v, undef)
	}
	if v, _ := c.Get(ast.MustParseRef(`data.sequoia.f["a"]`)); v != nil {
		t.Errorf("outer frame inside a with: %v", v)
	}
	c.Put(k, ast.IntNumberTerm(100))
	if v, _ := c.Get(k); v == nil || !v.Equal(ast.IntNumberTerm(100)) {
		t.Errorf("put inside a with: %v", v)
	}
	c.Pop()
	if v, _ := c.Get(k); v == nil || !v.Equal(ast.IntNumberTerm(5)) {
		t.Errorf("after the with: %v", v)
	}
}
