package dag

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// Status is where a run is.
type Status string

// Run statuses.
const (
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Canceled  Status = "canceled"
	TimedOut  Status = "deadline_exceeded"
	// Suspended: a journaled run this process stopped at shutdown, left
	// in the journal as running, to be resumed by another replica or the
	// next start.
	Suspended Status = "suspended"
)

// Node states.
const (
	statePending   = "pending"
	stateRunning   = "running"
	stateSucceeded = "succeeded"
	stateFailed    = "failed"
	stateCanceled  = "canceled"
)

// Errors that end a run without a node to blame.
var (
	ErrCanceled = errors.New("dag: run canceled")
	ErrDeadline = errors.New("dag: run deadline passed")
	errSuspend  = errors.New("dag: run suspended at shutdown")
)

// Failure is why a run failed: the node and what happened there.
type Failure struct {
	Node    string `json:"node,omitempty"`
	Message string `json:"message"`
	// Status is the platform's HTTP status when the function or the
	// platform answered with an error, 0 otherwise.
	Status int `json:"status,omitempty"`
	// ErrorName and Cause are a state machine's error (Step Functions'
	// Error and Cause): a function's error type, States.TaskFailed,
	// States.Timeout, a Fail state's Error, ...
	ErrorName string `json:"error_name,omitempty"`
	Cause     string `json:"cause,omitempty"`
	err       error
	errType   string // the function's own error name, when its answer gave one
	body      string // the function's or the platform's answer, for an ASL Cause
}

func (f *Failure) Error() string {
	if f.Node == "" {
		return f.Message
	}
	return fmt.Sprintf("node %q: %s", f.Node, f.Message)
}

func (f *Failure) Unwrap() error { return f.err }

// Run is one run of a DAG. Its exported methods are safe for concurrent
// use.
type Run struct {
	ID       string
	DAG      string
	Created  time.Time
	Deadline time.Time // zero: none

	dag     *DAG
	machine *Machine // a state machine's run instead (asl_run.go)
	asl     *aslRun
	svc     *Service
	class   uint8
	auth    []byte
	// durable: an async run, journaled (Config.Journal); replay holds the
	// outputs of the tasks it completed before a resume, by instance key.
	durable bool
	replay  map[string]json.RawMessage

	bytes       atomic.Int64 // outputs so far
	workers     atomic.Int64 // fan-out goroutines running
	peakWorkers atomic.Int64
	abort       chan struct{}
	// ctx is the run's root scope, cancelled when abort closes; fan-outs
	// derive their branches' scopes from it (scope.go).
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{}
	timer  *time.Timer

	mu     sync.Mutex
	cause  error // REQUIRES: mu; why abort closed
	status Status
	nodes  map[string]*NodeState
	output json.RawMessage
	fail   *Failure
	ended  time.Time
}

// NodeState is what a run did at one node. A node inside a map runs once
// per item: its counts and times cover them all.
type NodeState struct {
	State       string    `json:"state"`
	Runs        int       `json:"runs"`              // times the node was entered
	Invocations int       `json:"invocations"`       // task attempts sent to the platform
	Started     time.Time `json:"started_at"`        // first entry
	Ended       time.Time `json:"ended_at,omitzero"` // last exit
	FunctionMs  float64   `json:"function_ms"`       // tasks: time holding a worker slot, summed
	QueuedMs    float64   `json:"queued_ms"`         // tasks: time waiting for one, summed
	Error       string    `json:"error,omitempty"`
	// Replayed counts the task's runs answered from the journal after the
	// run was resumed, without invoking the function again.
	Replayed int `json:"replayed,omitempty"`
	active   int
}

// Done is closed when the run has ended.
func (r *Run) Done() <-chan struct{} { return r.done }

// Cancel stops the run: nothing more is invoked, invocations in flight
// finish and are discarded. It reports whether the run was still going.
func (r *Run) Cancel() bool { return r.stop(ErrCanceled) }

// StartedWith reports whether auth is the non-empty Authorization the run
// was started with (compared in constant time): who started a run may
// cancel it.
func (r *Run) StartedWith(auth []byte) bool {
	return len(r.auth) > 0 && subtle.ConstantTimeCompare(r.auth, auth) == 1
}

// stop ends the run early with cause; the first cause wins.
func (r *Run) stop(cause error) bool {
	r.mu.Lock()
	if r.cause != nil || r.status != Running {
		r.mu.Unlock()
		return false
	}
	r.cause = cause
	r.mu.Unlock()
	r.once.Do(r.closeAbort)
	return true
}

func (r *Run) stopped() error {
	select {
	case <-r.abort:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.cause
	default:
		return nil
	}
}

// Result returns the run's status, its output and its failure (nil unless
// it failed).
func (r *Run) Result() (Status, json.RawMessage, *Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.output, r.fail
}

// Snapshot is a run as GET /sequoia/v1/runs/{id} shows it.
type Snapshot struct {
	ID         string                `json:"id"`
	DAG        string                `json:"dag"`
	Status     Status                `json:"status"`
	Created    time.Time             `json:"created_at"`
	Ended      time.Time             `json:"ended_at,omitzero"`
	Deadline   time.Time             `json:"deadline,omitzero"`
	DurationMs float64               `json:"duration_ms"`
	Output     json.RawMessage       `json:"output,omitempty"`
	Error      *Failure              `json:"error,omitempty"`
	Nodes      map[string]*NodeState `json:"nodes"`
}

// Snapshot copies the run's state.
func (r *Run) Snapshot() Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Snapshot{ID: r.ID, DAG: r.DAG, Status: r.status, Created: r.Created, Ended: r.ended,
		Deadline: r.Deadline, Output: r.output, Error: r.fail, Nodes: make(map[string]*NodeState, len(r.nodes))}
	end := r.ended
	if end.IsZero() {
		end = time.Now()
	}
	s.DurationMs = ms(end.Sub(r.Created))
	for k, v := range r.nodes {
		c := *v
		s.Nodes[k] = &c
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *Run) closeAbort() {
	close(r.abort)
	r.cancel()
}

// WatchGone implements qos.Watcher: a queued invocation of the run stops
// waiting when the run is stopped.
func (r *Run) WatchGone() <-chan struct{} { return r.abort }

// StopWatch implements qos.Watcher.
func (r *Run) StopWatch() {}

// execute runs the DAG on input and records the end.
func (r *Run) execute(input []byte) {
	var out []byte
	var err error
	if r.machine != nil {
		out, err = r.runMachine(input)
	} else {
		out, err = r.flow(r.root(), r.dag.Start, input)
	}
	if c := r.stopped(); c != nil && (err == nil || errors.Is(err, errStopped)) {
		err = c
	}
	r.finish(out, err)
}

// errStopped is what a node returns when it saw the run stopped.
var errStopped = errors.New("dag: stopped")

// errDenied marks a node invocation the policy denied.
var errDenied = errors.New("dag: denied by policy")

func (r *Run) finish(out []byte, err error) {
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Lock()
	r.ended = time.Now()
	switch {
	case err == nil:
		r.status, r.output = Succeeded, out
	case errors.Is(err, ErrCanceled):
		r.status, r.fail = Canceled, &Failure{Message: err.Error(), err: err}
	case errors.Is(err, ErrDeadline):
		r.status, r.fail = TimedOut, &Failure{Message: err.Error(), err: err}
	case errors.Is(err, errSuspend):
		r.status = Suspended
	default:
		r.status = Failed
		if !errors.As(err, &r.fail) {
			r.fail = &Failure{Message: err.Error(), err: err}
		}
	}
	for _, n := range r.nodes {
		if n.State == stateRunning || n.State == statePending {
			n.State = stateCanceled
		}
	}
	status := r.status
	r.mu.Unlock()
	r.once.Do(r.closeAbort)
	if r.durable && status != Suspended {
		r.svc.journalEnd(r)
	}
	r.svc.ended(r, status)
	close(r.done)
}

// flow runs the node name, then its Next, and so on; the last output is
// the flow's. sc.path is where the flow was entered (journaled runs only:
// it makes each task's instance key).
func (r *Run) flow(sc scope, name string, in []byte) ([]byte, error) {
	for name != "" {
		n := r.dag.Nodes[name]
		nsc := sc
		if n.Next != "" {
			nsc.tail = nil // not the flow's last node
		}
		out, err := r.node(nsc, r.instance(sc.path, name), name, n, in)
		if err != nil {
			return nil, err
		}
		in, name = out, n.Next
	}
	return in, nil
}

// instance is the key of node name entered in the flow at path: unique in
// the run (cycles are refused, and fan-out and sequence steps add an
// index), and the same when a resumed run passes there again. Empty for
// runs that are not journaled.
func (r *Run) instance(path, name string) string {
	if !r.durable {
		return ""
	}
	return path + "/" + name
}

// node runs one node on its input; key is its instance key. A failure goes
// up to the fan-out or the run it is part of, which stops what else it
// runs.
func (r *Run) node(sc scope, key, name string, n *Node, in []byte) ([]byte, error) {
	if sc.ctx.Err() != nil {
		return nil, errStopped
	}
	r.enter(name)
	out, err := r.nodeBody(sc, key, name, n, in)
	if err == nil && len(out) > r.svc.lim.MaxNodeBytes {
		err = &Failure{Node: name, Message: fmt.Sprintf("output of %d bytes exceeds the per-node payload limit of %d", len(out), r.svc.lim.MaxNodeBytes)}
	}
	if err == nil && n.Kind == Task {
		if total := r.bytes.Add(int64(len(out))); total > int64(r.svc.lim.MaxRunBytes) {
			err = &Failure{Node: name, Message: fmt.Sprintf("the run's outputs reached %d bytes, over the limit of %d", total, r.svc.lim.MaxRunBytes)}
		}
	}
	if ff, ok := err.(*FanFailure); ok {
		err = &Failure{Node: name, Message: ff.Error(), err: ff} // the fan-out failed, not its last branch
	}
	r.exit(name, err)
	if err != nil && !errors.Is(err, errStopped) {
		var f *Failure
		if !errors.As(err, &f) {
			err = &Failure{Node: name, Message: err.Error(), err: err}
		}
	}
	return out, err
}

func (r *Run) nodeBody(sc scope, key, name string, n *Node, in []byte) ([]byte, error) {
	if !n.input.whole() || n.Kind == Choice || n.Kind == Map {
		v, err := decode(in)
		if err != nil {
			return nil, &Failure{Node: name, Message: "input is not JSON: " + err.Error()}
		}
		if !n.input.whole() {
			if v, err = pick(n.input, v); err != nil {
				return nil, &Failure{Node: name, Message: "input " + err.Error()}
			}
			if in, err = json.Marshal(v); err != nil {
				return nil, &Failure{Node: name, Message: err.Error()}
			}
		}
		switch n.Kind {
		case Choice:
			for _, rule := range n.Choices {
				if rule.holds(v) {
					return r.flow(sc.at(key), rule.Next, in)
				}
			}
			return r.flow(sc.at(key), n.Default, in)
		case Map:
			return r.mapItems(sc, key, name, n, v)
		}
	}
	switch n.Kind {
	case Task:
		return r.task(sc, key, name, n, in)
	case Batch:
		return r.batch(sc, name, n, in)
	case Sequence:
		var err error
		for i, s := range n.Steps {
			ssc := sc.at(r.indexed(key, i))
			if i < len(n.Steps)-1 {
				ssc.tail = nil
			}
			if in, err = r.flow(ssc, s, in); err != nil {
				return nil, err
			}
		}
		return in, nil
	case Parallel:
		f := fan{n: len(n.Branches), width: len(n.Branches), need: len(n.Branches)}
		if n.MinSuccesses > 0 {
			f.need, f.early = n.MinSuccesses, true
			f.steps = func(i int) int { return r.plannedSteps(n.Branches[i]) }
		}
		return r.fanOut(sc, f, func(bsc scope, i int) ([]byte, error) {
			return r.flow(bsc.at(r.indexed(key, i)), n.Branches[i], in)
		})
	}
	return nil, &Failure{Node: name, Message: fmt.Sprintf("unknown kind %q", n.Kind)}
}

func pick(sel selector, v any) (any, error) {
	got, ok := sel.pick(v)
	if !ok {
		return nil, fmt.Errorf("%q selects nothing", sel.src)
	}
	return got, nil
}

// indexed is the path of the i-th flow a node at key enters.
func (r *Run) indexed(key string, i int) string {
	if !r.durable {
		return ""
	}
	return key + "#" + strconv.Itoa(i)
}

// mapItems runs n.Do once per item of the array n.Items selects.
func (r *Run) mapItems(sc scope, key, name string, n *Node, v any) ([]byte, error) {
	got, err := pick(n.items, v)
	if err != nil {
		return nil, &Failure{Node: name, Message: "items " + err.Error()}
	}
	items, ok := got.([]any)
	if !ok {
		return nil, &Failure{Node: name, Message: fmt.Sprintf("items %q selects %s, not an array", n.items.src, jsonType(got))}
	}
	if len(items) > r.svc.lim.MaxMapWidth {
		return nil, &Failure{Node: name, Message: fmt.Sprintf("%d items, more than the map width limit of %d", len(items), r.svc.lim.MaxMapWidth)}
	}
	width := len(items)
	if n.MaxConcurrency > 0 {
		width = min(width, n.MaxConcurrency)
	}
	f := fan{n: len(items), width: width, need: len(items)}
	if k := n.MinSuccesses; k > 0 {
		if k > len(items) {
			return nil, &Failure{Node: name, Message: fmt.Sprintf("%d items, fewer than min_successes %d", len(items), k)}
		}
		f.need, f.early = k, true
		steps := r.plannedSteps(n.Do)
		f.steps = func(int) int { return steps }
	}
	return r.fanOut(sc, f, func(bsc scope, i int) ([]byte, error) {
		b, err := json.Marshal(items[i])
		if err != nil {
			return nil, &Failure{Node: name, Message: err.Error()}
		}
		return r.flow(bsc.at(r.indexed(key, i)), n.Do, b)
	})
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case string:
		return "a string"
	case map[string]any:
		return "an object"
	}
	return "a value"
}

// takeWorkers takes up to n goroutines from the run's budget (the map
// width limit: nested fan-outs share it) and returns how many it got.
func (r *Run) takeWorkers(n int) int {
	budget := int64(r.svc.lim.MaxMapWidth)
	for {
		used := r.workers.Load()
		got := min(int64(n), budget-used)
		if got <= 0 {
			return 0
		}
		if r.workers.CompareAndSwap(used, used+got) {
			for p := r.peakWorkers.Load(); used+got > p && !r.peakWorkers.CompareAndSwap(p, used+got); p = r.peakWorkers.Load() {
			}
			return int(got)
		}
	}
}

func (r *Run) enter(name string) {
	r.mu.Lock()
	ns := r.nodes[name]
	if ns.Runs == 0 {
		ns.Started = time.Now()
	}
	ns.Runs++
	ns.active++
	ns.State = stateRunning
	r.mu.Unlock()
}

func (r *Run) exit(name string, err error) {
	r.mu.Lock()
	ns := r.nodes[name]
	ns.active--
	ns.Ended = time.Now()
	switch {
	case errors.Is(err, errStopped):
		if ns.State != stateFailed {
			ns.State = stateCanceled
		}
	case err != nil:
		ns.State = stateFailed
		if ns.Error == "" {
			ns.Error = err.Error()
		}
	case ns.active == 0 && ns.State == stateRunning:
		ns.State = stateSucceeded
	}
	r.mu.Unlock()
}

// task invokes n's function through the scheduler, trying again as n.Retry
// says. Platform throttles (which the scheduler's limit should prevent)
// are retried on top, a few times. A journaled run records the output
// under the task's instance key; resumed, it takes the recorded output
// instead of invoking again.
func (r *Run) task(sc scope, key, name string, n *Node, in []byte) ([]byte, error) {
	if out, ok := r.replay[key]; ok && r.durable && key != "" {
		r.mu.Lock()
		r.nodes[name].Replayed++
		r.mu.Unlock()
		return out, nil
	}
	out, err := r.withRetries(sc, name, n, in)
	if err == nil && r.durable && key != "" {
		// Before the next node starts: a node completed is a node that
		// never runs again.
		r.svc.journalNode(r, key, name, out)
	}
	return out, err
}

// withRetries invokes n's function until it succeeds or its retries run out.
func (r *Run) withRetries(sc scope, name string, n *Node, in []byte) ([]byte, error) {
	attempts, backoff := 1, time.Duration(0)
	if n.Retry != nil {
		attempts, backoff = n.Retry.MaxAttempts, time.Duration(n.Retry.BackoffMs)*time.Millisecond
	}
	throttles := 0
	for a := 0; ; {
		out, throttled, err := r.invoke(sc, name, n, in)
		if err == nil {
			return out, nil
		}
		if errors.Is(err, errStopped) || errors.Is(err, errDenied) {
			return nil, err // a deny is not retried: it would be denied again
		}
		wait := backoff << min(a, 16)
		if throttled && throttles < maxThrottleRetries {
			throttles++
			wait = 10 * time.Millisecond << min(throttles, 6)
		} else if a++; a >= attempts {
			return nil, err
		}
		if !pause(sc, wait) {
			return nil, errStopped
		}
	}
}

const maxThrottleRetries = 5

// pause waits d unless the scope ends first (false).
func pause(sc scope, d time.Duration) bool {
	if d <= 0 {
		return sc.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-sc.ctx.Done():
		return false
	}
}

// invoke makes one attempt of a task at the platform, through the
// scheduler as a continuation of the run's chain. It waits in the queue
// while sc lasts; a success in a k-of-n branch's tail reports itself
// (sc.tail) before its slot is given back, so that a branch the success
// made useless never gets that slot (scope.go).
func (r *Run) invoke(sc scope, name string, n *Node, in []byte) (out []byte, throttled bool, err error) {
	svc := r.svc
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	inv := invocation.Get()
	defer invocation.Put(inv)
	inv.Tenant = target(req, svc.cfg.Platform, svc.cfg.Host, n)
	req.Header.Set("X-Sequoia-Chain-Id", r.ID)
	if len(r.auth) > 0 {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, r.auth)
	}
	if n.TimeoutMs > 0 {
		req.SetTimeout(time.Duration(n.TimeoutMs) * time.Millisecond)
	}
	req.SetBodyRaw(in)
	inv.Function, inv.Qualifier, inv.Platform = n.Function, n.Qualifier, svc.cfg.Platform
	inv.Arrival, inv.Chain, inv.Class = time.Now(), r.ID, r.class
	inv.Req, inv.Resp = req, resp
	if d := svc.cfg.Decider; d != nil {
		if deny, reason := d.Decide(inv); deny {
			svc.ev.NodeDenied(inv.Function)
			return nil, false, &Failure{Node: name, Status: fasthttp.StatusForbidden,
				Message: "policy denied: " + reason, err: errDenied}
		}
	}
	// A continuation waits as long as the run may: until its deadline,
	// else until the run is stopped (not a policy's queue timeout).
	inv.QueueTimeout = maxQueueWait
	if !r.Deadline.IsZero() {
		inv.QueueTimeout = time.Until(r.Deadline)
	}
	svc.sched.TouchRun(r.ID) // a run longer than the chain TTL stays a chain
	if o := svc.cfg.Observer; o != nil {
		o.Arrived(inv)
	}
	iv := &nodeInvoker{iv: svc.iv, platform: svc.cfg.Platform, tail: sc.tail, run: r, node: name}
	waited, err := svc.sched.Do(inv, scopeWatch{sc.ctx}, iv)
	held := time.Since(inv.Arrival) - waited
	if o := svc.cfg.Observer; o != nil {
		o.Finished(inv, held, err)
	}
	r.mu.Lock()
	ns := r.nodes[name]
	ns.QueuedMs += ms(waited)
	if err == nil {
		ns.FunctionMs += ms(held)
	}
	r.mu.Unlock()
	switch {
	case errors.Is(err, qos.ErrClientGone):
		// Withdrawn (a cancelled branch, a stopped run): never invoked,
		// its step is given back.
		r.skipSteps(1)
		return nil, false, errStopped
	case errors.Is(err, qos.ErrDeadline), errors.Is(err, qos.ErrQueueTimeout) && !r.Deadline.IsZero():
		svc.ev.NodeInvoked(false)
		r.stop(ErrDeadline)
		return nil, false, errStopped
	case err != nil:
		svc.ev.NodeInvoked(false)
		return nil, false, &Failure{Node: name, Message: err.Error(), err: err}
	}
	v, _ := platform.Classify(svc.cfg.Platform, resp)
	status := resp.StatusCode()
	if v == platform.Done && status < 300 {
		svc.ev.NodeInvoked(true)
		body := resp.Body()
		if !json.Valid(body) {
			// A function that answers with text passes it on as a
			// JSON string.
			s, _ := json.Marshal(string(body))
			return s, false, nil
		}
		return append([]byte(nil), body...), false, nil
	}
	svc.ev.NodeInvoked(false)
	msg := string(resp.Body())
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	what := "the platform answered"
	if v == platform.FunctionError {
		what = "the function failed"
	}
	full := resp.Body()
	if len(full) > maxCause {
		full = full[:maxCause]
	}
	return nil, v.Throttled(), &Failure{Node: name, Status: status,
		Message: fmt.Sprintf("%s (%d %s): %s", what, status, v, msg),
		errType: functionErrorType(full), body: string(full)}
}

// maxQueueWait bounds the wait for a slot of a run without a deadline:
// long, since an admitted run is not dropped, but finite.
const maxQueueWait = time.Hour

// plannedSteps is the invocations admission planned for the flow entered
// at name.
func (r *Run) plannedSteps(name string) int {
	return newPlanner(r.dag, func(string) time.Duration { return 0 }).flow(name).Steps
}

// maxCause bounds the answer kept as a failure's cause (Step Functions'
// limit for a Cause).
const maxCause = 32768

// functionErrorType is the error name a function's error answer gives:
// Lambda's errorType, or an "errorType" member of any platform's JSON
// answer; "" if none.
func functionErrorType(body []byte) string {
	var e struct {
		ErrorType string `json:"errorType"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.ErrorType
}
