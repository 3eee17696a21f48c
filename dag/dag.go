package dag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Kind is what a node does.
type Kind string

// The node kinds.
const (
	Task     Kind = "task"     // one function invocation
	Sequence Kind = "sequence" // its steps one after another
	Parallel Kind = "parallel" // its branches at once, outputs as an array
	Map      Kind = "map"      // one flow per item of an array, outputs as an array
	Choice   Kind = "choice"   // the first flow whose rule holds, else the default
	Batch    Kind = "batch"    // gathers items, invokes its function once per batch
)

// DAG is a workflow: named nodes, entered at Start. Every node may name a
// Next node, which runs on its output; a node without Next ends its flow,
// and a flow's output is its last node's. Sequence steps, parallel
// branches, a map's Do and a choice's targets are flows entered at the
// node they name.
type DAG struct {
	Start string `json:"start"`
	// DeadlineMs is a run's default budget, from its admission; a run
	// request may give its own. 0: none.
	DeadlineMs int64            `json:"deadline_ms,omitempty"`
	Nodes      map[string]*Node `json:"nodes"`
}

// Node is one node of a DAG. Which fields apply depends on Kind.
type Node struct {
	Kind Kind `json:"kind"`
	// Input selects the part of the node's input it works on: a JSON
	// pointer ("/a/0/b") or a small JSON path ("$.a[0].b"); empty: all.
	Input string `json:"input,omitempty"`
	Next  string `json:"next,omitempty"`

	// Task: the function in the platform's terms (OpenWhisk
	// "ns/[pkg/]action", a Lambda name or ARN, an http function's path
	// segment), Lambda's qualifier, the timeout of one attempt and how
	// failures are retried.
	Function  string `json:"function,omitempty"`
	Qualifier string `json:"qualifier,omitempty"`
	TimeoutMs int64  `json:"timeout_ms,omitempty"`
	Retry     *Retry `json:"retry,omitempty"`

	Steps    []string `json:"steps,omitempty"`    // sequence
	Branches []string `json:"branches,omitempty"` // parallel

	// MinSuccesses makes a parallel or a map a k-of-n: it finishes at
	// the k-th branch (item) to succeed, with their k outputs in branch
	// order; branches not started never start, queued invocations leave
	// their queue, and it fails once k successes are out of reach. 0:
	// every branch must succeed.
	MinSuccesses int `json:"min_successes,omitempty"`

	// Batch: items that reach the node, from this run and every other
	// run of the DAG, are gathered until MaxItems are there or MaxWaitMs
	// passed since the first; Function is then invoked once with the
	// JSON array of them. An array answer of the same length gives each
	// item its element; any other answer goes to every item whole.
	MaxItems  int   `json:"max_items,omitempty"`
	MaxWaitMs int64 `json:"max_wait_ms,omitempty"`
	batch     *batcher

	// Map: Items selects the array (pointer or path; empty: the whole
	// input), Do is the flow run per item, MaxConcurrency bounds the
	// items in progress at once (0: all).
	Items          string `json:"items,omitempty"`
	Do             string `json:"do,omitempty"`
	MaxConcurrency int    `json:"max_concurrency,omitempty"`

	Choices []Rule `json:"choices,omitempty"` // choice, first match wins
	Default string `json:"default,omitempty"` // choice, when none matches

	// Compiled selectors, set by Validate.
	input, items selector
}

// Retry says how often a task is tried again after a failure (a function
// error, a platform error, a timeout).
type Retry struct {
	// MaxAttempts counts the first attempt: 1 never retries.
	MaxAttempts int `json:"max_attempts"`
	// BackoffMs is the wait before the second attempt, doubled each time.
	BackoffMs int64 `json:"backoff_ms,omitempty"`
}

// Rule is one condition of a choice: the value Path selects in the
// choice's input compared by Op with Value.
type Rule struct {
	Path  string          `json:"path"`
	Op    string          `json:"op"` // eq, ne, lt, le, gt, ge, exists, missing
	Value json.RawMessage `json:"value,omitempty"`
	Next  string          `json:"next"`

	sel   selector
	value any
}

// Limits bound what a DAG and a run may hold.
type Limits struct {
	MaxNodes     int // nodes per DAG
	MaxMapWidth  int // items a map may fan out to
	MaxNodeBytes int // a node's input or output, and a run's input
	MaxRunBytes  int // all of a run's outputs together
}

// DefaultLimits are the configuration defaults.
var DefaultLimits = Limits{MaxNodes: 256, MaxMapWidth: 1000, MaxNodeBytes: 1 << 20, MaxRunBytes: 16 << 20}

// ErrInvalid is what every validation error wraps.
var ErrInvalid = errors.New("invalid dag")

// NodeError is a problem with one node.
type NodeError struct {
	Node    string
	Problem string
}

func (e *NodeError) Error() string { return fmt.Sprintf("node %q: %s", e.Node, e.Problem) }

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *NodeError) Is(target error) bool { return target == ErrInvalid }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse reads a DAG from JSON and validates it.
func Parse(b []byte, lim Limits) (*DAG, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d DAG
	if err := dec.Decode(&d); err != nil {
		return nil, invalid("%v", err)
	}
	if dec.More() {
		return nil, invalid("trailing data after the DAG")
	}
	if err := d.Validate(lim); err != nil {
		return nil, err
	}
	return &d, nil
}

// ValidName reports whether s may name a DAG or a node: 1 to 128 letters,
// digits, '_', '-' or '.', not starting with '.'.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validFunction reports whether s may be put in a platform's request
// path: letters, digits and _ - . : @ /, no empty or dot-dot segment.
func validFunction(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := range len(seg) {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				c == '_' || c == '-' || c == '.' || c == ':' || c == '@') {
				return false
			}
		}
	}
	return true
}

var ops = []string{"eq", "ne", "lt", "le", "gt", "ge", "exists", "missing"}

// Validate checks d against lim and compiles its selectors. Errors name the
// node and the problem.
func (d *DAG) Validate(lim Limits) error {
	if len(d.Nodes) == 0 {
		return invalid("no nodes")
	}
	if lim.MaxNodes > 0 && len(d.Nodes) > lim.MaxNodes {
		return invalid("%d nodes, more than the limit of %d", len(d.Nodes), lim.MaxNodes)
	}
	if d.DeadlineMs < 0 {
		return invalid("deadline_ms must not be negative")
	}
	if d.Start == "" {
		return invalid("no start node")
	}
	if _, ok := d.Nodes[d.Start]; !ok {
		return invalid("start node %q does not exist", d.Start)
	}
	names := slices.Sorted(maps.Keys(d.Nodes))
	for _, name := range names {
		if err := d.validateNode(name, d.Nodes[name], lim); err != nil {
			return err
		}
	}
	return d.checkCycles(names)
}

func (d *DAG) validateNode(name string, n *Node, lim Limits) error {
	bad := func(format string, args ...any) error {
		return &NodeError{Node: name, Problem: fmt.Sprintf(format, args...)}
	}
	if !ValidName(name) {
		return bad("bad name (1 to 128 letters, digits, '_', '-', '.')")
	}
	if n == nil {
		return bad("null node")
	}
	switch n.Kind {
	case Task, Sequence, Parallel, Map, Choice, Batch:
	case "":
		return bad("no kind (want task, sequence, parallel, map, choice or batch)")
	default:
		return bad("unknown kind %q (want task, sequence, parallel, map, choice or batch)", n.Kind)
	}
	ref := func(what, to string) error {
		if to == "" {
			return bad("%s names no node", what)
		}
		if _, ok := d.Nodes[to]; !ok {
			return bad("%s refers to missing node %q", what, to)
		}
		return nil
	}
	if n.Next != "" {
		if err := ref("next", n.Next); err != nil {
			return err
		}
	}
	var err error
	if n.input, err = compileSelector(n.Input); err != nil {
		return bad("input: %v", err)
	}
	if n.Kind != Task && n.Kind != Batch && (n.Function != "" || n.Qualifier != "" || n.TimeoutMs != 0 || n.Retry != nil) {
		return bad("function, qualifier, timeout_ms and retry are for task and batch nodes, not %s", n.Kind)
	}
	if n.Kind != Sequence && len(n.Steps) > 0 || n.Kind != Parallel && len(n.Branches) > 0 ||
		n.Kind != Map && (n.Items != "" || n.Do != "" || n.MaxConcurrency != 0) ||
		n.Kind != Choice && (len(n.Choices) > 0 || n.Default != "") ||
		n.Kind != Batch && (n.MaxItems != 0 || n.MaxWaitMs != 0) {
		return bad("has fields of another kind than %q", n.Kind)
	}
	if n.MinSuccesses != 0 && n.Kind != Parallel && n.Kind != Map {
		return bad("min_successes is for parallel and map nodes, not %s", n.Kind)
	}
	if n.MinSuccesses < 0 {
		return bad("min_successes must not be negative")
	}
	switch n.Kind {
	case Batch:
		if lim.MaxMapWidth > 0 && n.MaxItems > lim.MaxMapWidth || n.MaxItems < 1 {
			return bad("max_items must be between 1 and the map width limit of %d", lim.MaxMapWidth)
		}
		if n.MaxWaitMs < 1 || n.MaxWaitMs > 60000 {
			return bad("max_wait_ms must be between 1 and 60000")
		}
		n.batch = &batcher{}
		fallthrough
	case Task:
		if !validFunction(n.Function) {
			return bad("task needs a function: letters, digits and _ - . : @, segments separated by '/'")
		}
		if n.Qualifier != "" && (!validFunction(n.Qualifier) || strings.Contains(n.Qualifier, "/")) {
			return bad("bad qualifier %q", n.Qualifier)
		}
		if n.TimeoutMs < 0 {
			return bad("timeout_ms must not be negative")
		}
		if r := n.Retry; r != nil {
			if r.MaxAttempts < 1 || r.MaxAttempts > 10 {
				return bad("retry.max_attempts must be between 1 and 10")
			}
			if r.BackoffMs < 0 || r.BackoffMs > 60000 {
				return bad("retry.backoff_ms must be between 0 and 60000")
			}
		}
	case Sequence:
		if len(n.Steps) > lim.MaxNodes {
			return bad("%d steps, more than the limit of %d", len(n.Steps), lim.MaxNodes)
		}
		if len(n.Steps) == 0 {
			return bad("empty sequence: steps names no node")
		}
		for i, s := range n.Steps {
			if err := ref(fmt.Sprintf("steps[%d]", i), s); err != nil {
				return err
			}
		}
	case Parallel:
		if len(n.Branches) > lim.MaxMapWidth {
			return bad("%d branches, more than the map width limit of %d", len(n.Branches), lim.MaxMapWidth)
		}
		if len(n.Branches) == 0 {
			return bad("empty parallel: branches names no node")
		}
		if n.MinSuccesses > len(n.Branches) {
			return bad("min_successes %d is more than its %d branches", n.MinSuccesses, len(n.Branches))
		}
		for i, s := range n.Branches {
			if err := ref(fmt.Sprintf("branches[%d]", i), s); err != nil {
				return err
			}
		}
	case Map:
		if err := ref("do", n.Do); err != nil {
			return err
		}
		if n.items, err = compileSelector(n.Items); err != nil {
			return bad("items: %v", err)
		}
		if n.MaxConcurrency < 0 || lim.MaxMapWidth > 0 && n.MaxConcurrency > lim.MaxMapWidth {
			return bad("max_concurrency must be between 0 and the map width limit of %d", lim.MaxMapWidth)
		}
	case Choice:
		if len(n.Choices) == 0 {
			return bad("empty choice: choices holds no rule")
		}
		for i := range n.Choices {
			r := &n.Choices[i]
			if r.sel, err = compileSelector(r.Path); err != nil {
				return bad("choices[%d].path: %v", i, err)
			}
			if !slices.Contains(ops, r.Op) {
				return bad("choices[%d].op %q: want one of %s", i, r.Op, strings.Join(ops, ", "))
			}
			if r.Op != "exists" && r.Op != "missing" {
				if len(r.Value) == 0 {
					return bad("choices[%d]: op %s needs a value", i, r.Op)
				}
				if err := json.Unmarshal(r.Value, &r.value); err != nil {
					return bad("choices[%d].value: %v", i, err)
				}
				if _, num := r.value.(float64); !num && r.Op != "eq" && r.Op != "ne" {
					if _, str := r.value.(string); !str {
						return bad("choices[%d]: op %s compares numbers or strings", i, r.Op)
					}
				}
			}
			if err := ref(fmt.Sprintf("choices[%d].next", i), r.Next); err != nil {
				return err
			}
		}
		if err := ref("default", n.Default); err != nil {
			return err
		}
	}
	return nil
}

// edges lists the nodes n leads to.
func (n *Node) edges() []string {
	out := make([]string, 0, 4)
	if n.Next != "" {
		out = append(out, n.Next)
	}
	out = append(out, n.Steps...)
	out = append(out, n.Branches...)
	if n.Do != "" {
		out = append(out, n.Do)
	}
	for _, r := range n.Choices {
		out = append(out, r.Next)
	}
	if n.Default != "" {
		out = append(out, n.Default)
	}
	return out
}

// checkCycles finds a node that leads back to itself.
func (d *DAG) checkCycles(names []string) error {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]uint8, len(d.Nodes))
	var path []string
	var visit func(string) error
	visit = func(n string) error {
		color[n] = grey
		path = append(path, n)
		for _, m := range d.Nodes[n].edges() {
			switch color[m] {
			case grey:
				i := slices.Index(path, m)
				cycle := append(slices.Clone(path[i:]), m)
				return &NodeError{Node: m, Problem: "cycle: " + strings.Join(cycle, " -> ")}
			case white:
				if err := visit(m); err != nil {
					return err
				}
			}
		}
		path = path[:len(path)-1]
		color[n] = black
		return nil
	}
	for _, n := range names {
		if color[n] == white {
			if err := visit(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// Plan is admission's view of a run: its critical path, total work and
// number of invocations, from per-function duration estimates. A map
// whose width is not known before the run counts as one round of
// max_concurrency items (one item without a cap).
type Plan struct {
	Critical, Work time.Duration
	Steps          int
}

// Plan estimates a run of d with est, the estimated duration of one
// invocation of a function.
func (d *DAG) Plan(est func(fn string) time.Duration) Plan {
	return newPlanner(d, est).flow(d.Start)
}

// planner estimates flows without looking at data, each once.
type planner struct {
	d    *DAG
	est  func(fn string) time.Duration
	memo map[string]Plan
}

func newPlanner(d *DAG, est func(fn string) time.Duration) *planner {
	return &planner{d: d, est: est, memo: make(map[string]Plan, len(d.Nodes))}
}

// flow estimates the flow entered at name.
func (pl *planner) flow(name string) Plan {
	if p, ok := pl.memo[name]; ok {
		return p
	}
	n := pl.d.Nodes[name]
	var p Plan
	switch n.Kind {
	case Task:
		e := pl.est(n.Function)
		p = Plan{Critical: e, Work: e, Steps: 1}
	case Batch:
		// The wait for the batch to fill is on the critical path but
		// holds no slot; the call counts whole for every run (an upper
		// bound: it is shared).
		e := pl.est(n.Function)
		p = Plan{Critical: time.Duration(n.MaxWaitMs)*time.Millisecond + e, Work: e, Steps: 1}
	case Sequence:
		for _, s := range n.Steps {
			p = p.then(pl.flow(s))
		}
	case Parallel:
		for _, b := range n.Branches {
			p = p.beside(pl.flow(b))
		}
	case Map:
		body := pl.flow(n.Do)
		w := max(n.MaxConcurrency, 1)
		p = Plan{Critical: body.Critical, Work: body.Work * time.Duration(w), Steps: body.Steps * w}
	case Choice:
		p = pl.flow(n.Default)
		for _, r := range n.Choices {
			q := pl.flow(r.Next)
			p = Plan{Critical: max(p.Critical, q.Critical), Work: max(p.Work, q.Work), Steps: max(p.Steps, q.Steps)}
		}
	}
	if n.Next != "" {
		p = p.then(pl.flow(n.Next))
	}
	pl.memo[name] = p
	return p
}

// PlanInput is Plan for a run on input (decoded JSON): where the input
// decides before any task has run, it is read. A choice reached with it
// counts the target its rules pick; a map reached with it counts its real
// width, in rounds of max_concurrency. Beyond the first task, Plan's
// estimates apply.
func (d *DAG) PlanInput(est func(fn string) time.Duration, input any) Plan {
	pl := newPlanner(d, est) // where the data is not known
	flow := pl.flow
	var known func(name string, in any) Plan
	known = func(name string, in any) Plan {
		n := d.Nodes[name]
		if !n.input.whole() {
			v, ok := n.input.pick(in)
			if !ok {
				return flow(name) // the run will fail here; count it whole
			}
			in = v
		}
		var p Plan
		switch n.Kind {
		case Task, Batch:
			return flow(name)
		case Sequence:
			p = known(n.Steps[0], in)
			for _, s := range n.Steps[1:] {
				p = p.then(flow(s))
			}
		case Parallel:
			for _, b := range n.Branches {
				p = p.beside(known(b, in))
			}
		case Map:
			items, ok := n.items.pick(in)
			arr, isArr := items.([]any)
			if !ok || !isArr {
				return flow(name)
			}
			body := flow(n.Do)
			w := len(arr)
			rounds := 1
			if c := n.MaxConcurrency; c > 0 && w > c {
				rounds = (w + c - 1) / c
			}
			p = Plan{Critical: body.Critical * time.Duration(rounds), Work: body.Work * time.Duration(w), Steps: body.Steps * w}
		case Choice:
			target := n.Default
			for i := range n.Choices {
				if n.Choices[i].holds(in) {
					target = n.Choices[i].Next
					break
				}
			}
			p = known(target, in)
		}
		if n.Next != "" {
			p = p.then(flow(n.Next))
		}
		return p
	}
	return known(d.Start, input)
}

func (p Plan) then(q Plan) Plan {
	return Plan{Critical: p.Critical + q.Critical, Work: p.Work + q.Work, Steps: p.Steps + q.Steps}
}

func (p Plan) beside(q Plan) Plan {
	return Plan{Critical: max(p.Critical, q.Critical), Work: p.Work + q.Work, Steps: p.Steps + q.Steps}
}
