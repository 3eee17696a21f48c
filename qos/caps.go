package qos

import "slices"

type parkKind uint8

const (
	notParked parkKind = iota
	parkedTenant
	parkedFunction
)

// capCounts counts the slots each tenant and function holds and parks the
// waiters that would exceed a cap. Not safe for concurrent use: the
// Scheduler's mu guards it.
type capCounts struct {
	tenantCap, fnCap int
	tenants, fns     map[string]int
	// Parked waiters by the key that blocks them, in the order they were
	// popped (so earliest deadline first within a key).
	byTenant, byFn map[string][]*waiter
	parked         int
}

func newCapCounts(tenantCap, fnCap int) capCounts {
	return capCounts{
		tenantCap: tenantCap, fnCap: fnCap,
		tenants: map[string]int{}, fns: map[string]int{},
		byTenant: map[string][]*waiter{}, byFn: map[string][]*waiter{},
	}
}

// fnCapFor is the function cap that applies to an invocation whose policy
// set invCap (0: none): the policy's, else the configured one.
func (c *capCounts) fnCapFor(invCap int) int {
	if invCap > 0 {
		return invCap
	}
	return c.fnCap
}

// full reports whether tenant or fn is at its cap; invCap is the
// invocation's own function cap (0: none).
func (c *capCounts) full(tenant, fn string, invCap int) bool {
	fc := c.fnCapFor(invCap)
	return c.tenantCap > 0 && c.tenants[tenant] >= c.tenantCap ||
		fc > 0 && c.fns[fn] >= fc
}

// take counts a slot taken. A function's slots are counted when a cap is
// configured or the invocation carries one, so a policy's cap counts the
// invocations it capped.
func (c *capCounts) take(tenant, fn string, invCap int) {
	if c.tenantCap > 0 {
		c.tenants[tenant]++
	}
	if c.fnCapFor(invCap) > 0 {
		c.fns[fn]++
	}
}

func (c *capCounts) give(tenant, fn string, invCap int) {
	if c.tenantCap > 0 {
		if c.tenants[tenant]--; c.tenants[tenant] <= 0 {
			delete(c.tenants, tenant)
		}
	}
	if c.fnCapFor(invCap) > 0 {
		if c.fns[fn]--; c.fns[fn] <= 0 {
			delete(c.fns, fn)
		}
	}
}

// park sets wt aside if its tenant or function is at its cap and reports
// whether it did.
func (c *capCounts) park(wt *waiter) bool {
	switch {
	case c.tenantCap > 0 && c.tenants[wt.entry.Tenant] >= c.tenantCap:
		c.byTenant[wt.entry.Tenant] = append(c.byTenant[wt.entry.Tenant], wt)
		wt.parked = parkedTenant
	case c.fnCapFor(wt.fnCap) > 0 && c.fns[wt.fn] >= c.fnCapFor(wt.fnCap):
		c.byFn[wt.fn] = append(c.byFn[wt.fn], wt)
		wt.parked = parkedFunction
	default:
		return false
	}
	c.parked++
	return true
}

// unblocked returns the waiters a slot given back by (tenant, fn) may
// unblock: the first parked on each key. They are no longer parked.
func (c *capCounts) unblocked(tenant, fn string) []*waiter {
	var out []*waiter
	for _, p := range []struct {
		m   map[string][]*waiter
		key string
	}{{c.byTenant, tenant}, {c.byFn, fn}} {
		l := p.m[p.key]
		if len(l) == 0 {
			continue
		}
		wt := l[0]
		if len(l) == 1 {
			delete(p.m, p.key)
		} else {
			p.m[p.key] = l[1:]
		}
		wt.parked = notParked
		c.parked--
		out = append(out, wt)
	}
	return out
}

// unparkWaiter removes a waiter that gave up from its parking place and
// reports whether it was there.
func (c *capCounts) unparkWaiter(wt *waiter) bool {
	m, key := c.byTenant, wt.entry.Tenant
	if wt.parked == parkedFunction {
		m, key = c.byFn, wt.fn
	}
	l := m[key]
	i := slices.Index(l, wt)
	if i < 0 {
		return false
	}
	l = slices.Delete(l, i, i+1)
	if len(l) == 0 {
		delete(m, key)
	} else {
		m[key] = l
	}
	wt.parked = notParked
	c.parked--
	return true
}

func (c *capCounts) parkedLen() int { return c.parked }
