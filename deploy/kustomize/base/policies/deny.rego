# Deny a tenant or a function, with a reason.
#
# Requests of a denied tenant or for a denied function are answered 403
# with the reason in the body and never reach the platform. Empty as
# shipped.
package sequoia

# Tenant → reason.
deny_tenants := {}

# Function name → reason.
deny_functions := {}

deny contains sprintf("tenant %q is denied: %s", [input.tenant, reason]) if {
	reason := deny_tenants[input.tenant]
}

deny contains sprintf("function %q is denied: %s", [input.function, reason]) if {
	reason := deny_functions[input.function]
}
