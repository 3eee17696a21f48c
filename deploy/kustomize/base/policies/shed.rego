# Shed batch work while interactive callers wait too long.
#
# While the interactive class's p99 queue wait exceeds threshold_ms, new
# batch chains are refused, so that a background flood cannot push
# synchronous callers past their patience. Continuations of batch chains
# already running are never shed: dropping a chain half-way wastes the
# work it has done. Off as shipped: set enabled.
package sequoia.policies.shed

enabled := false

threshold_ms := 200

deny contains msg if {
	enabled
	input.class == "batch"
	input.step <= 1
	wait := input.snapshot.classes.interactive.wait_p99_ms
	wait > threshold_ms
	msg := sprintf("batch work is shed while the interactive queue wait p99 (%vms) exceeds %vms", [wait, threshold_ms])
}
