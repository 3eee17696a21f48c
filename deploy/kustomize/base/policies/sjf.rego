# Shortest job first, from observed durations.
#
# Functions whose observed median duration (p50) is short get a priority
# bonus, so that short invocations do not wait behind long ones: this
# lowers the mean wait when the queue holds mixed work. Functions not yet
# observed get none. Off as shipped: set sjf_enabled.
package sequoia

sjf_enabled := false

# The bonus of a function whose p50 is below each bound; the largest
# that applies is taken.
sjf_bonuses := [
	{"below_ms": 50, "priority": 30},
	{"below_ms": 500, "priority": 20},
	{"below_ms": 5000, "priority": 10},
]

contribution.sjf := {"priority": max(applicable)} if {
	sjf_enabled
	p50 := input.snapshot.functions[input.function].p50_ms
	applicable := [b.priority | some b in sjf_bonuses; p50 < b.below_ms]
	count(applicable) > 0
}
