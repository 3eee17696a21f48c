package sequoia_test

import data.sequoia

sjf_snap := {"functions": {"short": {"p50_ms": 20}, "medium": {"p50_ms": 300}, "long": {"p50_ms": 60000}}}

test_sjf_shorter_jobs_get_more if {
	sequoia.priority.sjf == 30 with input as {"function": "short", "snapshot": sjf_snap} with sequoia.sjf_enabled as true
	sequoia.priority.sjf == 20 with input as {"function": "medium", "snapshot": sjf_snap} with sequoia.sjf_enabled as true
}

test_sjf_long_and_unobserved_get_nothing if {
	not sequoia.priority.sjf with input as {"function": "long", "snapshot": sjf_snap} with sequoia.sjf_enabled as true
	not sequoia.priority.sjf with input as {"function": "new", "snapshot": sjf_snap} with sequoia.sjf_enabled as true
}

test_sjf_off_as_shipped if {
	not sequoia.priority.sjf with input as {"function": "short", "snapshot": sjf_snap}
}
