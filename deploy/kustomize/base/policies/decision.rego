# The decision sequoia asks for once per invocation: data.sequoia.decision.
#
# This file owns no policy of its own. It merges what every policy under
# data.sequoia.policies contributes, so that policies compose: drop a file
# in SEQUOIA_POLICY_DIR (package sequoia.policies.NAME) and it takes part.
# A policy package may define any of these rules; what no policy defines is
# left out of the decision, and sequoia falls back to its configuration.
#
#   deny               set of reasons    any reason denies (403); reasons are joined
#   class              string            "batch" wins over "interactive"
#   priority           number            contributions are added
#   concurrency_cap    number            the smallest wins
#   chain_deadline_ms  number            the smallest wins
#   chain_steps        number            the largest wins
#   queue_timeout_ms   number            the smallest wins
#   idempotent         boolean           true if any policy says true
#   prewarm            number            the largest wins
package sequoia

decision := object.union_n([
	_allow,
	_class,
	_priority,
	_cap,
	_deadline,
	_chain_steps,
	_queue_timeout,
	_idempotent,
	_prewarm,
])

reasons := {r | some r in data.sequoia.policies[_].deny}

_allow := {"allow": false, "reason": concat("; ", reasons)} if {
	count(reasons) > 0
} else := {"allow": true}

_classes := {c | c := data.sequoia.policies[_].class}

_class := {"class": "batch"} if {
	"batch" in _classes
} else := {"class": c} if {
	count(_classes) == 1
	some c in _classes
} else := {}

_priorities := [p | p := data.sequoia.policies[_].priority]

_priority := {"priority": sum(_priorities)} if count(_priorities) > 0 else := {}

# min and max of an empty array are undefined, hence the count guards.

_caps := [n | n := data.sequoia.policies[_].concurrency_cap]

_cap := {"concurrency_cap": min(_caps)} if count(_caps) > 0 else := {}

_deadlines := [n | n := data.sequoia.policies[_].chain_deadline_ms]

_deadline := {"chain_deadline_ms": min(_deadlines)} if count(_deadlines) > 0 else := {}

_steps := [n | n := data.sequoia.policies[_].chain_steps]

_chain_steps := {"chain_steps": max(_steps)} if count(_steps) > 0 else := {}

_queue_timeouts := [n | n := data.sequoia.policies[_].queue_timeout_ms]

_queue_timeout := {"queue_timeout_ms": min(_queue_timeouts)} if count(_queue_timeouts) > 0 else := {}

_prewarms := [n | n := data.sequoia.policies[_].prewarm]

_prewarm := {"prewarm": max(_prewarms)} if count(_prewarms) > 0 else := {}

_idempotents := {b | b := data.sequoia.policies[_].idempotent}

_idempotent := {"idempotent": true} if {
	true in _idempotents
} else := {"idempotent": false} if {
	false in _idempotents
} else := {}
