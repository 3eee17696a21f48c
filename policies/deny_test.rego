package sequoia_test

import data.sequoia

test_deny_tenant_with_reason if {
	d := sequoia.decision with input as {"tenant": "acme", "function": "acme/f", "snapshot": {}}
		with sequoia.deny_tenants as {"acme": "over quota"}
	d == {"allow": false, "reason": `tenant "acme" is denied: over quota`}
}

test_deny_function if {
	sequoia.deny == {`function "old" is denied: retired`} with input as {"tenant": "x", "function": "old"}
		with sequoia.deny_functions as {"old": "retired"}
}

test_deny_others_allowed if {
	count(sequoia.deny) == 0 with input as {"tenant": "other", "function": "f"}
		with sequoia.deny_tenants as {"acme": "over quota"}
}
