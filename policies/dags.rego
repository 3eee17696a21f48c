# Who may register, replace and delete which DAG (PUT and DELETE
# /sequoia/v1/dags/{name}).
#
# sequoia asks this for every write whose caller presented a token of
# SEQUOIA_API_TOKEN_FILE (a write without one is refused before any policy
# is asked). The write is refused (403, with the reasons) unless
# data.sequoia.dag_allowed is true. input:
#
#   action     "put" (register or replace) or "delete"
#   dag        the DAG's name
#   caller     the token's name in SEQUOIA_API_TOKEN_FILE
#   owner      who registered the DAG now under that name; "" for none, or
#              one loaded from SEQUOIA_DAG_DIR
#   exists     whether a DAG is registered under that name
#   functions  the functions the new DAG's tasks invoke (put), as the data
#              port names them: OpenWhisk "ns/[pkg/]action", Lambda names
#   tenants    their tenants: OpenWhisk namespaces, Lambda ARN accounts
#
# As shipped, a DAG is its registering caller's: only its owner, or a
# caller in dags_admins, may replace or delete it. Each run's tasks still
# carry the runner's own credentials, so the platform checks every call.
package sequoia

# Callers who may replace or delete any DAG.
dags_admins := set()

# Caller → the tenants whose functions its DAGs may invoke. A caller not
# listed may name any.
dags_tenants := {}

default dag_allowed := false

# Read through data. so that this compiles when no reason holds.
dag_allowed if count({r | some r in data.sequoia.dag_deny}) == 0

dag_deny contains sprintf("DAG %q belongs to %q: only its owner or a caller in dags_admins may %s it", [input.dag, input.owner, _dags_verb[input.action]]) if {
	input.owner != ""
	input.owner != input.caller
	not input.caller in dags_admins
}

dag_deny contains sprintf("caller %q may not invoke functions of tenant %q (dags_tenants)", [input.caller, tenant]) if {
	allowed := dags_tenants[input.caller]
	some tenant in input.tenants
	not tenant in allowed
}

_dags_verb := {"put": "replace", "delete": "delete"}
