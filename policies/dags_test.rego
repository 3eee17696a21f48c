package sequoia_test

import data.sequoia

test_dags_new_dag_allowed if {
	sequoia.dag_allowed with input as {"action": "put", "dag": "checkout", "caller": "shop", "owner": "", "exists": false, "functions": ["shop/pay"], "tenants": ["shop"]}
}

test_dags_owner_may_replace if {
	sequoia.dag_allowed with input as {"action": "put", "dag": "checkout", "caller": "shop", "owner": "shop", "exists": true, "functions": [], "tenants": []}
}

test_dags_other_caller_may_not_replace if {
	not sequoia.dag_allowed with input as {"action": "put", "dag": "checkout", "caller": "mallory", "owner": "shop", "exists": true, "functions": ["steal"], "tenants": []}
	sequoia.dag_deny == {`DAG "checkout" belongs to "shop": only its owner or a caller in dags_admins may replace it`} with input as {"action": "put", "dag": "checkout", "caller": "mallory", "owner": "shop", "exists": true, "functions": [], "tenants": []}
}

test_dags_other_caller_may_not_delete if {
	not sequoia.dag_allowed with input as {"action": "delete", "dag": "checkout", "caller": "mallory", "owner": "shop", "exists": true, "functions": [], "tenants": []}
}

test_dags_admin_may_replace if {
	sequoia.dag_allowed with input as {"action": "put", "dag": "checkout", "caller": "ops", "owner": "shop", "exists": true, "functions": [], "tenants": []}
		with sequoia.dags_admins as {"ops"}
}

test_dags_dir_dag_open_to_token_holders if {
	sequoia.dag_allowed with input as {"action": "put", "dag": "nightly", "caller": "ci", "owner": "", "exists": true, "functions": [], "tenants": []}
}

test_dags_tenants_restrict_functions if {
	not sequoia.dag_allowed with input as {"action": "put", "dag": "d", "caller": "shop", "owner": "", "exists": false, "functions": ["shop/pay", "bank/move"], "tenants": ["bank", "shop"]}
		with sequoia.dags_tenants as {"shop": {"shop"}}
	sequoia.dag_deny == {`caller "shop" may not invoke functions of tenant "bank" (dags_tenants)`} with input as {"action": "put", "dag": "d", "caller": "shop", "owner": "", "exists": false, "functions": [], "tenants": ["bank", "shop"]}
		with sequoia.dags_tenants as {"shop": {"shop"}}
	sequoia.dag_allowed with input as {"action": "put", "dag": "d", "caller": "shop", "owner": "", "exists": false, "functions": ["shop/pay"], "tenants": ["shop"]}
		with sequoia.dags_tenants as {"shop": {"shop"}}
}
