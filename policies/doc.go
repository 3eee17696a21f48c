// Package policies holds the Rego policies sequoia ships and uses when
// SEQUOIA_POLICY_DIR is not set, embedded in the binary, with their Rego
// unit tests (*_test.rego), which `go test` runs through OPA's tester and
// `opa test .` accepts as they are.
//
// decision.rego defines data.sequoia.decision by merging what each policy
// package under data.sequoia.policies contributes (deny reasons, class,
// priority, caps, chain deadline and steps, queue timeout, idempotency,
// pre-warm); each other file is one small policy:
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
// validates and tests the result.
package policies

import "embed"

// FS holds the shipped .rego files, tests included.
//
//go:embed *.rego
var FS embed.FS
