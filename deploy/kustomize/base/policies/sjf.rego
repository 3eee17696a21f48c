# Shortest job first, from observed durations.
#
# Functions whose observed median duration (p50) is short get a priority
# bonus, so that short invocations do not wait behind long ones: this
# lowers mean waiting time when the queue is full of mixed work.
# Functions not yet observed get no bonus. Off as shipped: set enabled.
package sequoia.policies.sjf

enabled := false

# The bonus of a function whose p50 is below each bound; the largest
# bonus that applies is taken.
bonuses := [
	{"below_ms": 50, "priority": 30},
	{"below_ms": 500, "priority": 20},
	{"below_ms": 5000, "priority": 10},
]

priority := max(applicable) if {
	enabled
	p50 := input.snapshot.functions[input.function].p50_ms
	applicable := [b.priority | some b in bonuses; p50 < b.below_ms]
	count(applicable) > 0
}
