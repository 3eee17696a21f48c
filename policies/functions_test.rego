package sequoia_test

import data.sequoia

functions_table := {"shop/checkout": {"chain_deadline_ms": 2000, "chain_steps": 3, "idempotent": true, "prewarm": 2, "queue_timeout_ms": 500}}

test_functions_headerless_first_step_gets_the_table if {
	d := sequoia.decision with input as {"function": "shop/checkout", "step": 1, "chain_deadline_ms": 0, "chain_steps": 0, "snapshot": {}}
		with sequoia.functions_table as functions_table
	d == {"allow": true, "chain_deadline_ms": 2000, "chain_steps": 3, "idempotent": true, "prewarm": 2, "queue_timeout_ms": 500}
}

test_functions_headers_win if {
	d := sequoia.decision with input as {"function": "shop/checkout", "step": 1, "chain_deadline_ms": 500, "chain_steps": 2, "snapshot": {}}
		with sequoia.functions_table as functions_table
	not d.chain_deadline_ms
	not d.chain_steps
}

test_functions_continuations_keep_the_chain_s_deadline if {
	not sequoia.contribution.functions.chain_deadline_ms with input as {"function": "shop/checkout", "step": 2, "chain_deadline_ms": 0, "chain_steps": 0}
		with sequoia.functions_table as functions_table
}
