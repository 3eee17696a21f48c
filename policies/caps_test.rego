package sequoia_test

import data.sequoia

test_caps_apply_to_their_function_only if {
	sequoia.decision.concurrency_cap == 3 with input as {"function": "thumb"}
		with sequoia.caps_function_caps as {"thumb": 3}
	not sequoia.decision.concurrency_cap with input as {"function": "other"}
		with sequoia.caps_function_caps as {"thumb": 3}
}

test_caps_rank_dominates_other_priorities if {
	high := sequoia.decision with input as {"function": "hi", "tenant": "a", "step": 1, "snapshot": {}}
		with sequoia.caps_function_ranks as {"hi": 1}
	low := sequoia.decision with input as {"function": "lo", "tenant": "a", "step": 2, "snapshot": {}}
		with sequoia.caps_function_ranks as {"hi": 1}
		with sequoia.sjf_enabled as true
	high.priority > low.priority
}
