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

# Priority of a new chain whose tenant is at or over its fair share.
chains_over_share_priority := -10

contribution.chains := {"priority": chains_continuation_boost} if input.step > 1

# The tenant holds at least its fair share: 1/n of the limit while n
# tenants have work in flight (input.snapshot.fair_share, absent while one
# tenant alone has work in flight). A comparison, not arithmetic, and one
# rule rather than a helper: each rule and each arithmetic builtin costs
# every decision.
contribution.chains := {"priority": chains_over_share_priority} if {
	input.step <= 1
	input.snapshot.tenants[input.tenant].in_flight >= input.snapshot.fair_share
}
