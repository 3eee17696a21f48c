package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
)

// aslRun is what a state machine's run keeps beyond a DAG run's.
type aslRun struct {
	input       any // the run's input, for $$.Execution.Input
	transitions atomic.Int64
}

// aslError is an ASL error: its name (Error) and Cause, and the state it
// happened in.
type aslError struct {
	name, cause, state string
	status             int
	err                error
}

func (e *aslError) Error() string {
	if e.cause == "" {
		return e.name
	}
	return e.name + ": " + e.cause
}

func (e *aslError) Unwrap() error { return e.err }

func stateErr(state, name, format string, args ...any) *aslError {
	return &aslError{name: name, cause: fmt.Sprintf(format, args...), state: state}
}

// runMachine runs the run's state machine on input.
func (r *Run) runMachine(input []byte) ([]byte, error) {
	in, err := decode(input)
	if err != nil {
		return nil, &Failure{Message: "input is not JSON: " + err.Error()}
	}
	r.asl = &aslRun{input: in}
	out, err := r.runScope(r.root(), r.machine.top, in)
	if err != nil {
		var ae *aslError
		if errors.As(err, &ae) {
			return nil, &Failure{Node: ae.state, Message: ae.Error(), Status: ae.status,
				ErrorName: ae.name, Cause: ae.cause, err: err}
		}
		return nil, err
	}
	return json.Marshal(out)
}

// runScope runs a scope's states from its start until one ends it.
func (r *Run) runScope(sc scope, s *aslScope, in any) (any, error) {
	name := s.start
	for {
		if r.asl.transitions.Add(1) > maxTransitions {
			return nil, stateErr(name, "States.Runtime", "more than %d state transitions in one run", maxTransitions)
		}
		st := s.states[name]
		out, next, err := r.runState(sc, st, in)
		if err != nil {
			return nil, err
		}
		if next == "" {
			return out, nil
		}
		in, name = out, next
	}
}

// contextObject is the context object ($$) of a state.
func (r *Run) contextObject(st *aslState, retries int, item *mapItem) map[string]any {
	c := map[string]any{
		"Execution": map[string]any{"Id": r.ID, "Name": r.ID, "Input": r.asl.input,
			"StartTime": r.Created.UTC().Format(time.RFC3339Nano), "RoleArn": ""},
		"State":        map[string]any{"Name": st.name, "EnteredTime": time.Now().UTC().Format(time.RFC3339Nano), "RetryCount": json.Number(fmt.Sprint(retries))},
		"StateMachine": map[string]any{"Id": r.DAG, "Name": r.DAG},
	}
	if item != nil {
		c["Map"] = map[string]any{"Item": map[string]any{"Index": json.Number(fmt.Sprint(item.index)), "Value": item.value}}
	}
	return c
}

type mapItem struct {
	index int
	value any
}

// runState runs one state on its input; it returns the state's output and
// the next state ("" when the scope ends).
func (r *Run) runState(sc scope, st *aslState, raw any) (out any, next string, err error) {
	if sc.ctx.Err() != nil {
		return nil, "", errStopped
	}
	r.enter(st.name)
	defer func() {
		if ae := (*aslError)(nil); errors.As(err, &ae) && ae.state == "" {
			ae.state = st.name
		}
		r.exit(st.name, err)
	}()
	switch st.typ {
	case "Choice":
		eff, cx, err := r.effectiveInput(st, raw, 0)
		if err != nil {
			return nil, "", err
		}
		for _, rule := range st.choices {
			ok, err := rule.holds(eff, cx)
			if err != nil {
				return nil, "", stateErr(st.name, "States.Runtime", "%v", err)
			}
			if ok {
				out, err := r.outputPath(st, eff, cx)
				return out, rule.next, err
			}
		}
		if st.def == "" {
			return nil, "", stateErr(st.name, "States.NoChoiceMatched", "no choice rule matched and there is no Default")
		}
		out, err := r.outputPath(st, eff, cx)
		return out, st.def, err
	case "Succeed":
		eff, cx, err := r.effectiveInput(st, raw, 0)
		if err != nil {
			return nil, "", err
		}
		out, err := r.outputPath(st, eff, cx)
		return out, "", err
	case "Fail":
		return nil, "", r.failState(st, raw)
	case "Wait":
		eff, cx, err := r.effectiveInput(st, raw, 0)
		if err != nil {
			return nil, "", err
		}
		d, err := st.waitFor(eff, r.svc.now())
		if err != nil {
			return nil, "", err
		}
		if d > 0 && !r.svc.wait(sc, r, d) {
			return nil, "", errStopped
		}
		out, err := r.outputPath(st, eff, cx)
		return out, st.next, err
	}
	// Pass, Task, Parallel and Map: InputPath, Parameters, the work,
	// ResultSelector, ResultPath, OutputPath; Retry and Catch around.
	counts := make([]int, len(st.retry))
	for retries := 0; ; retries++ {
		out, err := r.attempt(sc, st, raw, retries)
		if err == nil {
			return out, st.next, nil
		}
		var ae *aslError
		if !errors.As(err, &ae) {
			return nil, "", err // stopped
		}
		if i := matchRetrier(st.retry, ae.name); i >= 0 && counts[i] < st.retry[i].max {
			rt := st.retry[i]
			d := float64(rt.interval) * math.Pow(rt.backoff, float64(counts[i]))
			if rt.maxDelay > 0 {
				d = min(d, float64(rt.maxDelay))
			}
			if rt.fullJitter {
				d = rand.Float64() * d
			}
			counts[i]++
			// A retry's wait holds no slot.
			if !r.svc.wait(sc, r, time.Duration(min(d, float64(math.MaxInt64/2)))) {
				return nil, "", errStopped
			}
			continue
		}
		for _, k := range st.catch {
			if !errorMatches(k.errors, ae.name) {
				continue
			}
			errOut := map[string]any{"Error": ae.name, "Cause": ae.cause}
			var out any = errOut
			switch {
			case k.resultNull:
				out = raw
			case k.resultPath != nil:
				if out, err = k.resultPath.set(raw, errOut); err != nil {
					return nil, "", stateErr(st.name, "States.ResultPathMatchFailure", "%v", err)
				}
			}
			return out, k.next, nil
		}
		return nil, "", err
	}
}

// matchRetrier is the first retrier for the error, -1 if none.
func matchRetrier(rs []*retrier, name string) int {
	for i, rt := range rs {
		if errorMatches(rt.errors, name) {
			return i
		}
	}
	return -1
}

// errorMatches is ErrorEquals: the name itself, States.ALL for every error
// but States.Runtime and States.DataLimitExceeded, States.TaskFailed for
// every such error but States.Timeout.
func errorMatches(names []string, name string) bool {
	terminal := name == "States.Runtime" || name == "States.DataLimitExceeded"
	for _, n := range names {
		switch {
		case n == name:
			return true
		case n == "States.ALL" && !terminal:
			return true
		case n == "States.TaskFailed" && !terminal && name != "States.Timeout":
			return true
		}
	}
	return false
}

// effectiveInput applies InputPath; it returns the context object when
// the state reads it.
func (r *Run) effectiveInput(st *aslState, raw any, retries int) (any, map[string]any, error) {
	var cx map[string]any
	if st.usesCx {
		cx = r.contextObject(st, retries, nil)
	}
	switch {
	case st.inputNull:
		return map[string]any{}, cx, nil
	case st.inputPath != nil:
		v, err := st.inputPath.get(raw, cx)
		if err != nil {
			return nil, nil, stateErr(st.name, "States.Runtime", "InputPath: %v", err)
		}
		return v, cx, nil
	}
	return raw, cx, nil
}

// outputPath applies OutputPath.
func (r *Run) outputPath(st *aslState, v any, cx map[string]any) (any, error) {
	switch {
	case st.outputNull:
		return map[string]any{}, nil
	case st.outputPath != nil:
		out, err := st.outputPath.get(v, cx)
		if err != nil {
			return nil, stateErr(st.name, "States.Runtime", "OutputPath: %v", err)
		}
		return out, nil
	}
	return v, nil
}

// attempt runs a Pass, Task, Parallel or Map state once.
func (r *Run) attempt(sc scope, st *aslState, raw any, retries int) (any, error) {
	eff, cx, err := r.effectiveInput(st, raw, retries)
	if err != nil {
		return nil, err
	}
	if st.params != nil {
		if eff, err = st.params.eval(eff, cx); err != nil {
			return nil, paramErr(st, "Parameters", err)
		}
	}
	var result any
	switch st.typ {
	case "Pass":
		result = eff
		if st.result != nil {
			result, _ = st.result.eval(nil, nil)
		}
	case "Task":
		result, err = r.aslTask(sc, st, eff)
	case "Parallel":
		result, err = r.aslParallel(sc, st, eff)
	case "Map":
		result, err = r.aslMap(sc, st, eff)
	}
	if err != nil {
		return nil, err
	}
	if st.selector != nil {
		if result, err = st.selector.eval(result, cx); err != nil {
			return nil, paramErr(st, "ResultSelector", err)
		}
	}
	out := result
	switch {
	case st.resultNull:
		out = raw
	case st.resultPath != nil:
		if out, err = st.resultPath.set(raw, result); err != nil {
			return nil, stateErr(st.name, "States.ResultPathMatchFailure", "ResultPath: %v", err)
		}
	}
	return r.outputPath(st, out, cx)
}

func paramErr(st *aslState, field string, err error) error {
	var ie *errIntrinsic
	if errors.As(err, &ie) {
		return stateErr(st.name, "States.IntrinsicFailure", "%s: %v", field, err)
	}
	return stateErr(st.name, "States.Runtime", "%s: %v", field, err)
}

// failState is a Fail state's error.
func (r *Run) failState(st *aslState, raw any) error {
	e := &aslError{name: st.errName, cause: st.cause, state: st.name}
	var cx map[string]any
	if st.usesCx {
		cx = r.contextObject(st, 0, nil)
	}
	for _, p := range []struct {
		path *aslPath
		to   *string
	}{{st.errorPath, &e.name}, {st.causePath, &e.cause}} {
		if p.path == nil {
			continue
		}
		v, err := p.path.get(raw, cx)
		s, ok := v.(string)
		if err != nil || !ok {
			return stateErr(st.name, "States.Runtime", "%s does not select a string", p.path.src)
		}
		*p.to = s
	}
	return e
}

// waitFor is how long a Wait state waits.
func (st *aslState) waitFor(eff any, now time.Time) (time.Duration, error) {
	switch {
	case st.secondsPath != nil:
		v, err := st.secondsPath.get(eff, nil)
		f, ok := number(v)
		if err != nil || !ok || f < 0 || f != math.Trunc(f) {
			return 0, stateErr(st.name, "States.Runtime", "SecondsPath %q does not select a non-negative integer", st.secondsPath.src)
		}
		return time.Duration(f) * time.Second, nil
	case st.timestampPath != nil:
		v, err := st.timestampPath.get(eff, nil)
		s, ok := v.(string)
		t, perr := time.Parse(time.RFC3339Nano, s)
		if err != nil || !ok || perr != nil {
			return 0, stateErr(st.name, "States.Runtime", "TimestampPath %q does not select an RFC 3339 timestamp", st.timestampPath.src)
		}
		return t.Sub(now), nil
	case !st.timestamp.IsZero():
		return st.timestamp.Sub(now), nil
	}
	return time.Duration(st.seconds) * time.Second, nil
}

// function is the function a Task calls on platform p, with its
// qualifier.
func (t *aslTask) function(p invocation.Platform) (string, string) {
	if p == invocation.Lambda && t.arn != "" {
		return t.arn, t.qualifier
	}
	return t.name, t.qualifier
}

// aslTask invokes a Task's function with eff (after Parameters).
func (r *Run) aslTask(sc scope, st *aslState, eff any) (any, error) {
	t := st.task
	payload := eff
	if t.lambdaInvoke {
		p, _ := eff.(map[string]any)
		fnName, _ := p["FunctionName"].(string)
		var err error
		if t, err = lambdaTarget(fnName); err != nil {
			return nil, stateErr(st.name, "States.Runtime", "FunctionName: %v", err)
		}
		if q, ok := p["Qualifier"].(string); ok && q != "" {
			t.qualifier = q
		}
		payload = p["Payload"]
		if payload == nil {
			payload = map[string]any{}
		}
	}
	in, err := json.Marshal(payload)
	if err != nil {
		return nil, stateErr(st.name, "States.Runtime", "%v", err)
	}
	fn, qual := t.function(r.svc.cfg.Platform)
	n := &Node{Kind: Task, Function: fn, Qualifier: qual, TimeoutMs: st.timeout.Milliseconds()}
	out, err := r.task(sc, "", st.name, n, in) // not journaled: a resumed state machine starts over
	if err != nil {
		return nil, taskError(st.name, err)
	}
	if len(out) > r.svc.lim.MaxNodeBytes {
		return nil, stateErr(st.name, "States.DataLimitExceeded", "output of %d bytes exceeds the per-node payload limit of %d", len(out), r.svc.lim.MaxNodeBytes)
	}
	if total := r.bytes.Add(int64(len(out))); total > int64(r.svc.lim.MaxRunBytes) {
		return nil, stateErr(st.name, "States.DataLimitExceeded", "the run's outputs reached %d bytes, over the limit of %d", total, r.svc.lim.MaxRunBytes)
	}
	v, err := decode(out)
	if err != nil {
		return nil, stateErr(st.name, "States.Runtime", "the function's answer is not JSON: %v", err)
	}
	if st.task.lambdaInvoke {
		ver := "$LATEST"
		if qual != "" {
			ver = qual
		}
		v = map[string]any{"ExecutedVersion": ver, "Payload": v, "StatusCode": json.Number("200")}
	}
	return v, nil
}

// lambdaTarget reads the Lambda integration's FunctionName: a name, a
// name with a qualifier, or an ARN.
func lambdaTarget(s string) (*aslTask, error) {
	if strings.HasPrefix(s, "arn:") {
		return parseResource(s)
	}
	name, qual, _ := strings.Cut(s, ":")
	if qual == "$LATEST" {
		qual = ""
	}
	if !validFunction(name) || strings.Contains(name, "/") || qual != "" && !validFunction(qual) {
		return nil, fmt.Errorf("%q is not a function name", s)
	}
	return &aslTask{name: name, qualifier: qual}, nil
}

// taskError names a task's failure as Step Functions does.
func taskError(state string, err error) error {
	if errors.Is(err, errStopped) {
		return err
	}
	var f *Failure
	if !errors.As(err, &f) {
		return &aslError{name: "States.TaskFailed", cause: err.Error(), state: state, err: err}
	}
	e := &aslError{name: "States.TaskFailed", cause: f.Message, state: state, status: f.Status, err: err}
	switch {
	case errors.Is(err, platform.ErrTimeout):
		e.name = "States.Timeout"
	case errors.Is(err, errDenied):
		e.name = "States.Permissions"
	case f.errType != "":
		e.name, e.cause = f.errType, f.body
	case f.body != "":
		e.cause = f.body
	}
	return e
}

// aslParallel runs every branch on eff; the output is their outputs in
// order. The first branch to fail stops the others and fails the state
// with its error.
func (r *Run) aslParallel(sc scope, st *aslState, eff any) (any, error) {
	f := fan{n: len(st.branches), width: len(st.branches), need: len(st.branches)}
	out, err := r.fanOut(sc, f, func(bsc scope, i int) ([]byte, error) {
		v, err := r.runScope(bsc, st.branches[i], eff)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	})
	if err != nil {
		return nil, err
	}
	return decode(out)
}

// aslMap runs the item processor once per item (or per batch, with
// ItemBatcher); the output is their outputs in order.
func (r *Run) aslMap(sc scope, st *aslState, eff any) (any, error) {
	var items any = eff
	if st.itemsPath != nil {
		var err error
		if items, err = st.itemsPath.get(eff, nil); err != nil {
			return nil, stateErr(st.name, "States.Runtime", "ItemsPath: %v", err)
		}
	}
	arr, ok := items.([]any)
	if !ok {
		return nil, stateErr(st.name, "States.Runtime", "the items are %s, not an array", jsonType(items))
	}
	if len(arr) > r.svc.lim.MaxMapWidth {
		return nil, stateErr(st.name, "States.DataLimitExceeded", "%d items, more than the map width limit of %d (SEQUOIA_DAG_MAX_MAP_WIDTH)", len(arr), r.svc.lim.MaxMapWidth)
	}
	inputs := make([]any, len(arr))
	for i, v := range arr {
		inputs[i] = v
		if st.itemSelector != nil {
			var cx map[string]any
			if st.itemSelector.usesCx {
				cx = r.contextObject(st, 0, &mapItem{index: i, value: v})
			}
			sel, err := st.itemSelector.eval(eff, cx)
			if err != nil {
				return nil, paramErr(st, "ItemSelector", err)
			}
			inputs[i] = sel
		}
	}
	if st.batchItems > 0 || st.batchBytes > 0 {
		var err error
		if inputs, err = r.batchItems(st, eff, inputs); err != nil {
			return nil, err
		}
	}
	n := len(inputs)
	width := n
	if st.maxConc > 0 {
		width = min(n, st.maxConc)
	}
	f := fan{n: n, width: width, need: n}
	tolerated := n
	if st.tolCount >= 0 {
		tolerated = min(tolerated, st.tolCount)
	}
	if st.tolPercent >= 0 {
		tolerated = min(tolerated, int(math.Floor(st.tolPercent*float64(n)/100)))
	}
	if st.tolCount >= 0 || st.tolPercent >= 0 {
		f.need = n - tolerated
		f.failed = func(_ int, err error) []byte {
			var ae *aslError
			if !errors.As(err, &ae) {
				return nil
			}
			b, _ := json.Marshal(map[string]string{"Error": ae.name, "Cause": ae.cause})
			return b
		}
	}
	out, err := r.fanOut(sc, f, func(bsc scope, i int) ([]byte, error) {
		v, err := r.runScope(bsc, st.processor, inputs[i])
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	})
	var ff *FanFailure
	if errors.As(err, &ff) {
		return nil, stateErr(st.name, "States.ExceedToleratedFailureThreshold", "%d of %d items failed, more than the %d tolerated: %v", ff.Failed, ff.N, ff.N-ff.Need, ff.Last)
	}
	if err != nil {
		return nil, err
	}
	return decode(out)
}

// batchItems groups a Map's items as ItemBatcher says: each child gets
// {"Items": [...], "BatchInput": ...}.
func (r *Run) batchItems(st *aslState, eff any, inputs []any) ([]any, error) {
	var batchInput any
	if st.batchInput != nil {
		var cx map[string]any
		if st.batchInput.usesCx {
			cx = r.contextObject(st, 0, nil)
		}
		v, err := st.batchInput.eval(eff, cx)
		if err != nil {
			return nil, paramErr(st, "ItemBatcher.BatchInput", err)
		}
		batchInput = v
	}
	var out []any
	var cur []any
	size := 0
	flush := func() {
		b := map[string]any{"Items": cur}
		if st.batchInput != nil {
			b["BatchInput"] = batchInput
		}
		out = append(out, b)
		cur, size = nil, 0
	}
	for _, it := range inputs {
		n := 0
		if st.batchBytes > 0 {
			b, _ := json.Marshal(it)
			n = len(b)
			if n > st.batchBytes {
				return nil, stateErr(st.name, "States.DataLimitExceeded", "an item of %d bytes is over MaxInputBytesPerBatch %d", n, st.batchBytes)
			}
		}
		if len(cur) > 0 && (st.batchItems > 0 && len(cur) >= st.batchItems || st.batchBytes > 0 && size+n > st.batchBytes) {
			flush()
		}
		cur = append(cur, it)
		size += n
	}
	if len(cur) > 0 {
		flush()
	}
	return out, nil
}
