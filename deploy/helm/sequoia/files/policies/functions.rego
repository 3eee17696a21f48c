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

# A table entry may leave any field out; object.get keeps the type
# checker from rejecting the rules for the fields an entry lacks.
_functions_setting(field) := object.get(functions_table, [input.function, field], null)

chain_deadline_ms.functions := v if {
	input.step <= 1
	input.chain_deadline_ms == 0
	v := _functions_setting("chain_deadline_ms")
	v != null
}

chain_steps.functions := v if {
	input.step <= 1
	input.chain_steps == 0
	v := _functions_setting("chain_steps")
	v != null
}

queue_timeout_ms.functions := v if {
	v := _functions_setting("queue_timeout_ms")
	v != null
}

idempotent.functions := v if {
	v := _functions_setting("idempotent")
	v != null
}

prewarm.functions := v if {
	v := _functions_setting("prewarm")
	v != null
}
