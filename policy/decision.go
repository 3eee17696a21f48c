package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decision is what the policy answered for one invocation. Every field is
// optional: a zero value (or a nil pointer) means the policy said nothing
// and sequoia falls back to its configuration.
//
// A Decision returned by Engine.Decide may be shared with other callers
// through the decision cache: read it, never modify it.
type Decision struct {
	// Deny refuses the invocation; Reason says why (answered to the
	// client in a 403 body).
	Deny   bool
	Reason string
	// Class is the scheduling class ("interactive", "batch").
	Class string
	// Priority orders invocations inside a class: higher goes first.
	Priority *int
	// ConcurrencyCap bounds the invocations of this function in flight.
	ConcurrencyCap int
	// ChainDeadline is the chain's whole budget, ChainSteps how many
	// invocations the chain will make; both matter on a chain's first
	// step.
	ChainDeadline time.Duration
	ChainSteps    int
	// QueueTimeout bounds this invocation's wait for a worker slot.
	QueueTimeout time.Duration
	// Idempotent says the invocation may be retried safely.
	Idempotent *bool
	// Prewarm asks the warm pool to keep this many instances warm.
	Prewarm int
}

// Decision fields as a policy writes them in data.sequoia.decision.
const (
	fieldAllow         = "allow"
	fieldReason        = "reason"
	fieldClass         = "class"
	fieldPriority      = "priority"
	fieldCap           = "concurrency_cap"
	fieldDeadline      = "chain_deadline_ms"
	fieldSteps         = "chain_steps"
	fieldQueueTimeout  = "queue_timeout_ms"
	fieldIdempotent    = "idempotent"
	fieldPrewarm       = "prewarm"
	maxDecisionInteger = 1 << 31
)

var decisionFields = []string{fieldAllow, fieldReason, fieldClass, fieldPriority, fieldCap,
	fieldDeadline, fieldSteps, fieldQueueTimeout, fieldIdempotent, fieldPrewarm}

// DefaultClasses are the classes a decision may name unless the engine is
// told otherwise.
var DefaultClasses = []string{"interactive", "batch"}

// decode checks a decision document against the schema and converts it.
// It reads OPA's value directly, so that a decision costs no conversion
// to Go maps.
func decode(v ast.Value, classes []string) (Decision, error) {
	var d Decision
	obj, ok := v.(ast.Object)
	if !ok {
		return d, fmt.Errorf("decision must be an object, got %s", ast.ValueName(v))
	}
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("decision.%s: "+format, append([]any{field}, args...)...))
	}
	hasAllow := false
	obj.Foreach(func(kt, xt *ast.Term) {
		ks, ok := kt.Value.(ast.String)
		if !ok {
			errs = append(errs, fmt.Errorf("decision: key %v is not a string", kt))
			return
		}
		k, x := string(ks), xt.Value
		switch k {
		case fieldAllow:
			b, ok := x.(ast.Boolean)
			if !ok {
				bad(k, "must be a boolean, got %s", ast.ValueName(x))
			}
			hasAllow = true
			d.Deny = !bool(b)
		case fieldReason:
			s, ok := x.(ast.String)
			if !ok {
				bad(k, "must be a string, got %s", ast.ValueName(x))
			}
			d.Reason = string(s)
		case fieldClass:
			s, ok := x.(ast.String)
			switch {
			case !ok:
				bad(k, "must be a string, got %s", ast.ValueName(x))
			case !slices.Contains(classes, string(s)):
				bad(k, "%q is not a class (known: %s)", string(s), strings.Join(classes, ", "))
			default:
				d.Class = string(s)
			}
		case fieldPriority:
			if n, err := integer(x, -maxDecisionInteger); err != nil {
				bad(k, "%v", err)
			} else {
				p := int(n)
				d.Priority = &p
			}
		case fieldCap, fieldSteps, fieldPrewarm, fieldDeadline, fieldQueueTimeout:
			n, err := integer(x, 0)
			if err != nil {
				bad(k, "%v", err)
				return
			}
			switch k {
			case fieldCap:
				d.ConcurrencyCap = int(n)
			case fieldSteps:
				d.ChainSteps = int(n)
			case fieldPrewarm:
				d.Prewarm = int(n)
			case fieldDeadline:
				d.ChainDeadline = time.Duration(n) * time.Millisecond
			default:
				d.QueueTimeout = time.Duration(n) * time.Millisecond
			}
		case fieldIdempotent:
			b, ok := x.(ast.Boolean)
			if !ok {
				bad(k, "must be a boolean, got %s", ast.ValueName(x))
			} else {
				v := bool(b)
				d.Idempotent = &v
			}
		default:
			errs = append(errs, fmt.Errorf("decision.%s: unknown field (known: %s)", k, strings.Join(decisionFields, ", ")))
		}
	})
	if d.Reason != "" && !hasAllow {
		// A reason without allow is almost always a policy that meant
		// to deny and forgot "allow": false.
		bad(fieldReason, "given without \"allow\"")
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return Decision{}, errors.Join(errs...)
	}
	return d, nil
}

// integer reads a whole number in [lo, 2^31) from a decision field.
func integer(x ast.Value, lo int64) (int64, error) {
	n, ok := x.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("must be a number, got %s", ast.ValueName(x))
	}
	if i, ok := n.Int64(); ok {
		if i < lo || i >= maxDecisionInteger {
			return 0, fmt.Errorf("%d is out of range [%d, %d)", i, lo, int64(maxDecisionInteger))
		}
		return i, nil
	}
	f, ok := n.Float64()
	if !ok || f != math.Trunc(f) {
		return 0, fmt.Errorf("must be a whole number, got %v", n)
	}
	if f < float64(lo) || f >= maxDecisionInteger {
		return 0, fmt.Errorf("%v is out of range [%d, %d)", n, lo, int64(maxDecisionInteger))
	}
	return int64(f), nil
}

// DecodeDecision parses a decision document in JSON (the shape of
// data.sequoia.decision) and checks it against the schema.
func DecodeDecision(data []byte, classes []string) (Decision, error) {
	if classes == nil {
		classes = DefaultClasses
	}
	v, err := jsonValue(data)
	if err != nil {
		return Decision{}, fmt.Errorf("decision: %w", err)
	}
	return decode(v, classes)
}

// MarshalJSON writes d in the schema's shape, leaving out what the policy
// did not say.
func (d Decision) MarshalJSON() ([]byte, error) {
	m := map[string]any{fieldAllow: !d.Deny}
	if d.Reason != "" {
		m[fieldReason] = d.Reason
	}
	if d.Class != "" {
		m[fieldClass] = d.Class
	}
	if d.Priority != nil {
		m[fieldPriority] = *d.Priority
	}
	if d.ConcurrencyCap != 0 {
		m[fieldCap] = d.ConcurrencyCap
	}
	if d.ChainDeadline != 0 {
		m[fieldDeadline] = d.ChainDeadline.Milliseconds()
	}
	if d.ChainSteps != 0 {
		m[fieldSteps] = d.ChainSteps
	}
	if d.QueueTimeout != 0 {
		m[fieldQueueTimeout] = d.QueueTimeout.Milliseconds()
	}
	if d.Idempotent != nil {
		m[fieldIdempotent] = *d.Idempotent
	}
	if d.Prewarm != 0 {
		m[fieldPrewarm] = d.Prewarm
	}
	return json.Marshal(m)
}
