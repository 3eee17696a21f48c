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
		with sequoia.contribution as {"a": {"concurrency_cap": 7}, "b": {"concurrency_cap": 9}}
	d.concurrency_cap == 7
}

test_batch_wins_over_interactive if {
	d := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": {"class": "interactive"}, "b": {"class": "batch"}}
	d.class == "batch"
}

test_each_field_merges_by_its_rule if {
	d := sequoia.decision with input as first_step
		with sequoia.contribution as {
			"a": {"class": "interactive", "priority": 3, "concurrency_cap": 9, "chain_deadline_ms": 900, "chain_steps": 2, "queue_timeout_ms": 90, "idempotent": false, "prewarm": 1},
			"b": {"priority": -1, "concurrency_cap": 4, "chain_deadline_ms": 400, "chain_steps": 5, "queue_timeout_ms": 40, "idempotent": true, "prewarm": 3},
			"c": {},
		}
		with sequoia.deny as set()
	d == {"allow": true, "class": "interactive", "priority": 2, "concurrency_cap": 4, "chain_deadline_ms": 400, "chain_steps": 5, "queue_timeout_ms": 40, "idempotent": true, "prewarm": 3}
}

test_idempotent_false_when_none_says_true if {
	d := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": {"idempotent": false}}
	d.idempotent == false
}

test_two_classes_other_than_batch_name_none if {
	d := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": {"class": "interactive"}, "b": {"class": "interactive"}}
	not d.class
}

# A misspelt field is not dropped: it reaches the decision, whose schema
# check then refuses the policy.
test_unknown_field_reaches_the_decision if {
	one := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": {"prioirty": 3}}
	one.prioirty == 3
	two := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": {"prioirty": 3}, "b": {"priority": 1}, "c": {"prioirty": 4}}
	two.prioirty == [3, 4]
	two.priority == 1
}

# A single contribution is taken whole, and agrees with the merge.
test_single_contribution_taken_whole if {
	c := {"class": "batch", "priority": -4, "concurrency_cap": 2, "chain_deadline_ms": 900, "chain_steps": 3, "queue_timeout_ms": 50, "idempotent": true, "prewarm": 1}
	d := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": c}
		with sequoia.deny as set()
	d == object.union({"allow": true}, c)
	d2 := sequoia.decision with input as first_step
		with sequoia.contribution as {"a": c, "b": {}}
		with sequoia.deny as set()
	d2 == d
}
