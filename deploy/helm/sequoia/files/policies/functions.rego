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

chain_deadline_ms.functions := functions_table[input.function].chain_deadline_ms if {
	input.step <= 1
	input.chain_deadline_ms == 0
}

chain_steps.functions := functions_table[input.function].chain_steps if {
	input.step <= 1
	input.chain_steps == 0
}

queue_timeout_ms.functions := functions_table[input.function].queue_timeout_ms

idempotent.functions := functions_table[input.function].idempotent

prewarm.functions := functions_table[input.function].prewarm
