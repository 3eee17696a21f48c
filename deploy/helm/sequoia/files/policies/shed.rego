# Shed batch work while interactive callers wait too long.
#
# While the interactive class's p99 queue wait exceeds shed_threshold_ms,
# new batch chains are refused, so that a background flood cannot push
# synchronous callers past their patience. Continuations of batch chains
# already running are never shed: dropping a chain half-way wastes the
# work it has done. Off as shipped: set shed_enabled.
package sequoia

shed_enabled := false

shed_threshold_ms := 200

deny contains msg if {
	shed_enabled
	input.class == "batch"
	input.step <= 1
	wait := input.snapshot.classes.interactive.wait_p99_ms
	wait > shed_threshold_ms
	msg := sprintf("batch work is shed while the interactive queue wait p99 (%vms) exceeds %vms", [wait, shed_threshold_ms])
}

# Shed batch work while an objective burns its error budget.
#
# shed_on_slos names service-level objectives (SEQUOIA_SLO_FILE): while a
# burn-rate alert of any of them fires (input.snapshot.slos[name].burning),
# new batch chains are refused, so that the budget an interactive
# objective has left goes to interactive work. Empty as shipped: off.
shed_on_slos := set()

deny contains msg if {
	some name in shed_on_slos
	input.class == "batch"
	input.step <= 1
	input.snapshot.slos[name].burning
	msg := sprintf("batch work is shed while the objective %v burns its error budget", [name])
}
