package sequoia_test

import data.sequoia

sjf_bonuses := [{"below_ms": 50, "priority": 30}, {"below_ms": 500, "priority": 20}]

sjf_snap := {"functions": {"short": {"p50_ms": 20}, "medium": {"p50_ms": 300}, "long": {"p50_ms": 60000}}}

test_sjf_shorter_jobs_get_more if {
	sequoia.contribution.sjf == {"priority": 30} with input as {"function": "short", "snapshot": sjf_snap}
		with sequoia.sjf_enabled as true
		with sequoia.sjf_bonuses as sjf_bonuses
	sequoia.contribution.sjf == {"priority": 20} with input as {"function": "medium", "snapshot": sjf_snap}
		with sequoia.sjf_enabled as true
		with sequoia.sjf_bonuses as sjf_bonuses
}

test_sjf_long_and_unobserved_get_nothing if {
	not sequoia.contribution.sjf with input as {"function": "long", "snapshot": sjf_snap}
		with sequoia.sjf_enabled as true
		with sequoia.sjf_bonuses as sjf_bonuses
	not sequoia.contribution.sjf with input as {"function": "new", "snapshot": sjf_snap}
		with sequoia.sjf_enabled as true
		with sequoia.sjf_bonuses as sjf_bonuses
}

test_sjf_off_when_disabled if {
	not sequoia.contribution.sjf with input as {"function": "short", "snapshot": sjf_snap}
		with sequoia.sjf_enabled as false
}
