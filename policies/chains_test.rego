package sequoia_test

import data.sequoia

# fair_share is what sequoia derives: limit ÷ tenants in flight.
chains_snap := {"limit": 10, "fair_share": 5, "tenants": {"a": {"in_flight": 6}, "b": {"in_flight": 1}}}

test_chains_continuation_outranks_first_steps if {
	sequoia.contribution.chains == {"priority": sequoia.chains_continuation_boost} with input as {"tenant": "a", "step": 2, "snapshot": chains_snap}
}

test_chains_tenant_over_fair_share_yields if {
	sequoia.contribution.chains == {"priority": sequoia.chains_over_share_priority} with input as {"tenant": "a", "step": 1, "snapshot": chains_snap}
}

test_chains_tenant_under_fair_share_untouched if {
	not sequoia.contribution.chains with input as {"tenant": "b", "step": 1, "snapshot": chains_snap}
}

test_chains_single_tenant_has_the_whole_platform if {
	not sequoia.contribution.chains with input as {"tenant": "a", "step": 1, "snapshot": {"limit": 10, "tenants": {"a": {"in_flight": 10}}}}
}

test_chains_tenant_exactly_at_fair_share_yields if {
	sequoia.contribution.chains == {"priority": sequoia.chains_over_share_priority} with input as {"tenant": "a", "step": 1, "snapshot": {"limit": 10, "fair_share": 5, "tenants": {"a": {"in_flight": 5}, "b": {"in_flight": 5}}}}
}
