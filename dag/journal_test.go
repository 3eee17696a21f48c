package dag

import (
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"
)

// memJournal is a Journal in memory, for dag's own tests (package events
// keeps the real one in JetStream).
type memJournal struct {
	mu    sync.Mutex
	begun map[string]*RunRecord
	nodes map[string]map[string]json.RawMessage // run: key: output
	names map[string]string                     // key: node
	ended map[string]*Snapshot
}

func newMemJournal() *memJournal {
	return &memJournal{begun: map[string]*RunRecord{}, nodes: map[string]map[string]json.RawMessage{},
		names: map[string]string{}, ended: map[string]*Snapshot{}}
}

func (j *memJournal) Begin(rec *RunRecord) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.begun[rec.ID] = rec
	j.nodes[rec.ID] = map[string]json.RawMessage{}
	return nil
}

func (j *memJournal) Node(run, key, node string, out []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.nodes[run] == nil {
		j.nodes[run] = map[string]json.RawMessage{}
	}
	j.nodes[run][key] = append(json.RawMessage(nil), out...)
	j.names[key] = node
	return nil
}

func (j *memJournal) End(snap *Snapshot) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ended[snap.ID] = snap
	return nil
}

func (j *memJournal) Lookup(id string) (*Snapshot, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s, ok := j.ended[id]
	return s, ok
}

func (j *memJournal) done(run string) map[string]json.RawMessage {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.nodes[run])
}

func journaledRig(t *testing.T) (*rig, *memJournal) {
	t.Helper()
	r := newRig(t, 8, nil)
	j := newMemJournal()
	r.svc.cfg.Journal = j
	return r, j
}

const journalDAG = `{"start":"a","nodes":{
	"a":{"kind":"task","function":"fa","next":"m"},
	"m":{"kind":"map","items":"$.input.items","do":"t","next":"p"},
	"t":{"kind":"task","function":"ft"},
	"p":{"kind":"parallel","branches":["b","c"]},
	"b":{"kind":"task","function":"fb"},
	"c":{"kind":"task","function":"fc"}}}`

// TestJournalRecordsAndReplays: a durable run journals its record, each
// task instance's output under a key of its own (a map's items apart),
// and its end; resumed from the journal with one task missing, it invokes
// only that task and ends with the same output.
func TestJournalRecordsAndReplays(t *testing.T) {
	r, j := journaledRig(t)
	r.put(t, "j", journalDAG)
	run, err := r.svc.Start("j", RunRequest{Input: json.RawMessage(`{"items":[1,2,3]}`), Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	<-run.Done()
	st, out, f := run.Result()
	if st != Succeeded {
		t.Fatalf("run: %s %v", st, f)
	}
	done := j.done(run.ID)
	if len(done) != 6 { // a, three map items, b, c
		t.Fatalf("journaled %d task instances, want 6: %v", len(done), slicesOf(done))
	}
	if rec := j.begun[run.ID]; rec == nil || rec.DAG != "j" || string(rec.Input) != `{"items":[1,2,3]}` {
		t.Errorf("record %+v", rec)
	}
	if e := j.ended[run.ID]; e == nil || e.Status != Succeeded || string(e.Output) != string(out) {
		t.Errorf("journaled end %+v", e)
	}
	before := r.emu.Stats().Invocations

	// One of the map's items was in flight when its replica died.
	var missing string
	for k := range done {
		if j.names[k] == "t" {
			missing = k
			break
		}
	}
	delete(done, missing)
	rec := *j.begun[run.ID]
	rec.ID = "run-resumed"
	if err := r.svc.Resume(&rec, done); err != nil {
		t.Fatal(err)
	}
	again, ok := r.svc.Run("run-resumed")
	if !ok {
		t.Fatal("the resumed run is not held")
	}
	<-again.Done()
	st2, out2, f2 := again.Result()
	if st2 != Succeeded || string(out2) != string(out) {
		t.Errorf("resumed: %s %s (%v), want %s", st2, out2, f2, out)
	}
	if n := r.emu.Stats().Invocations - before; n != 1 {
		t.Errorf("the resumed run invoked %d tasks, want 1 (the missing one)", n)
	}
	snap := again.Snapshot()
	if snap.Nodes["a"].Replayed != 1 || snap.Nodes["t"].Replayed != 2 || snap.Nodes["b"].Replayed != 1 {
		t.Errorf("replayed: a %d, t %d, b %d; want 1, 2, 1", snap.Nodes["a"].Replayed, snap.Nodes["t"].Replayed, snap.Nodes["b"].Replayed)
	}
}

func slicesOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestYieldAndSuspend: a durable run yielded (or suspended at shutdown)
// while a task runs lets that task finish and journals it, starts nothing
// more, ends suspended and journals no end; a run that is not durable goes
// on; once suspending, new durable runs are refused.
func TestYieldAndSuspend(t *testing.T) {
	r, j := journaledRig(t)
	r.put(t, "slow", `{"start":"a","nodes":{
		"a":{"kind":"task","function":"fa","next":"b"},
		"b":{"kind":"task","function":"fb"}}}`)
	run, err := r.svc.Start("slow", RunRequest{Input: json.RawMessage(`{"exec_ms":300}`), Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := r.svc.Start("slow", RunRequest{Input: json.RawMessage(`{"exec_ms":300}`)})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for r.emu.Stats().InFlight < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.svc.Yield()
	<-run.Done()
	if st, _, _ := run.Result(); st != Suspended {
		t.Errorf("yielded run: %s, want suspended", st)
	}
	if r.svc.Holds(run.ID) {
		t.Error("a suspended run is still held")
	}
	if _, ok := j.ended[run.ID]; ok {
		t.Error("a suspended run's end was journaled")
	}
	if d := j.done(run.ID); len(d) != 1 {
		t.Errorf("journaled %v, want a's output (it was at the platform)", slicesOf(d))
	}
	<-plain.Done()
	if st, _, _ := plain.Result(); st != Succeeded {
		t.Errorf("a run that is not durable: %s, want succeeded", st)
	}
	if n := r.emu.Stats().Functions["fb"].Invocations; n != 1 {
		t.Errorf("fb ran %d times, want once (the plain run's)", n)
	}
	r.svc.Suspend(t.Context())
	if _, err := r.svc.Start("slow", RunRequest{Input: json.RawMessage(`{}`), Durable: true}); err == nil {
		t.Error("a durable run started while suspending")
	}
}

// TestJournalResumesStateMachine: an async run of a state machine is
// journaled like a DAG's; resumed, it starts over (its tasks are not
// journaled) and ends with the same output.
func TestJournalResumesStateMachine(t *testing.T) {
	r, j := journaledRig(t)
	r.put(t, "asl", `{"StartAt":"A","States":{
		"A":{"Type":"Task","Resource":"fa","Next":"B"},
		"B":{"Type":"Task","Resource":"fb","End":true}}}`)
	run, err := r.svc.Start("asl", RunRequest{Input: json.RawMessage(`{"n":1}`), Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	<-run.Done()
	if st, _, f := run.Result(); st != Succeeded {
		t.Fatalf("run: %s %v", st, f)
	}
	if len(j.done(run.ID)) != 0 {
		t.Errorf("a state machine's tasks were journaled: %v", slicesOf(j.done(run.ID)))
	}
	before := r.emu.Stats().Invocations
	rec := *j.begun[run.ID]
	rec.ID = "run-asl-resumed"
	if err := r.svc.Resume(&rec, nil); err != nil {
		t.Fatal(err)
	}
	again, ok := r.svc.Run("run-asl-resumed")
	if !ok {
		t.Fatal("the resumed run is not held")
	}
	<-again.Done()
	// The emulator echoes: B's output holds A's.
	if st2, out2, f2 := again.Result(); st2 != Succeeded || !strings.Contains(string(out2), `"function":"fb"`) ||
		!strings.Contains(string(out2), `"function":"fa","input":{"n":1}`) {
		t.Errorf("resumed: %s %s (%v), want succeeded with fb's answer to fa's", st2, out2, f2)
	}
	if n := r.emu.Stats().Invocations - before; n != 2 {
		t.Errorf("the resumed state machine invoked %d tasks, want 2 (it starts over)", n)
	}
}
