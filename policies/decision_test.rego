package sequoia_test

import data.sequoia

first_step := {"function": "f", "tenant": "t", "class": "interactive", "step": 1, "chain_deadline_ms": 0, "chain_steps": 0, "snapshot": {"tenants": {}, "functions": {}, "classes": {}, "limit": 10}}

# With the shipped settings, a first step says nothing beyond allow. (The
# tests set every constant they depend on, so that they keep passing in
# a copy whose constants an operator has edited.)
test_default_allows_and_says_nothing_else if {
	sequoia.decision == {"allow": true} with input as first_step
		with sequoia.sjf_enabled as false
		with sequoia.shed_enabled as false
		with sequoia.caps_function_caps as {}
		with sequoia.caps_function_ranks as {}
		with sequoia.functions_table as {}
		with sequoia.deny_tenants as {}
		with sequoia.deny_functions as {}
}

test_reasons_joined if {
	d := sequoia.decision with input as first_step
		with sequoia.deny_tenants as {"t": "unpaid"}
		with sequoia.deny_functions as {"f": "retired"}
	d.allow == false
	d.reason == `function "f" is denied: retired; tenant "t" is denied: unpaid`
}

test_priorities_add if {
	d := sequoia.decision with input as object.union(first_step, {"step": 2})
		with sequoia.caps_function_ranks as {"f": 2}
		with sequoia.caps_rank_weight as 1000
		with sequoia.chains_continuation_boost as 100
		with sequoia.sjf_enabled as false
	d.priority == 2100
}

test_smallest_cap_wins if {
	d := sequoia.decision with input as first_step
		with sequoia.concurrency_cap as {"a": 7, "b": 9}
	d.concurrency_cap == 7
}

test_batch_wins_over_interactive if {
	d := sequoia.decision with input as first_step
		with sequoia.class as {"a": "interactive", "b": "batch"}
	d.class == "batch"
}
