# sequoia's policies, shipped in the sequoia-policies ConfigMap and mounted
# at SEQUOIA_POLICY_DIR. Edit the ConfigMap and sequoia reloads them while
# serving (the kubelet swaps the files within about a minute); a file that
# does not compile or validate leaves the running policy in place and is
# counted and logged.
#
# sequoia queries data.sequoia.decision once per invocation. Every field of
# the decision is optional: what a policy leaves out falls back to the
# SEQUOIA_* configuration. This file only refuses suspended tenants, so out
# of the box scheduling is sequoia's default (chains first, fair share).
package sequoia

import rego.v1

# Tenants refused with 403 and a reason.
suspended_tenants := {"suspended-example"}

default decision := {}

decision := {"allow": false, "reason": sprintf("tenant %s is suspended", [input.invocation.tenant])} if {
	input.invocation.tenant in suspended_tenants
}
