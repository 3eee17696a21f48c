# Per-function chain deadlines and step counts, for clients that cannot
# send X-Sequoia-Deadline-Ms and X-Sequoia-Chain-Steps.
#
# A chain whose first request names one of these functions gets the
# function's deadline and step count unless the request's headers say
# otherwise. The same table may also set a function's queue timeout,
# whether it is idempotent, and how many instances to keep warm.
# Empty as shipped.
package sequoia

# Function name → any of chain_deadline_ms, chain_steps,
# queue_timeout_ms, idempotent, prewarm. For example:
#   {"shop/checkout": {"chain_deadline_ms": 2000, "chain_steps": 3}}
functions_table := {}

# An entry's other fields are ignored. The chain's deadline and steps
# apply on its first step only, where the client sent no header.
contribution.functions := object.union(object.filter(entry, ["queue_timeout_ms", "idempotent", "prewarm"]), first_step) if {
	entry := functions_table[input.function]
	first_step := {field: v |
		input.step <= 1
		some field, header in {"chain_deadline_ms": input.chain_deadline_ms, "chain_steps": input.chain_steps}
		header == 0
		v := entry[field]
	}
}
