package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// uses records which parts of the input a policy version reads, so that
// the decision cache keys on those and nothing else: a policy that never
// reads input.chain_id (which differs for every chain) can still be
// cached.
type uses uint16

const (
	useFunction uses = 1 << iota
	useTenant
	usePlatform
	useClass
	useChainID
	useStep
	useDeadline
	useSteps
	useType
	useSnapshot
	// noCache marks a policy whose decisions must not be cached: it calls
	// a non-deterministic built-in (time, randomness, network).
	noCache
	useAll = useFunction | useTenant | usePlatform | useClass | useChainID |
		useStep | useDeadline | useSteps | useType | useSnapshot
)

var useByKey = map[string]uses{
	inFunction: useFunction, inTenant: useTenant, inPlatform: usePlatform, inClass: useClass,
	inChainID: useChainID, inStep: useStep, inDeadline: useDeadline, inSteps: useSteps,
	inType: useType, inSnapshot: useSnapshot,
}

// analyse walks the compiled modules for references to input. Anything
// it cannot resolve to a field (input as a whole, input[x]) counts as
// reading everything.
func analyse(c *ast.Compiler) uses {
	var u uses
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r.HasPrefix(ast.InputRootRef) {
				return false
			}
			if len(r) < 2 {
				u |= useAll
				return false
			}
			s, ok := r[1].Value.(ast.String)
			if !ok {
				u |= useAll
				return false
			}
			if b, ok := useByKey[string(s)]; ok {
				u |= b
			}
			return false
		})
		var bare func(t *ast.Term) bool
		bare = func(t *ast.Term) bool {
			switch v := t.Value.(type) {
			case ast.Var:
				if v.Equal(ast.InputRootDocument.Value) {
					u |= useAll
				}
			case ast.Ref:
				// A ref's head is its root, not a use of input as a
				// value; WalkRefs judged it.
				for _, e := range v[1:] {
					ast.WalkTerms(e, bare)
				}
				return true
			}
			return false
		}
		ast.WalkTerms(m, bare)
		ast.WalkExprs(m, func(e *ast.Expr) bool {
			if !e.IsCall() {
				return false
			}
			if b, ok := ast.BuiltinMap[e.Operator().String()]; ok && b.Nondeterministic {
				u |= noCache
			}
			return false
		})
	}
	return u
}

// cacheKey is what a decision depends on: the input fields the policy
// reads and, if it reads the snapshot, the snapshot's epoch.
type cacheKey struct {
	function, tenant, platform, class, chainID, typ string
	step, steps                                     int32
	deadlineMs                                      int64
	epoch                                           uint64
}

// key builds in's cache key under u. Cost: a few compares and copies.
func (u uses) key(in *Input, epoch uint64) cacheKey {
	var k cacheKey
	if u&useFunction != 0 {
		k.function = in.Function
	}
	if u&useTenant != 0 {
		k.tenant = in.Tenant
	}
	if u&usePlatform != 0 {
		k.platform = in.Platform
	}
	if u&useClass != 0 {
		k.class = in.Class
	}
	if u&useChainID != 0 {
		k.chainID = in.ChainID
	}
	if u&useType != 0 {
		k.typ = in.Type
	}
	if u&useStep != 0 {
		k.step = int32(min(in.Step, 1<<30))
	}
	if u&useSteps != 0 {
		k.steps = int32(min(in.ChainSteps, 1<<30))
	}
	if u&useDeadline != 0 {
		k.deadlineMs = in.ChainDeadline.Milliseconds()
	}
	if u&useSnapshot != 0 {
		k.epoch = epoch
	}
	return k
}
