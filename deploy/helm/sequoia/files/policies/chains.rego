# Chains first, with fair share across tenants: sequoia's default policy.
#
# A continuation (step 2 or later) of a chain already running outranks
# every first step, so that a chain once started finishes before new ones
# begin: a chain dropped half-way wastes the work already done. Among
# first steps, a tenant holding at least its fair share of the platform
# (the effective limit divided among the tenants with work in flight)
# yields to the others.
package sequoia

# Priority added to continuations of running chains.
chains_continuation_boost := 100

# Priority taken from a new chain whose tenant is at or over its share.
chains_over_share_penalty := 10

contribution.chains := {"priority": chains_continuation_boost} if input.step > 1

# The tenant holds at least 1/n of the limit while n tenants have work in
# flight. (One rule rather than a helper: each rule costs every decision.)
contribution.chains := {"priority": 0 - chains_over_share_penalty} if {
	input.step <= 1
	tenants := input.snapshot.tenants
	n := count(tenants)
	n > 1
	limit := input.snapshot.limit
	limit > 0
	tenants[input.tenant].in_flight * n >= limit
}
