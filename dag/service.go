package dag

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// Scheduler is what runs need of qos: admission of a whole run, the
// duration estimates it is made from, and the worker pool.
type Scheduler interface {
	Do(inv *invocation.Invocation, w qos.Watcher, iv qos.Invoker) (time.Duration, error)
	Estimate(fn string) time.Duration
	AdmitRun(p qos.RunPlan) (time.Time, error)
	EndRun(chain string, failed bool)
	TouchRun(chain string)
}

// Events is how runs report; metrics implements it. Methods must be cheap.
// NodeInvoked is one attempt of a task at the platform; NodeDenied is one
// the policy refused (never invoked), counted as a refused request is.
type Events interface {
	RunStarted()
	RunRefused()
	RunEnded(status string, d time.Duration)
	NodeInvoked(ok bool)
	NodeDenied(function string)
}

// Observer hears of every node invocation, as the proxy's observer hears of
// requests (the warm pool): Arrived before it queues, Finished once it is
// done, with its time at the platform.
type Observer interface {
	Arrived(inv *invocation.Invocation)
	Finished(inv *invocation.Invocation, latency time.Duration, err error)
}

// Decider is the policy engine as the proxy uses it: one decision per node
// invocation, which may deny it (always with a reason) or set its scheduling
// fields (class, priority, caps).
type Decider interface {
	Decide(inv *invocation.Invocation) (deny bool, reason string)
}

type nopEvents struct{}

func (nopEvents) RunStarted()                    {}
func (nopEvents) RunRefused()                    {}
func (nopEvents) RunEnded(string, time.Duration) {}
func (nopEvents) NodeInvoked(bool)               {}
func (nopEvents) NodeDenied(string)              {}

// Config configures a Service.
type Config struct {
	Platform invocation.Platform
	// Host is the platform's host[:port], the Host header of http
	// functions' calls.
	Host   string
	Limits Limits
	// MaxDAGs bounds the registered DAGs; MaxRuns bounds the runs in
	// progress and, separately, the finished runs kept for Retention.
	MaxDAGs, MaxRuns int
	Retention        time.Duration
	Events           Events   // nil: none
	Observer         Observer // nil: none
	// Decider decides every node invocation as the proxy decides every
	// request, so that a policy's deny and scheduling fields hold for
	// functions a run invokes too. nil: none.
	Decider Decider
	// CheckTask checks a task's function and qualifier against the
	// platform's naming rules, as its invoke API would parse them (the
	// proxy's route parsers); a DAG or state machine with a task it
	// refuses is invalid. nil: the generic check alone.
	CheckTask func(function, qualifier string) error
	// Journal keeps durable runs (async ones) so that another replica, or
	// the next start, resumes them (journal.go). nil: none, and async runs
	// die with the process.
	Journal Journal
	Log     *slog.Logger
}

// Errors of the Service.
var (
	ErrUnknownDAG  = errors.New("dag: no such dag")
	ErrTooLarge    = errors.New("dag: payload too large")
	ErrTooManyDAGs = errors.New("dag: too many dags registered")
	ErrTooManyRuns = errors.New("dag: too many runs in progress")
)

// Service holds the registered DAGs and the runs, and starts runs.
type Service struct {
	cfg   Config
	lim   Limits
	sched Scheduler
	iv    qos.Invoker
	ev    Events
	log   *slog.Logger

	mu     sync.RWMutex
	dags   map[string]*entry // REQUIRES: mu
	active map[string]*Run   // REQUIRES: mu
	wg     sync.WaitGroup    // runs in progress

	finished *expirable.LRU[string, *Run]

	suspending atomic.Bool // journal.go

	// now and wait are the clock of Wait states and retry intervals;
	// tests replace them.
	now  func() time.Time
	wait func(sc scope, r *Run, d time.Duration) bool
}

// entry is a registered DAG, the JSON it was given as, and who
// registered it ("" for SEQUOIA_DAG_DIR).
type entry struct {
	dag     *DAG
	machine *Machine // a state machine instead of a DAG
	src     json.RawMessage
	owner   string
}

// New returns a Service that admits runs with sched and invokes their
// tasks with iv (the proxy's platform client).
func New(cfg Config, sched Scheduler, iv qos.Invoker) *Service {
	lim := cfg.Limits
	def := DefaultLimits
	if lim.MaxNodes <= 0 {
		lim.MaxNodes = def.MaxNodes
	}
	if lim.MaxMapWidth <= 0 {
		lim.MaxMapWidth = def.MaxMapWidth
	}
	if lim.MaxNodeBytes <= 0 {
		lim.MaxNodeBytes = def.MaxNodeBytes
	}
	if lim.MaxRunBytes <= 0 {
		lim.MaxRunBytes = def.MaxRunBytes
	}
	cfg.Limits = lim
	if cfg.MaxDAGs <= 0 {
		cfg.MaxDAGs = 1000
	}
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = 10000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 10 * time.Minute
	}
	s := &Service{cfg: cfg, lim: lim, sched: sched, iv: iv, ev: cfg.Events, log: cfg.Log,
		dags: map[string]*entry{}, active: map[string]*Run{}}
	if s.ev == nil {
		s.ev = nopEvents{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.finished = expirable.NewLRU[string, *Run](cfg.MaxRuns, nil, cfg.Retention)
	s.now, s.wait = time.Now, waitHoldingNoSlot
	return s
}

// Limits returns the limits in force.
func (s *Service) Limits() Limits { return s.lim }

// Put registers (or replaces) the DAG name from its JSON, with no owner.
func (s *Service) Put(name string, src []byte) error { return s.PutOwned(name, src, "") }

// PutOwned registers (or replaces) the DAG name from its JSON, owned by
// owner: the caller the policy sees as its owner on the next write.
func (s *Service) PutOwned(name string, src []byte, owner string) error {
	if !ValidName(name) {
		return invalid("bad dag name %q (1 to 128 letters, digits, '_', '-', '.')", name)
	}
	e, err := s.parse(src)
	if err != nil {
		return err
	}
	e.owner = owner
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.dags[name]; !ok && len(s.dags) >= s.cfg.MaxDAGs {
		return ErrTooManyDAGs
	}
	s.dags[name] = e
	return nil
}

// parse reads src as a DAG or, when it has StartAt and States, a state
// machine (asl.go), within the service's limits, and checks every task's
// function with Config.CheckTask. It returns the entry Put registers.
func (s *Service) parse(src []byte) (*entry, error) {
	e := &entry{src: append(json.RawMessage(nil), src...)}
	var err error
	if IsASL(src) {
		e.machine, err = ParseASL(src, s.lim)
	} else {
		e.dag, err = Parse(src, s.lim)
	}
	if err != nil || s.cfg.CheckTask == nil {
		return e, err
	}
	for where, t := range e.tasks() {
		if err := s.cfg.CheckTask(t.function, t.qualifier); err != nil {
			problem := fmt.Sprintf("function %q: %v", t.function, err)
			if e.machine != nil {
				return nil, &StateError{State: where, Field: "Resource", Problem: problem}
			}
			return nil, &NodeError{Node: where, Problem: problem}
		}
	}
	return e, nil
}

// task is the function a task node or Task state invokes.
type task struct{ function, qualifier string }

// tasks yields, by node or state name (sorted within each scope), the
// functions e's tasks name: a state machine's lambda:invoke tasks, whose
// function is a parameter, are not among them.
func (e *entry) tasks() iter.Seq2[string, task] {
	if e.machine != nil {
		return func(yield func(string, task) bool) {
			for state, t := range e.machine.tasks() {
				if !yield(state, task{t.name, t.qualifier}) {
					return
				}
			}
		}
	}
	return func(yield func(string, task) bool) {
		for _, name := range slices.Sorted(maps.Keys(e.dag.Nodes)) {
			if n := e.dag.Nodes[name]; n.Kind == Task && !yield(name, task{n.Function, n.Qualifier}) {
				return
			}
		}
	}
}

// Tasks parses src as Put would, with the same checks, and returns the
// functions its tasks name and their qualifiers, in a stable order.
func (s *Service) Tasks(src []byte) (functions, qualifiers []string, err error) {
	e, err := s.parse(src)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range e.tasks() {
		functions = append(functions, t.function)
		qualifiers = append(qualifiers, t.qualifier)
	}
	return functions, qualifiers, nil
}

// Owner returns who registered DAG name ("" for none) and whether it is
// registered.
func (s *Service) Owner(name string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.dags[name]
	if !ok {
		return "", false
	}
	return e.owner, true
}

// Get returns the JSON DAG name was registered with.
func (s *Service) Get(name string) (json.RawMessage, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.dags[name]
	if !ok {
		return nil, false
	}
	return e.src, true
}

// Names returns the registered DAGs' names, sorted (an empty list, not
// nil, when there are none).
func (s *Service) Names() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string{}, slices.Sorted(maps.Keys(s.dags))...)
}

// Delete removes DAG name; runs in progress go on.
func (s *Service) Delete(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.dags[name]
	delete(s.dags, name)
	return ok
}

// LoadDir registers every *.json file in dir as the DAG named after the
// file. An invalid file stops the load with an error naming it.
func (s *Service) LoadDir(dir string) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return 0, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		if err := s.Put(strings.TrimSuffix(filepath.Base(f), ".json"), b); err != nil {
			return 0, fmt.Errorf("%s: %w", f, err)
		}
	}
	return len(files), nil
}

// RunRequest is what starts a run.
type RunRequest struct {
	Input json.RawMessage
	// Budget overrides the DAG's deadline_ms when positive.
	Budget time.Duration
	Class  uint8
	// Auth is passed on to every invocation as its Authorization header
	// (OpenWhisk's credentials); nil for none.
	Auth []byte
	// Durable journals the run (Config.Journal) before Start returns, so
	// that it outlives this process: for runs answered 202.
	Durable bool
}

// Start admits a run of DAG name and starts it. A run that cannot meet
// its deadline is refused (a *qos.RefusedError) before any function runs.
func (s *Service) Start(name string, rr RunRequest) (*Run, error) {
	s.mu.RLock()
	e, ok := s.dags[name]
	nActive := len(s.active)
	s.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownDAG
	}
	if len(rr.Input) > s.lim.MaxNodeBytes {
		return nil, fmt.Errorf("%w: input of %d bytes, over the limit of %d", ErrTooLarge, len(rr.Input), s.lim.MaxNodeBytes)
	}
	if len(rr.Input) == 0 {
		rr.Input = json.RawMessage("null")
	}
	if nActive >= s.cfg.MaxRuns {
		return nil, ErrTooManyRuns
	}
	d := e.dag
	r := &Run{ID: "run-" + strings.ToLower(rand.Text()), DAG: name, Created: time.Now(), dag: d, machine: e.machine, svc: s,
		class: rr.Class, auth: rr.Auth, abort: make(chan struct{}), done: make(chan struct{}), status: Running}
	in, err := decode(rr.Input)
	if err != nil {
		return nil, invalid("input is not JSON: %v", err)
	}
	budget := rr.Budget
	var p Plan
	if m := e.machine; m != nil {
		if budget <= 0 {
			budget = m.timeout
		}
		r.nodes = make(map[string]*NodeState, len(m.names))
		for _, n := range m.names {
			r.nodes[n] = &NodeState{State: statePending}
		}
		p = m.Plan(s.sched.Estimate, s.cfg.Platform, in, s.now())
	} else {
		if budget <= 0 {
			budget = time.Duration(d.DeadlineMs) * time.Millisecond
		}
		r.nodes = make(map[string]*NodeState, len(d.Nodes))
		for n := range d.Nodes {
			r.nodes[n] = &NodeState{State: statePending}
		}
		p = d.PlanInput(s.sched.Estimate, in)
	}
	deadline, err := s.sched.AdmitRun(qos.RunPlan{Chain: r.ID, Class: rr.Class, Budget: budget,
		Critical: p.Critical, Work: p.Work, Steps: p.Steps, Name: r.DAG})
	if err != nil {
		s.ev.RunRefused()
		return nil, err
	}
	r.Deadline = deadline
	r.ctx, r.cancel = context.WithCancel(context.Background())
	durable := rr.Durable && s.cfg.Journal != nil
	if durable && s.suspending.Load() {
		s.sched.EndRun(r.ID, true)
		return nil, fmt.Errorf("%w: shutting down", ErrJournal)
	}
	r.durable = durable
	s.mu.Lock()
	s.active[r.ID] = r // before the journal has it: Resume never takes it for a lost run
	s.mu.Unlock()
	if durable {
		if err := s.begin(r, e.src, rr.Input); err != nil { // journal.go
			s.mu.Lock()
			delete(s.active, r.ID)
			s.mu.Unlock()
			s.sched.EndRun(r.ID, true)
			return nil, err
		}
	}
	s.mu.Lock()
	s.wg.Add(1)
	s.mu.Unlock()
	s.ev.RunStarted()
	if !deadline.IsZero() {
		r.timer = time.AfterFunc(time.Until(deadline), func() { r.stop(ErrDeadline) })
	}
	go r.execute(rr.Input)
	return r, nil
}

// ended moves r from the active runs to the finished ones.
func (s *Service) ended(r *Run, st Status) {
	s.sched.EndRun(r.ID, st != Succeeded)
	s.finished.Add(r.ID, r)
	s.mu.Lock()
	delete(s.active, r.ID)
	s.mu.Unlock()
	s.ev.RunEnded(string(st), r.ended.Sub(r.Created))
	s.wg.Done()
}

// Run returns run id, in progress or finished within the retention.
func (s *Service) Run(id string) (*Run, bool) {
	s.mu.RLock()
	r, ok := s.active[id]
	s.mu.RUnlock()
	if ok {
		return r, true
	}
	return s.finished.Get(id)
}

// Active returns the number of runs in progress.
func (s *Service) Active() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.active)
}

// CancelAll cancels every run in progress (shutdown, once its time has run
// out) and returns how many it canceled.
func (s *Service) CancelAll() int {
	s.mu.RLock()
	runs := slices.Collect(maps.Values(s.active))
	s.mu.RUnlock()
	n := 0
	for _, r := range runs {
		if r.Cancel() {
			n++
		}
	}
	return n
}

// Wait waits until no run is in progress or done closes; it reports
// whether none is.
func (s *Service) Wait(done <-chan struct{}) bool {
	ch := make(chan struct{})
	go func() { s.wg.Wait(); close(ch) }()
	select {
	case <-ch:
		return true
	case <-done:
		return false
	}
}

// touchEvery is how often a run that waits (a Wait state, a retry's
// interval) renews its place in the scheduler's chain table, so that its
// next invocations stay continuations however long it waits.
const touchEvery = 20 * time.Second

// waitHoldingNoSlot waits d for r, holding no worker slot, unless sc ends
// first (false).
func waitHoldingNoSlot(sc scope, r *Run, d time.Duration) bool {
	for d > touchEvery {
		if !pause(sc, touchEvery) {
			return false
		}
		r.svc.sched.TouchRun(r.ID)
		d -= touchEvery
	}
	return pause(sc, d)
}
