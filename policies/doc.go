// Package policies holds the Rego policies sequoia ships and uses when
// SEQUOIA_POLICY_DIR is not set, embedded in the binary, with their Rego
// unit tests (*_test.rego), which `go test` runs through OPA's tester and
// `opa test .` accepts as they are.
//
// Every file is in package sequoia. decision.rego defines
// data.sequoia.decision by merging what the other files contribute: deny
// reasons (the set deny), and one object per policy under its own key,
// contribution.NAME := {FIELD: VALUE, ...}, whose fields (class,
// priority, concurrency_cap, chain_deadline_ms, chain_steps,
// queue_timeout_ms, idempotent, prewarm) are merged field by field, each
// by its own rule (priorities add, the smallest cap wins, ...). A new file
// composes with the shipped ones by adding to these; its constants are
// prefixed with its name, since the package is shared. The merge is one
// rule that reads the contributions once, because OPA's cost per decision
// grows with the rules and documents it visits.
// Each other file is one small policy:
//
//   - chains.rego: chains first, with fair share across tenants (on);
//   - caps.rego: per-function concurrency caps and strict function
//     priority (empty tables);
//   - sjf.rego: shortest job first from observed p50 durations (off);
//   - shed.rego: shed new batch chains while the interactive queue wait
//     p99 exceeds a threshold (off);
//   - functions.rego: per-function chain deadlines and step counts for
//     clients that cannot send headers (empty table);
//   - deny.rego: deny a tenant or a function with a reason (empty tables).
//
// To change one, copy this directory to SEQUOIA_POLICY_DIR and edit the
// constants at the top of the file; `sequoia policy check DIR` compiles,
// validates and tests the result. The tests (package sequoia_test) set
// those constants with `with`, so they keep passing after an edit.
package policies

import "embed"

// FS holds the shipped .rego files, tests included.
//
//go:embed *.rego
var FS embed.FS
