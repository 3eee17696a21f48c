package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Input is what a policy knows of one invocation: names and scheduling
// headers, never the request body or credentials. Policies read it as
// input.function, input.tenant, ... beside input.snapshot.
type Input struct {
	Function string `json:"function"`
	Tenant   string `json:"tenant"`
	// Platform is openwhisk, lambda or http.
	Platform string `json:"platform"`
	// Class is the class the request asked for (X-Sequoia-Priority) or,
	// without one, the configured default.
	Class string `json:"class"`
	// ChainID is X-Sequoia-Chain-Id, given or assigned.
	ChainID string `json:"chain_id"`
	// Step is the invocation's place in its chain: 1 for a chain's first
	// request, 2 and more for continuations, 0 when unknown.
	Step int `json:"step"`
	// ChainDeadline is X-Sequoia-Deadline-Ms, 0 when absent; ChainSteps
	// is X-Sequoia-Chain-Steps, 0 when absent.
	ChainDeadline time.Duration `json:"-"`
	ChainSteps    int           `json:"chain_steps"`
	// Type is "sync" (the caller waits for the result) or "async".
	Type string `json:"type"`
}

// Snapshot is the live state of the proxy that policies read as
// input.snapshot. A provider fills it at a fixed interval; the engine
// converts it to OPA's value type once per refresh.
type Snapshot struct {
	// InFlight counts invocations at the platform; Limit is the effective
	// concurrency limit.
	InFlight int `json:"in_flight"`
	Limit    int `json:"limit"`
	// ThrottleRate and ErrorRate are the shares (0..1) of recent platform
	// answers that were throttles (429) and errors (5xx).
	ThrottleRate float64 `json:"throttle_rate"`
	ErrorRate    float64 `json:"error_rate"`
	// Queues is the depth of each queue ("pending", "chain_running") per
	// class.
	Queues map[string]map[string]int `json:"queues"`
	// Classes holds per-class queue statistics.
	Classes map[string]ClassStats `json:"classes"`
	// Functions and Tenants hold per-function and per-tenant statistics,
	// for those with recent activity.
	Functions map[string]FunctionStats `json:"functions"`
	Tenants   map[string]TenantStats   `json:"tenants"`
	// FairShare is each tenant's fair share of the limit: Limit divided by
	// the number of Tenants, when two or more have work in flight (absent
	// otherwise: a tenant alone has the whole platform). Derived when the
	// snapshot is converted, so that a policy compares instead of doing
	// arithmetic, which costs OPA microseconds per decision.
	FairShare float64 `json:"fair_share,omitempty"`
	// SLOs holds each service-level objective's state at its last
	// evaluation, by name (SEQUOIA_SLO_FILE), so that a policy can act on
	// it: shed batch work while an interactive objective burns.
	SLOs map[string]SLOStats `json:"slos"`
}

// SLOStats is an objective's state as policies read it.
type SLOStats struct {
	// Burning is true while a burn-rate alert fires (the budget goes
	// faster than the objective can afford); Breached while the budget
	// over the whole window is spent.
	Burning  bool `json:"burning"`
	Breached bool `json:"breached"`
	// BudgetRemaining is the share of the error budget left (below 0:
	// overspent); SLI the share of good events over the window.
	BudgetRemaining float64 `json:"budget_remaining"`
	SLI             float64 `json:"sli"`
	// BurnRates maps each alert window ("1h", "5m", ... scaled to the
	// objective's window) to its burn rate.
	BurnRates map[string]float64 `json:"burn_rates"`
	// Alerts are the alerts firing.
	Alerts []string `json:"alerts"`
}

// ClassStats is one class's recent queue behaviour.
type ClassStats struct {
	Queued    int     `json:"queued"`
	WaitP99Ms float64 `json:"wait_p99_ms"`
	InFlight  int     `json:"in_flight"`
}

// FunctionStats is one function's recent behaviour.
type FunctionStats struct {
	InFlight      int     `json:"in_flight"`
	P50Ms         float64 `json:"p50_ms"`
	P99Ms         float64 `json:"p99_ms"`
	ColdStartRate float64 `json:"cold_start_rate"`
}

// TenantStats is one tenant's share of the platform.
type TenantStats struct {
	InFlight int `json:"in_flight"`
}

// Derive fills the fields derived from the others (FairShare), as the
// engine does when it converts a snapshot; a value already set stays.
func (s *Snapshot) Derive() {
	if s.FairShare == 0 && len(s.Tenants) > 1 && s.Limit > 0 {
		s.FairShare = float64(s.Limit) / float64(len(s.Tenants))
	}
}

// SnapshotFunc fills a snapshot of the live state. It is called from one
// goroutine at the engine's refresh interval.
type SnapshotFunc func() Snapshot

// value converts the snapshot to an OPA value. It runs once per refresh,
// so it favours clarity over speed.
func (s *Snapshot) value() (ast.Value, error) {
	c := *s
	// Absent maps become empty objects, so that policies can iterate
	// them without a null check.
	if c.Queues == nil {
		c.Queues = map[string]map[string]int{}
	}
	if c.Classes == nil {
		c.Classes = map[string]ClassStats{}
	}
	if c.Functions == nil {
		c.Functions = map[string]FunctionStats{}
	}
	if c.Tenants == nil {
		c.Tenants = map[string]TenantStats{}
	}
	if c.SLOs == nil {
		c.SLOs = map[string]SLOStats{}
	}
	c.Derive()
	raw, err := json.Marshal(&c)
	if err != nil {
		return nil, err
	}
	return jsonValue(raw)
}

func jsonValue(raw []byte) (ast.Value, error) {
	var x any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	v, err := ast.InterfaceToValue(x)
	if err != nil {
		return nil, err
	}
	// Values are shared by concurrent evaluations: settle anything OPA
	// computes lazily before they see it.
	_ = v.Hash()
	_ = v.String()
	return v, nil
}

// Input field names, which are also the keys of input in Rego.
const (
	inFunction = "function"
	inTenant   = "tenant"
	inPlatform = "platform"
	inClass    = "class"
	inChainID  = "chain_id"
	inStep     = "step"
	inDeadline = "chain_deadline_ms"
	inSteps    = "chain_steps"
	inType     = "type"
	inSnapshot = "snapshot"
)

var (
	keyFunction = ast.StringTerm(inFunction)
	keyTenant   = ast.StringTerm(inTenant)
	keyPlatform = ast.StringTerm(inPlatform)
	keyClass    = ast.StringTerm(inClass)
	keyChainID  = ast.StringTerm(inChainID)
	keyStep     = ast.StringTerm(inStep)
	keyDeadline = ast.StringTerm(inDeadline)
	keySteps    = ast.StringTerm(inSteps)
	keyType     = ast.StringTerm(inType)
	keySnapshot = ast.StringTerm(inSnapshot)
)

// value builds the OPA input document around an already converted
// snapshot: a handful of small terms per decision, only for the fields u
// says the policy reads (a field it never reads cannot change its
// decision; analyse counts any read it cannot resolve as reading all).
func (in *Input) value(snapshot *ast.Term, u uses) ast.Value {
	items := make([][2]*ast.Term, 0, 10)
	if u&useFunction != 0 {
		items = append(items, ast.Item(keyFunction, ast.StringTerm(in.Function)))
	}
	if u&useTenant != 0 {
		items = append(items, ast.Item(keyTenant, ast.StringTerm(in.Tenant)))
	}
	if u&usePlatform != 0 {
		items = append(items, ast.Item(keyPlatform, ast.StringTerm(in.Platform)))
	}
	if u&useClass != 0 {
		items = append(items, ast.Item(keyClass, ast.StringTerm(in.Class)))
	}
	if u&useChainID != 0 {
		items = append(items, ast.Item(keyChainID, ast.StringTerm(in.ChainID)))
	}
	if u&useStep != 0 {
		items = append(items, ast.Item(keyStep, ast.IntNumberTerm(in.Step)))
	}
	if u&useDeadline != 0 {
		items = append(items, ast.Item(keyDeadline, ast.IntNumberTerm(int(in.ChainDeadline.Milliseconds()))))
	}
	if u&useSteps != 0 {
		items = append(items, ast.Item(keySteps, ast.IntNumberTerm(in.ChainSteps)))
	}
	if u&useType != 0 {
		items = append(items, ast.Item(keyType, ast.StringTerm(in.Type)))
	}
	if u&useSnapshot != 0 {
		items = append(items, ast.Item(keySnapshot, snapshot))
	}
	return ast.NewObject(items...)
}

// Document is the whole input of a decision as a JSON document: what
// `sequoia policy eval --input` reads.
type Document struct {
	Input
	ChainDeadlineMs int64    `json:"chain_deadline_ms"`
	Snapshot        Snapshot `json:"snapshot"`
}

// ParseDocument reads an input document. Unknown fields are errors, so a
// misspelt field does not silently evaluate as absent.
func ParseDocument(data []byte) (Input, Snapshot, error) {
	var d Document
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return Input{}, Snapshot{}, fmt.Errorf("input: %w", err)
	}
	if dec.More() {
		return Input{}, Snapshot{}, errors.New("input: trailing data after the JSON value")
	}
	if d.ChainDeadlineMs < 0 || d.ChainDeadlineMs > int64(maxDecisionInteger) {
		return Input{}, Snapshot{}, fmt.Errorf("input: chain_deadline_ms %d is out of range", d.ChainDeadlineMs)
	}
	if d.Step < 0 || d.ChainSteps < 0 {
		return Input{}, Snapshot{}, errors.New("input: step and chain_steps must not be negative")
	}
	in := d.Input
	in.ChainDeadline = time.Duration(d.ChainDeadlineMs) * time.Millisecond
	return in, d.Snapshot, nil
}

// MarshalJSON writes the input document a policy sees.
func (d Document) MarshalJSON() ([]byte, error) {
	type plain Input
	return json.Marshal(struct {
		plain
		ChainDeadlineMs int64    `json:"chain_deadline_ms"`
		Snapshot        Snapshot `json:"snapshot"`
	}{plain(d.Input), d.Input.ChainDeadline.Milliseconds(), d.Snapshot})
}
