# The decision sequoia asks for once per invocation: data.sequoia.decision.
#
# This file holds no policy of its own: it merges what the other files in
# package sequoia contribute, so that policies compose. Each policy adds
# its share to one of the rules below under its own key (the file's name):
#
#   deny contains REASON                  any reason denies (403); reasons are joined
#   class.NAME := "interactive"|"batch"   "batch" wins over "interactive"
#   priority.NAME := N                    contributions are added
#   concurrency_cap.NAME := N             the smallest wins
#   chain_deadline_ms.NAME := N           the smallest wins
#   chain_steps.NAME := N                 the largest wins
#   queue_timeout_ms.NAME := N            the smallest wins
#   idempotent.NAME := BOOL               true if any says true
#   prewarm.NAME := N                     the largest wins
#
# A field no policy contributes is left out of the decision, and sequoia
# falls back to its configuration. Keys are per policy so that two
# policies never conflict; one policy's rules for one key must not both
# hold for the same input. Constants are prefixed with the policy's name,
# since every file shares the package.
package sequoia

# Each contribution exists, empty, even when no policy adds to it.
deny contains "" if false

class[k] := "" if {
	false
	k := ""
}

priority[k] := 0 if {
	false
	k := ""
}

concurrency_cap[k] := 0 if {
	false
	k := ""
}

chain_deadline_ms[k] := 0 if {
	false
	k := ""
}

chain_steps[k] := 0 if {
	false
	k := ""
}

queue_timeout_ms[k] := 0 if {
	false
	k := ""
}

idempotent[k] := false if {
	false
	k := ""
}

prewarm[k] := 0 if {
	false
	k := ""
}

# The decision is built field by field: a field whose rule does not hold
# is absent.
decision.allow := count(deny) == 0

decision.reason := concat("; ", deny) if count(deny) > 0

decision.class := "batch" if {
	some "batch" in class
} else := c if {
	count(class) == 1
	some c in class
}

# min and max of nothing are undefined, hence the count guards.

decision.priority := sum([n | some n in priority]) if count(priority) > 0

decision.concurrency_cap := min([n | some n in concurrency_cap]) if count(concurrency_cap) > 0

decision.chain_deadline_ms := min([n | some n in chain_deadline_ms]) if count(chain_deadline_ms) > 0

decision.chain_steps := max([n | some n in chain_steps]) if count(chain_steps) > 0

decision.queue_timeout_ms := min([n | some n in queue_timeout_ms]) if count(queue_timeout_ms) > 0

decision.prewarm := max([n | some n in prewarm]) if count(prewarm) > 0

decision.idempotent := true if {
	some true in idempotent
} else := false if count(idempotent) > 0
