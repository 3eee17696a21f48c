package dag

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sequoia-qos/sequoia/qos"
)

// Journal keeps async runs (RunRequest.Durable) durable, so that a run
// answered 202 is finished even if its replica dies: package events keeps
// it in NATS JetStream. Begin is called before the 202; Node after each
// task completes, before the run goes on; End once it ended. A replica
// that takes over a dead replica's run calls Service.Resume with what
// Begin and Node recorded.
type Journal interface {
	Begin(rec *RunRecord) error
	Node(run, key, node string, out []byte) error
	End(snap *Snapshot) error
	// Lookup returns a run this process does not hold (another
	// replica's, or one from before a restart).
	Lookup(id string) (*Snapshot, bool)
}

// RunRecord is what a journaled run needs to be resumed anywhere: the
// DAG as it was when the run started, its input and its request.
type RunRecord struct {
	ID       string          `json:"id"`
	DAG      string          `json:"dag"`
	Source   json.RawMessage `json:"source"`
	Input    json.RawMessage `json:"input"`
	Class    uint8           `json:"class,omitempty"`
	Auth     []byte          `json:"auth,omitempty"`
	Created  time.Time       `json:"created"`
	Deadline time.Time       `json:"deadline,omitzero"`
}

// ErrJournal: an async run could not be journaled, so it was not started
// (503: nothing ran, a retry is safe).
var ErrJournal = errors.New("dag: the run journal is unavailable")

// begin journals r before its 202; on failure the run is not started.
func (s *Service) begin(r *Run, src, input json.RawMessage) error {
	rec := &RunRecord{ID: r.ID, DAG: r.DAG, Source: src, Input: input, Class: r.class, Auth: r.auth,
		Created: r.Created, Deadline: r.Deadline}
	if err := s.cfg.Journal.Begin(rec); err != nil {
		return fmt.Errorf("%w: %v", ErrJournal, err)
	}
	return nil
}

// journalNode records a completed task. A failure does not stop the run:
// the task would run again after a resume, which is still at most once
// more.
func (s *Service) journalNode(r *Run, key, node string, out []byte) {
	if err := s.cfg.Journal.Node(r.ID, key, node, out); err != nil {
		s.log.Warn("dag: a completed node was not journaled; after a crash it would run again", "run", r.ID, "node", node, "err", err)
	}
}

// journalEnd records the run's end.
func (s *Service) journalEnd(r *Run) {
	snap := r.Snapshot()
	if err := s.cfg.Journal.End(&snap); err != nil {
		s.log.Warn("dag: a run's end was not journaled", "run", r.ID, "err", err)
	}
}

// Resume runs rec again, from the journal: tasks in done (outputs by
// instance key) are not invoked again; the rest are, those that were in
// flight when the run's replica died included. The run is admitted on
// what remains of its deadline; one that can no longer finish in time ends
// deadline_exceeded at once.
func (s *Service) Resume(rec *RunRecord, done map[string]json.RawMessage) error {
	if s.cfg.Journal == nil || s.suspending.Load() {
		return ErrJournal
	}
	s.mu.RLock()
	_, known := s.active[rec.ID]
	s.mu.RUnlock()
	if known {
		return nil
	}
	r := &Run{ID: rec.ID, DAG: rec.DAG, Created: rec.Created, Deadline: rec.Deadline, svc: s, class: rec.Class, auth: rec.Auth,
		durable: true, replay: done, abort: make(chan struct{}), done: make(chan struct{}), status: Running}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// A state machine starts over (its tasks are not journaled); a DAG
	// takes the outputs of the tasks it completed.
	var d *DAG
	var err error
	if IsASL(rec.Source) {
		if r.machine, err = ParseASL(rec.Source, s.lim); err == nil {
			d = &DAG{Nodes: map[string]*Node{}}
			r.nodes = make(map[string]*NodeState, len(r.machine.names))
			for _, n := range r.machine.names {
				r.nodes[n] = &NodeState{State: statePending}
			}
		}
	} else if d, err = Parse(rec.Source, s.lim); err == nil {
		r.nodes = make(map[string]*NodeState, len(d.Nodes))
		for n := range d.Nodes {
			r.nodes[n] = &NodeState{State: statePending}
		}
	}
	if err != nil {
		d, r.nodes = &DAG{Nodes: map[string]*Node{}}, map[string]*NodeState{}
	}
	r.dag = d
	s.mu.Lock()
	s.active[r.ID] = r
	s.wg.Add(1)
	s.mu.Unlock()
	s.ev.RunStarted()
	if err != nil {
		// The DAG does not pass this replica's limits.
		go r.finish(nil, &Failure{Message: "cannot resume: " + err.Error(), err: err})
		return nil
	}
	var budget time.Duration
	if !rec.Deadline.IsZero() {
		if budget = time.Until(rec.Deadline); budget <= 0 {
			go r.finish(nil, ErrDeadline)
			return nil
		}
	}
	in, derr := decode(rec.Input)
	if derr != nil {
		in = nil
	}
	var p Plan
	if r.machine != nil {
		p = r.machine.Plan(s.sched.Estimate, s.cfg.Platform, in, s.now())
	} else {
		p = d.PlanInput(s.sched.Estimate, in)
	}
	if _, err := s.sched.AdmitRun(qos.RunPlan{Chain: r.ID, Class: r.class, Budget: budget,
		Critical: p.Critical, Work: p.Work, Steps: p.Steps, Name: r.DAG}); err != nil {
		go r.finish(nil, ErrDeadline)
		return nil
	}
	if !r.Deadline.IsZero() {
		r.timer = time.AfterFunc(time.Until(r.Deadline), func() { r.stop(ErrDeadline) })
	}
	s.log.Info("dag: run resumed from the journal", "run", r.ID, "dag", r.DAG, "completed_tasks", len(done))
	go r.execute(rec.Input)
	return nil
}

// Suspend stops the journaled runs at shutdown: no task starts any more,
// tasks waiting for a slot leave their queue, and Suspend waits, until
// ctx ends, for the tasks at the platform to finish and be journaled. The
// runs stay in the journal as running. It returns how many runs still had
// a task at the platform when ctx ended (abandoned: that task will run
// again when the run is resumed).
func (s *Service) Suspend(ctx context.Context) (abandoned int) {
	s.suspending.Store(true)
	s.mu.RLock()
	var runs []*Run
	for _, r := range s.active {
		if r.durable {
			runs = append(runs, r)
		}
	}
	s.mu.RUnlock()
	for _, r := range runs {
		r.stop(errSuspend)
	}
	for _, r := range runs {
		select {
		case <-r.done:
		case <-ctx.Done():
			abandoned++
		}
	}
	return abandoned
}

// Yield stops the journaled runs this process holds, as Suspend does,
// without waiting and without refusing new ones: the replica lost the
// journal for longer than its lease, so another replica takes its runs
// over, and running them here too would run their tasks twice.
func (s *Service) Yield() {
	s.mu.RLock()
	var runs []*Run
	for _, r := range s.active {
		if r.durable {
			runs = append(runs, r)
		}
	}
	s.mu.RUnlock()
	for _, r := range runs {
		r.stop(errSuspend)
	}
}

// Holds reports whether this process holds run id (in progress).
func (s *Service) Holds(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.active[id]
	return ok
}

// Suspending reports whether Suspend was called: journaled runs start no
// task any more.
func (s *Service) Suspending() bool { return s.suspending.Load() }

// Snapshot returns run id's state: from this process if it holds it, else
// from the journal (a run of another replica, or of this one before a
// restart).
func (s *Service) Snapshot(id string) (Snapshot, bool) {
	if r, ok := s.Run(id); ok {
		return r.Snapshot(), true
	}
	if s.cfg.Journal == nil {
		return Snapshot{}, false
	}
	snap, ok := s.cfg.Journal.Lookup(id)
	if !ok {
		return Snapshot{}, false
	}
	return *snap, true
}
