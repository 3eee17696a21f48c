package dag

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"
)

// Machine is an Amazon States Language state machine, compiled: what PUT
// /sequoia/v1/dags/{name} registers when the body has StartAt and States.
// Its runs are runs like a DAG's (admitted whole, continuations after),
// executed by asl_run.go.
type Machine struct {
	top     *aslScope
	names   []string // every state's name, sorted
	timeout time.Duration
}

// aslScope is one set of states with its start: the machine's, a Parallel
// branch's or a Map's item processor.
type aslScope struct {
	start  string
	states map[string]*aslState
}

// aslState is one compiled state.
type aslState struct {
	name, typ string
	next      string // "" with end
	end       bool

	inputPath, outputPath *aslPath // nil: $ (or null, below)
	inputNull, outputNull bool     // "null": {} in, {} out
	resultPath            *aslPath // nil: $ (or null, below)
	resultNull            bool     // "null": the result is discarded
	params, selector      *tmpl    // Parameters, ResultSelector
	result                *tmpl    // Pass's Result
	usesCx                bool     // some path reads the context object

	// Task
	task    *aslTask
	timeout time.Duration
	retry   []*retrier
	catch   []*catcher

	// Choice
	choices []*choiceRule
	def     string

	// Wait
	seconds                    int64
	timestamp                  time.Time
	secondsPath, timestampPath *aslPath

	// Fail
	errName, cause       string
	errorPath, causePath *aslPath

	// Parallel
	branches []*aslScope

	// Map
	itemsPath    *aslPath
	processor    *aslScope
	itemSelector *tmpl
	maxConc      int
	tolCount     int     // -1: none
	tolPercent   float64 // -1: none
	batchItems   int     // ItemBatcher: items per batch, 0: no batching
	batchBytes   int
	batchInput   *tmpl
}

// aslTask is what a Task invokes.
type aslTask struct {
	// name is the function for every platform; arn, when the Resource was
	// a Lambda ARN, is what a Lambda backend is called with (the
	// unqualified ARN), qualifier its version or alias.
	name, arn, qualifier string
	// lambdaInvoke is the Step Functions Lambda integration
	// (arn:aws:states:::lambda:invoke): Parameters hold FunctionName,
	// Payload and Qualifier, and the result is wrapped as Lambda's Invoke
	// answer ({"Payload": ..., "StatusCode": 200, ...}).
	lambdaInvoke bool
}

// retrier is one Retry entry.
type retrier struct {
	errors     []string
	interval   time.Duration
	max        int
	backoff    float64
	maxDelay   time.Duration // 0: none
	fullJitter bool
}

// catcher is one Catch entry.
type catcher struct {
	errors     []string
	next       string
	resultPath *aslPath
	resultNull bool
}

// StateError is a state machine ASL sequoia cannot run: the state, the
// field and the problem. It wraps ErrInvalid (a 400).
type StateError struct {
	State, Field, Problem string
}

func (e *StateError) Error() string {
	switch {
	case e.State == "" && e.Field == "":
		return "state machine: " + e.Problem
	case e.State == "":
		return fmt.Sprintf("state machine: field %s: %s", e.Field, e.Problem)
	case e.Field == "":
		return fmt.Sprintf("state %q: %s", e.State, e.Problem)
	}
	return fmt.Sprintf("state %q: field %s: %s", e.State, e.Field, e.Problem)
}

// Is makes errors.Is(err, ErrInvalid) hold.
func (e *StateError) Is(target error) bool { return target == ErrInvalid }

// IsASL reports whether src is a state machine (it has StartAt and
// States) rather than a sequoia DAG.
func IsASL(src []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(src, &top) != nil {
		return false
	}
	_, a := top["StartAt"]
	_, b := top["States"]
	return a && b
}

// The fields each state type may have (ASL's table), beyond Type and
// Comment.
var stateFields = map[string][]string{
	"Pass":     {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultPath", "Result"},
	"Task":     {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Resource", "TimeoutSeconds", "Retry", "Catch"},
	"Choice":   {"InputPath", "OutputPath", "Choices", "Default"},
	"Wait":     {"Next", "End", "InputPath", "OutputPath", "Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
	"Succeed":  {"InputPath", "OutputPath"},
	"Fail":     {"Error", "Cause", "ErrorPath", "CausePath"},
	"Parallel": {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch", "Branches"},
	"Map": {"Next", "End", "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Retry", "Catch",
		"ItemProcessor", "Iterator", "ItemsPath", "ItemSelector", "MaxConcurrency", "ToleratedFailureCount",
		"ToleratedFailurePercentage", "ItemBatcher", "Label"},
}

// refusedFields are ASL fields sequoia knows and cannot honour, with why.
var refusedFields = map[string]string{
	"HeartbeatSeconds":               "heartbeats need activities or task tokens; sequoia invokes functions synchronously",
	"HeartbeatSecondsPath":           "heartbeats need activities or task tokens; sequoia invokes functions synchronously",
	"TimeoutSecondsPath":             "not supported: give TimeoutSeconds",
	"Credentials":                    "cross-account roles are not supported: sequoia calls its one platform",
	"Assign":                         "variables are not supported",
	"Arguments":                      "JSONata is not supported: use Parameters",
	"Output":                         "JSONata is not supported: use OutputPath and ResultSelector",
	"QueryLanguage":                  "only JSONPath is supported",
	"ItemReader":                     "reading items from S3 is not supported: give them in the input (ItemsPath)",
	"ResultWriter":                   "writing results to S3 is not supported",
	"Items":                          "JSONata is not supported: use ItemsPath",
	"MaxConcurrencyPath":             "not supported: give MaxConcurrency",
	"ToleratedFailureCountPath":      "not supported: give ToleratedFailureCount",
	"ToleratedFailurePercentagePath": "not supported: give ToleratedFailurePercentage",
}

// maxTransitions bounds the states one run may enter (Step Functions
// bounds its history similarly), so that a loop cannot run forever.
const maxTransitions = 25000

// ParseASL reads and compiles a state machine. Errors name the state and
// the field.
func ParseASL(src []byte, lim Limits) (*Machine, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, &StateError{Problem: "not a JSON object: " + err.Error()}
	}
	if dec.More() {
		return nil, &StateError{Problem: "trailing data after the state machine"}
	}
	c := &aslCompiler{lim: lim, seen: map[string]bool{}}
	m := &Machine{}
	for k, v := range top {
		switch k {
		case "StartAt", "States", "Comment", "Version":
		case "TimeoutSeconds":
			var s int64
			if err := json.Unmarshal(v, &s); err != nil || s <= 0 || s > 99999999 {
				return nil, &StateError{Field: k, Problem: "a positive number of seconds"}
			}
			m.timeout = time.Duration(s) * time.Second
		case "QueryLanguage":
			var q string
			if json.Unmarshal(v, &q) != nil || q != "JSONPath" {
				return nil, &StateError{Field: k, Problem: "only JSONPath is supported, not JSONata"}
			}
		default:
			return nil, &StateError{Field: k, Problem: "not a field of a state machine"}
		}
	}
	sc, err := c.scope(top, "")
	if err != nil {
		return nil, err
	}
	m.top = sc
	if lim.MaxNodes > 0 && len(c.seen) > lim.MaxNodes {
		return nil, &StateError{Problem: fmt.Sprintf("%d states, more than the limit of %d (SEQUOIA_DAG_MAX_NODES)", len(c.seen), lim.MaxNodes)}
	}
	m.names = slices.Sorted(maps.Keys(c.seen))
	return m, nil
}

type aslCompiler struct {
	lim  Limits
	seen map[string]bool // state names: unique over the whole machine
}

// scope compiles StartAt and States of a machine, a branch or an item
// processor (within, the state that holds it, "" at the top).
func (c *aslCompiler) scope(obj map[string]json.RawMessage, within string) (*aslScope, error) {
	bad := func(field, format string, args ...any) error {
		return &StateError{State: within, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	prefix := ""
	if within != "" {
		prefix = "(a branch or processor) "
	}
	var start string
	if err := json.Unmarshal(obj["StartAt"], &start); err != nil || start == "" {
		return nil, bad("StartAt", "%sneeds StartAt, a state name", prefix)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(obj["States"], &raw); err != nil || len(raw) == 0 {
		return nil, bad("States", "%sneeds States, an object of states", prefix)
	}
	sc := &aslScope{start: start, states: make(map[string]*aslState, len(raw))}
	names := slices.Sorted(maps.Keys(raw))
	for _, name := range names {
		if c.seen[name] {
			return nil, &StateError{State: name, Problem: "state names must be unique in the whole state machine"}
		}
		if len(name) == 0 || len(name) > 80 {
			return nil, &StateError{State: name, Problem: "a state name has 1 to 80 characters"}
		}
		c.seen[name] = true
		st, err := c.state(name, raw[name])
		if err != nil {
			return nil, err
		}
		sc.states[name] = st
	}
	if _, ok := sc.states[start]; !ok {
		return nil, bad("StartAt", "%snames %q, which is not one of its States", prefix, start)
	}
	// Transitions stay in their scope, and every state is reachable.
	ref := func(from, field, to string) error {
		if _, ok := sc.states[to]; !ok {
			return &StateError{State: from, Field: field, Problem: fmt.Sprintf("names %q, which is not a state of its scope", to)}
		}
		return nil
	}
	reach := map[string]bool{}
	var visit func(string)
	visit = func(n string) {
		if reach[n] {
			return
		}
		reach[n] = true
		for _, t := range sc.states[n].targets() {
			visit(t)
		}
	}
	for _, name := range names {
		st := sc.states[name]
		if st.next != "" {
			if err := ref(name, "Next", st.next); err != nil {
				return nil, err
			}
		}
		for i, r := range st.choices {
			if err := ref(name, fmt.Sprintf("Choices[%d].Next", i), r.next); err != nil {
				return nil, err
			}
		}
		if st.def != "" {
			if err := ref(name, "Default", st.def); err != nil {
				return nil, err
			}
		}
		for i, k := range st.catch {
			if err := ref(name, fmt.Sprintf("Catch[%d].Next", i), k.next); err != nil {
				return nil, err
			}
		}
	}
	visit(start)
	for _, name := range names {
		if !reach[name] {
			return nil, &StateError{State: name, Problem: "no transition reaches it from StartAt"}
		}
	}
	return sc, nil
}

// targets lists the states st may go to next.
func (st *aslState) targets() []string {
	var out []string
	if st.next != "" {
		out = append(out, st.next)
	}
	for _, r := range st.choices {
		out = append(out, r.next)
	}
	if st.def != "" {
		out = append(out, st.def)
	}
	for _, k := range st.catch {
		out = append(out, k.next)
	}
	return out
}

// state compiles one state.
func (c *aslCompiler) state(name string, raw json.RawMessage) (*aslState, error) {
	bad := func(field, format string, args ...any) error {
		return &StateError{State: name, Field: field, Problem: fmt.Sprintf(format, args...)}
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		return nil, bad("", "a state must be a JSON object")
	}
	st := &aslState{name: name, tolCount: -1, tolPercent: -1}
	if err := json.Unmarshal(f["Type"], &st.typ); err != nil || st.typ == "" {
		return nil, bad("Type", "needs Type: Task, Pass, Choice, Wait, Succeed, Fail, Parallel or Map")
	}
	allowed, ok := stateFields[st.typ]
	if !ok {
		return nil, bad("Type", "unknown type %q (want Task, Pass, Choice, Wait, Succeed, Fail, Parallel or Map)", st.typ)
	}
	for k := range f {
		if k == "Type" || k == "Comment" || slices.Contains(allowed, k) {
			continue
		}
		if why, refused := refusedFields[k]; refused {
			if k == "QueryLanguage" {
				var q string
				if json.Unmarshal(f[k], &q) == nil && q == "JSONPath" {
					continue
				}
			}
			return nil, bad(k, "%s", why)
		}
		return nil, bad(k, "not a field of a %s state", st.typ)
	}
	// get decodes field k into v, if present.
	get := func(k string, v any) (bool, error) {
		r, ok := f[k]
		if !ok {
			return false, nil
		}
		if err := json.Unmarshal(r, v); err != nil {
			return true, bad(k, "%v", strings.TrimPrefix(err.Error(), "json: "))
		}
		return true, nil
	}
	if _, err := get("Next", &st.next); err != nil {
		return nil, err
	}
	if _, err := get("End", &st.end); err != nil {
		return nil, err
	}
	switch st.typ {
	case "Choice", "Succeed", "Fail":
	default:
		if st.next == "" && !st.end {
			return nil, bad("Next", "a %s state needs Next or \"End\": true", st.typ)
		}
		if st.next != "" && st.end {
			return nil, bad("End", "a state has Next or End, not both")
		}
	}
	var err error
	path := func(k string, ref bool) (*aslPath, bool, error) {
		r, ok := f[k]
		if !ok {
			return nil, false, nil
		}
		if string(bytes.TrimSpace(r)) == "null" {
			return nil, true, nil
		}
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, false, bad(k, "a path or null")
		}
		var p *aslPath
		if ref {
			p, err = compileRefPath(s)
		} else {
			p, err = compilePath(s)
		}
		if err != nil {
			return nil, false, bad(k, "%v", err)
		}
		st.usesCx = st.usesCx || p.ctx
		return p, false, nil
	}
	if st.inputPath, st.inputNull, err = path("InputPath", false); err != nil {
		return nil, err
	}
	if st.outputPath, st.outputNull, err = path("OutputPath", false); err != nil {
		return nil, err
	}
	if st.resultPath, st.resultNull, err = path("ResultPath", true); err != nil {
		return nil, err
	}
	tmplField := func(k string) (*tmpl, error) {
		r, ok := f[k]
		if !ok {
			return nil, nil
		}
		t, err := compileTmpl(r)
		if err != nil {
			return nil, bad(k, "%v", err)
		}
		st.usesCx = st.usesCx || t.usesCx
		return t, nil
	}
	if st.params, err = tmplField("Parameters"); err != nil {
		return nil, err
	}
	if st.selector, err = tmplField("ResultSelector"); err != nil {
		return nil, err
	}
	if r, ok := f["Result"]; ok {
		if _, err := decode(r); err != nil {
			return nil, bad("Result", "%v", err)
		}
		st.result = &tmpl{static: mustDecode(r)} // data: ".$" is not evaluated there
	}
	switch st.typ {
	case "Task":
		err = c.task(st, f, get, bad)
	case "Choice":
		err = c.choice(st, f, bad)
	case "Wait":
		err = c.wait(st, f, get, path, bad)
	case "Fail":
		err = c.fail(st, f, get, path, bad)
	case "Parallel":
		err = c.parallel(st, f, bad)
	case "Map":
		err = c.mapState(st, f, get, path, tmplField, bad)
	}
	if err != nil {
		return nil, err
	}
	if st.typ == "Task" || st.typ == "Parallel" || st.typ == "Map" {
		if err := c.errorHandling(st, f, bad); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func mustDecode(r json.RawMessage) any {
	v, _ := decode(r)
	if v == nil {
		return jsonNull{}
	}
	return v
}

type badFunc func(field, format string, args ...any) error
type getFunc func(k string, v any) (bool, error)
type pathFunc func(k string, ref bool) (*aslPath, bool, error)

// task compiles a Task's Resource and timeout.
func (c *aslCompiler) task(st *aslState, f map[string]json.RawMessage, get getFunc, bad badFunc) error {
	var res string
	if ok, err := get("Resource", &res); err != nil {
		return err
	} else if !ok || res == "" {
		return bad("Resource", "a Task needs Resource: a Lambda ARN or name, an OpenWhisk action or an http function")
	}
	t, err := parseResource(res)
	if err != nil {
		return bad("Resource", "%v", err)
	}
	if t.lambdaInvoke {
		if err := c.lambdaParams(st, f, bad); err != nil {
			return err
		}
	}
	st.task = t
	var secs int64
	if ok, err := get("TimeoutSeconds", &secs); err != nil {
		return err
	} else if ok {
		if secs <= 0 || secs > 99999999 {
			return bad("TimeoutSeconds", "a positive number of seconds")
		}
		st.timeout = time.Duration(secs) * time.Second
	}
	return nil
}

// parseResource maps a Task's Resource to the function it invokes.
func parseResource(res string) (*aslTask, error) {
	if strings.HasPrefix(res, "arn:") {
		parts := strings.SplitN(res, ":", 7)
		if len(parts) < 6 {
			return nil, fmt.Errorf("%q is not an ARN", res)
		}
		service := parts[2]
		if service == "states" && len(parts) == 7 {
			parts[5] += ":" + parts[6] // arn:aws:states:::lambda:invoke
			parts = parts[:6]
		}
		switch {
		case service == "lambda" && len(parts) == 7 && strings.HasPrefix(parts[5], "function"):
			// arn:aws:lambda:region:account:function:name[:qualifier]
			name, qual, _ := strings.Cut(parts[6], ":")
			if qual == "$LATEST" {
				qual = "" // the same function
			}
			if !validFunction(name) || strings.Contains(name, "/") || qual != "" && !validFunction(qual) {
				return nil, fmt.Errorf("%q: bad function name or qualifier", res)
			}
			return &aslTask{name: name, arn: strings.Join(parts[:6], ":") + ":" + name, qualifier: qual}, nil
		case service == "lambda" && len(parts) == 6 && strings.HasPrefix(parts[5], "function:"):
			return nil, fmt.Errorf("%q is not an ARN", res)
		case service == "states" && strings.HasPrefix(parts[5], "lambda:invoke"):
			if parts[5] != "lambda:invoke" || len(parts) > 6 {
				return nil, fmt.Errorf("%q: only the request-response Lambda integration (arn:aws:states:::lambda:invoke) is supported, not callbacks (.waitForTaskToken) or .sync", res)
			}
			return &aslTask{lambdaInvoke: true}, nil
		case service == "states" && strings.HasPrefix(parts[5], "activity"):
			return nil, fmt.Errorf("%q: activities are not supported: sequoia invokes functions", res)
		case service == "states":
			svc, _, _ := strings.Cut(parts[5], ":")
			return nil, fmt.Errorf("%q: the %s service integration is not supported: sequoia invokes functions (a Lambda ARN, arn:aws:states:::lambda:invoke, an OpenWhisk action or an http function)", res, svc)
		}
		return nil, fmt.Errorf("%q: not a Lambda function ARN", res)
	}
	name := strings.TrimPrefix(res, "/") // OpenWhisk's "/ns/pkg/action"
	if !validFunction(name) {
		return nil, fmt.Errorf("%q: a function name has letters, digits and _ - . : @, segments separated by '/'", res)
	}
	return &aslTask{name: name}, nil
}

// lambdaParams checks the Parameters of the Lambda integration.
func (c *aslCompiler) lambdaParams(st *aslState, f map[string]json.RawMessage, bad badFunc) error {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(f["Parameters"], &p); err != nil || p == nil {
		return bad("Parameters", "arn:aws:states:::lambda:invoke needs Parameters with FunctionName")
	}
	if _, a := p["FunctionName"]; !a {
		if _, b := p["FunctionName.$"]; !b {
			return bad("Parameters", "arn:aws:states:::lambda:invoke needs FunctionName")
		}
	}
	for k, v := range p {
		switch strings.TrimSuffix(k, ".$") {
		case "FunctionName", "Payload", "Qualifier":
		case "InvocationType":
			var s string
			if json.Unmarshal(v, &s) != nil || s != "RequestResponse" {
				return bad("Parameters", "InvocationType: only RequestResponse is supported")
			}
		case "LogType":
			var s string
			if json.Unmarshal(v, &s) != nil || s != "None" {
				return bad("Parameters", "LogType: only None is supported")
			}
		default:
			return bad("Parameters", "%s is not supported by the Lambda integration here (FunctionName, Payload, Qualifier, InvocationType)", k)
		}
	}
	return nil
}

func (c *aslCompiler) choice(st *aslState, f map[string]json.RawMessage, bad badFunc) error {
	var list []json.RawMessage
	if err := json.Unmarshal(f["Choices"], &list); err != nil || len(list) == 0 {
		return bad("Choices", "a Choice needs Choices, a non-empty array of rules")
	}
	for i, raw := range list {
		r, err := compileRule(raw, true)
		if err != nil {
			return bad(fmt.Sprintf("Choices[%d]", i), "%v", err)
		}
		st.usesCx = st.usesCx || r.usesCx()
		st.choices = append(st.choices, r)
	}
	if d, ok := f["Default"]; ok {
		if err := json.Unmarshal(d, &st.def); err != nil || st.def == "" {
			return bad("Default", "a state name")
		}
	}
	return nil
}

func (c *aslCompiler) wait(st *aslState, f map[string]json.RawMessage, get getFunc, path pathFunc, bad badFunc) error {
	n := 0
	for _, k := range []string{"Seconds", "Timestamp", "SecondsPath", "TimestampPath"} {
		if _, ok := f[k]; ok {
			n++
		}
	}
	if n != 1 {
		return bad("Seconds", "a Wait needs exactly one of Seconds, Timestamp, SecondsPath and TimestampPath")
	}
	if ok, err := get("Seconds", &st.seconds); err != nil {
		return err
	} else if ok && (st.seconds < 0 || st.seconds > 99999999) {
		return bad("Seconds", "between 0 and 99999999")
	}
	var ts string
	if ok, err := get("Timestamp", &ts); err != nil {
		return err
	} else if ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return bad("Timestamp", "not an RFC 3339 timestamp: %q", ts)
		}
		st.timestamp = t
	}
	var err error
	if st.secondsPath, _, err = path("SecondsPath", false); err != nil {
		return err
	}
	if st.timestampPath, _, err = path("TimestampPath", false); err != nil {
		return err
	}
	return nil
}

func (c *aslCompiler) fail(st *aslState, f map[string]json.RawMessage, get getFunc, path pathFunc, bad badFunc) error {
	if _, err := get("Error", &st.errName); err != nil {
		return err
	}
	if _, err := get("Cause", &st.cause); err != nil {
		return err
	}
	var err error
	if st.errorPath, _, err = path("ErrorPath", false); err != nil {
		return err
	}
	if st.causePath, _, err = path("CausePath", false); err != nil {
		return err
	}
	if st.errName != "" && st.errorPath != nil || st.cause != "" && st.causePath != nil {
		return bad("ErrorPath", "Error and ErrorPath (Cause and CausePath) exclude each other")
	}
	return nil
}

func (c *aslCompiler) parallel(st *aslState, f map[string]json.RawMessage, bad badFunc) error {
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(f["Branches"], &list); err != nil || len(list) == 0 {
		return bad("Branches", "a Parallel needs Branches, a non-empty array of {StartAt, States}")
	}
	if c.lim.MaxMapWidth > 0 && len(list) > c.lim.MaxMapWidth {
		return bad("Branches", "%d branches, more than the map width limit of %d", len(list), c.lim.MaxMapWidth)
	}
	for i, b := range list {
		for k := range b {
			if k != "StartAt" && k != "States" && k != "Comment" {
				return bad(fmt.Sprintf("Branches[%d].%s", i, k), "not a field of a branch")
			}
		}
		sc, err := c.scope(b, st.name)
		if err != nil {
			return err
		}
		st.branches = append(st.branches, sc)
	}
	return nil
}

func (c *aslCompiler) mapState(st *aslState, f map[string]json.RawMessage, get getFunc, path pathFunc,
	tmplField func(string) (*tmpl, error), bad badFunc) error {
	procField := "ItemProcessor"
	raw, ok := f[procField]
	if _, legacy := f["Iterator"]; legacy {
		if ok {
			return bad("Iterator", "give ItemProcessor or its older name Iterator, not both")
		}
		procField, raw, ok = "Iterator", f["Iterator"], true
	}
	if !ok {
		return bad("ItemProcessor", "a Map needs ItemProcessor (or Iterator)")
	}
	var proc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &proc); err != nil || proc == nil {
		return bad(procField, "an object with StartAt and States")
	}
	if pc, ok := proc["ProcessorConfig"]; ok {
		var cfg map[string]string
		if err := json.Unmarshal(pc, &cfg); err != nil {
			return bad(procField+".ProcessorConfig", "an object of Mode and ExecutionType")
		}
		for k, v := range cfg {
			switch {
			case k == "Mode" && (v == "INLINE" || v == "DISTRIBUTED"):
			case k == "ExecutionType" && (v == "STANDARD" || v == "EXPRESS"):
			default:
				return bad(procField+".ProcessorConfig", "%s %q: want Mode INLINE or DISTRIBUTED, ExecutionType STANDARD or EXPRESS", k, v)
			}
		}
		delete(proc, "ProcessorConfig")
	}
	for k := range proc {
		if k != "StartAt" && k != "States" && k != "Comment" {
			return bad(procField+"."+k, "not a field of an item processor")
		}
	}
	sc, err := c.scope(proc, st.name)
	if err != nil {
		return err
	}
	st.processor = sc
	if st.itemsPath, _, err = path("ItemsPath", false); err != nil {
		return err
	}
	if _, isSel := f["ItemSelector"]; isSel {
		if st.params != nil {
			return bad("Parameters", "a Map takes ItemSelector or its older name Parameters, not both")
		}
		if st.itemSelector, err = tmplField("ItemSelector"); err != nil {
			return err
		}
	} else {
		st.itemSelector, st.params = st.params, nil // Parameters on a Map is ItemSelector
	}
	if ok, err := get("MaxConcurrency", &st.maxConc); err != nil {
		return err
	} else if ok && (st.maxConc < 0 || c.lim.MaxMapWidth > 0 && st.maxConc > c.lim.MaxMapWidth) {
		return bad("MaxConcurrency", "between 0 and the map width limit of %d", c.lim.MaxMapWidth)
	}
	if ok, err := get("ToleratedFailureCount", &st.tolCount); err != nil {
		return err
	} else if ok && st.tolCount < 0 {
		return bad("ToleratedFailureCount", "must not be negative")
	}
	if ok, err := get("ToleratedFailurePercentage", &st.tolPercent); err != nil {
		return err
	} else if ok && (st.tolPercent < 0 || st.tolPercent > 100) {
		return bad("ToleratedFailurePercentage", "between 0 and 100")
	}
	if b, ok := f["ItemBatcher"]; ok {
		var ib map[string]json.RawMessage
		if err := json.Unmarshal(b, &ib); err != nil || ib == nil {
			return bad("ItemBatcher", "an object")
		}
		for k, v := range ib {
			switch k {
			case "MaxItemsPerBatch":
				if json.Unmarshal(v, &st.batchItems) != nil || st.batchItems < 1 {
					return bad("ItemBatcher.MaxItemsPerBatch", "a positive integer")
				}
			case "MaxInputBytesPerBatch":
				if json.Unmarshal(v, &st.batchBytes) != nil || st.batchBytes < 1 || st.batchBytes > 262144 {
					return bad("ItemBatcher.MaxInputBytesPerBatch", "between 1 and 262144")
				}
			case "BatchInput":
				if st.batchInput, err = compileTmpl(v); err != nil {
					return bad("ItemBatcher.BatchInput", "%v", err)
				}
				st.usesCx = st.usesCx || st.batchInput.usesCx
			default:
				return bad("ItemBatcher."+k, "not supported (MaxItemsPerBatch, MaxInputBytesPerBatch, BatchInput)")
			}
		}
		if st.batchItems == 0 && st.batchBytes == 0 {
			return bad("ItemBatcher", "needs MaxItemsPerBatch or MaxInputBytesPerBatch")
		}
	}
	return nil
}

// errorHandling compiles Retry and Catch.
func (c *aslCompiler) errorHandling(st *aslState, f map[string]json.RawMessage, bad badFunc) error {
	var retries []map[string]json.RawMessage
	if r, ok := f["Retry"]; ok {
		if err := json.Unmarshal(r, &retries); err != nil {
			return bad("Retry", "an array of retriers")
		}
	}
	for i, r := range retries {
		field := fmt.Sprintf("Retry[%d]", i)
		rt := &retrier{interval: time.Second, max: 3, backoff: 2}
		for k, v := range r {
			var err error
			switch k {
			case "ErrorEquals":
				rt.errors, err = errorNames(v, i == len(retries)-1)
			case "IntervalSeconds":
				var s int64
				if json.Unmarshal(v, &s) != nil || s < 1 || s > 99999999 {
					err = fmt.Errorf("a positive integer")
				}
				rt.interval = time.Duration(s) * time.Second
			case "MaxAttempts":
				if json.Unmarshal(v, &rt.max) != nil || rt.max < 0 || rt.max > 99999999 {
					err = fmt.Errorf("a non-negative integer")
				}
			case "BackoffRate":
				if json.Unmarshal(v, &rt.backoff) != nil || rt.backoff < 1 {
					err = fmt.Errorf("a number of at least 1.0")
				}
			case "MaxDelaySeconds":
				var s int64
				if json.Unmarshal(v, &s) != nil || s < 1 || s > 31622400 {
					err = fmt.Errorf("between 1 and 31622400")
				}
				rt.maxDelay = time.Duration(s) * time.Second
			case "JitterStrategy":
				var s string
				if json.Unmarshal(v, &s) != nil || s != "FULL" && s != "NONE" {
					err = fmt.Errorf("FULL or NONE")
				}
				rt.fullJitter = s == "FULL"
			case "Comment":
			default:
				err = fmt.Errorf("not a field of a retrier")
				field += "." + k
			}
			if err != nil {
				if !strings.Contains(field, ".") {
					field += "." + k
				}
				return bad(field, "%v", err)
			}
		}
		if rt.errors == nil {
			return bad(field+".ErrorEquals", "a retrier needs ErrorEquals")
		}
		st.retry = append(st.retry, rt)
	}
	var catches []map[string]json.RawMessage
	if r, ok := f["Catch"]; ok {
		if err := json.Unmarshal(r, &catches); err != nil {
			return bad("Catch", "an array of catchers")
		}
	}
	for i, r := range catches {
		field := fmt.Sprintf("Catch[%d]", i)
		k := &catcher{}
		for key, v := range r {
			var err error
			switch key {
			case "ErrorEquals":
				k.errors, err = errorNames(v, i == len(catches)-1)
			case "Next":
				if json.Unmarshal(v, &k.next) != nil || k.next == "" {
					err = fmt.Errorf("a state name")
				}
			case "ResultPath":
				if string(bytes.TrimSpace(v)) == "null" {
					k.resultNull = true
					break
				}
				var s string
				if json.Unmarshal(v, &s) != nil {
					err = fmt.Errorf("a reference path or null")
					break
				}
				k.resultPath, err = compileRefPath(s)
			case "Comment":
			default:
				if why, refused := refusedFields[key]; refused {
					err = fmt.Errorf("%s", why)
				} else {
					err = fmt.Errorf("not a field of a catcher")
				}
			}
			if err != nil {
				return bad(field+"."+key, "%v", err)
			}
		}
		if k.errors == nil || k.next == "" {
			return bad(field, "a catcher needs ErrorEquals and Next")
		}
		st.catch = append(st.catch, k)
	}
	return nil
}

// errorNames reads an ErrorEquals: non-empty; States.ALL alone and in the
// last entry.
func errorNames(v json.RawMessage, last bool) ([]string, error) {
	var names []string
	if err := json.Unmarshal(v, &names); err != nil || len(names) == 0 {
		return nil, fmt.Errorf("a non-empty array of error names")
	}
	for _, n := range names {
		if n == "" {
			return nil, fmt.Errorf("an empty error name")
		}
		if n == "States.ALL" && (len(names) != 1 || !last) {
			return nil, fmt.Errorf("States.ALL must appear alone, in the last entry")
		}
	}
	return names, nil
}

// tasks yields every Task state that names its function in its Resource
// (not the lambda:invoke integration, whose function is a parameter), in
// every scope, with its state's name.
func (m *Machine) tasks() iter.Seq2[string, *aslTask] {
	return func(yield func(string, *aslTask) bool) {
		var walk func(sc *aslScope) bool
		walk = func(sc *aslScope) bool {
			for _, name := range slices.Sorted(maps.Keys(sc.states)) {
				st := sc.states[name]
				if st.task != nil && !st.task.lambdaInvoke && !yield(name, st.task) {
					return false
				}
				for _, b := range st.branches {
					if !walk(b) {
						return false
					}
				}
				if st.processor != nil && !walk(st.processor) {
					return false
				}
			}
			return true
		}
		walk(m.top)
	}
}
