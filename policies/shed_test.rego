package sequoia_test

import data.sequoia

shed_slow := {"classes": {"interactive": {"wait_p99_ms": 500}}}

shed_fast := {"classes": {"interactive": {"wait_p99_ms": 20}}}

test_shed_new_batch_chain_while_interactive_waits if {
	d := sequoia.decision with input as {"class": "batch", "step": 1, "snapshot": shed_slow}
		with sequoia.shed_enabled as true
		with sequoia.shed_threshold_ms as 200
	d.allow == false
	d.reason == "batch work is shed while the interactive queue wait p99 (500ms) exceeds 200ms"
}

test_shed_not_when_interactive_is_fast if {
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 1, "snapshot": shed_fast}
		with sequoia.shed_enabled as true
		with sequoia.shed_threshold_ms as 200
}

test_shed_never_interactive_nor_continuations if {
	count(sequoia.deny) == 0 with input as {"class": "interactive", "step": 1, "snapshot": shed_slow}
		with sequoia.shed_enabled as true
		with sequoia.shed_threshold_ms as 200
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 2, "snapshot": shed_slow}
		with sequoia.shed_enabled as true
		with sequoia.shed_threshold_ms as 200
}

test_shed_off_when_disabled if {
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 1, "snapshot": shed_slow}
		with sequoia.shed_enabled as false
}

slo_burning := {"slos": {"checkout": {"burning": true, "budget_remaining": 0.4}}}

slo_calm := {"slos": {"checkout": {"burning": false, "budget_remaining": 0.9}}}

test_shed_batch_while_an_objective_burns if {
	d := sequoia.decision with input as {"class": "batch", "step": 1, "snapshot": slo_burning}
		with sequoia.shed_on_slos as {"checkout"}
	d.allow == false
	d.reason == "batch work is shed while the objective checkout burns its error budget"
}

test_shed_on_slos_spares_interactive_continuations_and_calm_objectives if {
	count(sequoia.deny) == 0 with input as {"class": "interactive", "step": 1, "snapshot": slo_burning}
		with sequoia.shed_on_slos as {"checkout"}
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 2, "snapshot": slo_burning}
		with sequoia.shed_on_slos as {"checkout"}
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 1, "snapshot": slo_calm}
		with sequoia.shed_on_slos as {"checkout"}
	count(sequoia.deny) == 0 with input as {"class": "batch", "step": 1, "snapshot": slo_burning}
}
