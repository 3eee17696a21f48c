package slo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/prometheus/common/model"
)

// Kind is what an objective measures.
type Kind string

// The objective kinds.
const (
	// Latency: the share of answered invocations (of a function, a
	// tenant, or all) whose time from arrival at sequoia to the answer,
	// queue wait included, is within ThresholdMs: "99% under 300 ms" is
	// percentile 99 with threshold_ms 300.
	Latency Kind = "latency"
	// Success: the share of invocations that succeeded: the platform
	// answered and the function did not fail. Requests sequoia refused on
	// purpose (queue full, a chain refused at entry, a policy's deny) and
	// callers that left are not counted either way.
	Success Kind = "success"
	// Chains: the share of admitted chains (and DAG runs) that were not
	// dropped (qos.ChainOutcome.Dropped), of a class, a function, a
	// tenant, or all.
	Chains Kind = "chains"
)

// Objective is one service-level objective, as declared.
type Objective struct {
	// Name names it in metrics, alerts and the status; unique, 1 to 64
	// letters, digits, '_' and '-'.
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Function and Tenant select the invocations counted (latency and
	// success), or the chains (by their first request's function, a DAG
	// run's name, and tenant); empty: any. Class selects chains
	// ("interactive", "batch"); empty: any.
	Function string `json:"function,omitempty"`
	Tenant   string `json:"tenant,omitempty"`
	Class    string `json:"class,omitempty"`
	// Target is the share of good events the objective promises
	// (0.999); a latency objective may give Percentile (99.9) instead.
	Target     float64 `json:"target,omitempty"`
	Percentile float64 `json:"percentile,omitempty"`
	// ThresholdMs is a latency objective's bound.
	ThresholdMs float64 `json:"threshold_ms,omitempty"`
	// Window is the period the objective holds over, a Prometheus
	// duration ("30d", "7d", "1h"); default 30d. The alerts' windows are
	// the SRE workbook's for 30 days (1h, 6h, 1d, 3d with 5m, 30m, 2h,
	// 6h), scaled to it.
	Window string `json:"window,omitempty"`
	// Labels are added to the objective's alerts (team, service, ...).
	Labels map[string]string `json:"labels,omitempty"`

	window time.Duration
}

// File is an objectives file (SEQUOIA_SLO_FILE).
type File struct {
	Objectives []Objective `json:"objectives"`
}

// ErrInvalid is what every error about a bad objective wraps.
var ErrInvalid = errors.New("invalid objective")

// Parse reads an objectives file's JSON and checks it. Errors name the
// objective and the field.
func Parse(b []byte) ([]Objective, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data", ErrInvalid)
	}
	seen := map[string]bool{}
	for i := range f.Objectives {
		o := &f.Objectives[i]
		if err := o.check(); err != nil {
			return nil, fmt.Errorf("%w: objectives[%d] (%q): %v", ErrInvalid, i, o.Name, err)
		}
		if seen[o.Name] {
			return nil, fmt.Errorf("%w: objectives[%d]: name %q used twice", ErrInvalid, i, o.Name)
		}
		seen[o.Name] = true
	}
	return f.Objectives, nil
}

// Load reads the objectives file at path.
func Load(path string) ([]Objective, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (o *Objective) check() error {
	if !validName(o.Name) {
		return errors.New("name: 1 to 64 letters, digits, '_' and '-'")
	}
	switch o.Kind {
	case Latency:
		if o.ThresholdMs <= 0 {
			return errors.New("threshold_ms: a latency objective needs a positive bound")
		}
		if o.Percentile != 0 {
			if o.Target != 0 {
				return errors.New("give percentile or target, not both")
			}
			o.Target = o.Percentile / 100
		}
	case Success, Chains:
		if o.ThresholdMs != 0 || o.Percentile != 0 {
			return fmt.Errorf("threshold_ms and percentile are for latency objectives, not %s", o.Kind)
		}
	default:
		return fmt.Errorf("kind %q: want latency, success or chains", o.Kind)
	}
	if !(o.Target > 0 && o.Target < 1) {
		return errors.New("target: a share between 0 and 1, exclusive (0.999), or percentile for latency (99.9)")
	}
	if o.Kind != Chains && o.Class != "" {
		return errors.New("class is for chains objectives")
	}
	if o.Class != "" && o.Class != "interactive" && o.Class != "batch" {
		return fmt.Errorf("class %q: want interactive or batch", o.Class)
	}
	o.window = 30 * 24 * time.Hour
	if o.Window != "" {
		d, err := model.ParseDuration(o.Window)
		if err != nil || d <= 0 {
			return fmt.Errorf("window %q: a positive Prometheus duration (30d, 7d, 1h)", o.Window)
		}
		o.window = time.Duration(d)
	}
	if o.window < time.Minute {
		return errors.New("window: at least 1m")
	}
	for _, k := range slices.Sorted(maps.Keys(o.Labels)) {
		if !labelName(k) || k == "alertname" || k == "slo" || k == "severity" || k == "kind" {
			return fmt.Errorf("labels: %q is not a label name of its own", k)
		}
	}
	return nil
}

// labelName reports whether s is a Prometheus label name in the classic
// character set (what every receiver accepts).
func labelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
