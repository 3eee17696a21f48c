# The decision sequoia asks for once per invocation: data.sequoia.decision.
#
# This file holds no policy of its own: it merges what the other files in
# package sequoia contribute, so that policies compose. A policy speaks in
# one of two ways:
#
#   deny contains REASON                  any reason denies (403); reasons are joined
#   contribution.NAME := {FIELD: VALUE, ...}
#
# NAME is the policy's own key (its file's name, or the name and a suffix
# when one file contributes under separate conditions), so that two
# policies never conflict; one policy's rules for one key must not both
# hold for the same input. A contribution holds only the fields the policy
# has something to say about, merged across policies field by field:
#
#   class                "batch" wins over "interactive"; any other class
#                        only when a single policy names one
#   priority             contributions are added
#   concurrency_cap      the smallest wins
#   chain_deadline_ms    the smallest wins
#   chain_steps          the largest wins
#   queue_timeout_ms     the smallest wins
#   idempotent           true if any says true
#   prewarm              the largest wins
#
# A field no policy contributes is left out of the decision, and sequoia
# falls back to its configuration. A field only one policy contributes
# is taken as it is. Any other field (a misspelt one, or allow and
# reason, which only deny decides) reaches the decision too (as the list
# of what was contributed when several policies contribute), so that the
# schema check refuses it instead of ignoring it. Constants are prefixed with the policy's name,
# since every file shares the package.
#
# Why one rule: OPA evaluates each rule, and each partial document, at a
# cost of its own on every decision, so the merge reads the contributions
# once and visits only the fields that some policy set.
package sequoia

# Read through data. so that this file compiles when no policy denies or
# contributes: an absent document iterates as empty.
decision := object.union_n([{"allow": count(reasons) == 0}, reason, single, several]) if {
	reasons := {r | some r in data.sequoia.deny}
	reason := {"reason": concat("; ", reasons) | count(reasons) > 0}
	contributions := [c | some c in data.sequoia.contribution]
	# One contribution (the usual case) is the merge of itself, and is
	# taken whole: merging field by field costs a rule per field. The
	# slice is the contribution when there is one, and empty otherwise
	# (its end, 2 - n, is 1, then 0 or less): cheaper than a comprehension.
	single := object.union_n(array.slice(contributions, 0, 2 - count(contributions)))
	several := {field: _merge(field, values) |
		count(contributions) > 1
		some field in {f | some c in contributions; some f, _ in c}
		values := [v | some c in contributions; v := c[field]]
	}
}

_merge("class", cs) := "batch" if "batch" in cs

_merge("class", cs) := cs[0] if {
	count(cs) == 1
	cs[0] != "batch"
}

_merge("priority", ns) := sum(ns)

_merge("concurrency_cap", ns) := min(ns)

_merge("chain_deadline_ms", ns) := min(ns)

_merge("chain_steps", ns) := max(ns)

_merge("queue_timeout_ms", ns) := min(ns)

_merge("idempotent", bs) := true in bs

_merge("prewarm", ns) := max(ns)

_merge(field, vs) := vs if {
	not field in {"class", "priority", "concurrency_cap", "chain_deadline_ms", "chain_steps", "queue_timeout_ms", "idempotent", "prewarm"}
}
