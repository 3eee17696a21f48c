package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/dag"
)

// Runs is the journal of async DAG runs (dag.Journal) in a JetStream
// key-value bucket, {cluster}_runs:
//
//	run.{id}            the run's record (dag.RunRecord) and its owner
//	node.{id}.{hash}    a completed task's output, by instance key
//	end.{id}            the ended run's snapshot, kept for the retention
//	own.{replica}.{id}  the runs a replica holds
//	live.{replica}      the replica's heartbeat, every third of the lease
//
// Every replica watches the others' heartbeats (the server's timestamps,
// so no two clocks are compared). When one has been silent for a lease, or
// left at shutdown, the others claim its runs, each with a compare-and-set
// on run.{id} so that one wins, and resume them from their completed
// tasks. With the embedded server a process is alone: the previous
// process's runs are claimed at start.
type Runs struct {
	cfg     RunsConfig
	e       *cluster.Engine
	js      jetstream.JetStream
	log     *slog.Logger
	me      string
	resumed prometheus.Counter
	errors  prometheus.Counter

	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until the bucket exists; REQUIRES: mu
	lastErr error              // REQUIRES: mu
	svc     Resumer            // REQUIRES: mu

	stopping chan struct{}
	stopOnce sync.Once
	loops    sync.WaitGroup

	// Used by tick only.
	lastBeat time.Time // the last heartbeat written
	yielded  bool      // runs were yielded since: take back those nobody took
}

// RunsConfig configures Runs.
type RunsConfig struct {
	// MaxBytes bounds the bucket (SEQUOIA_RUN_JOURNAL_MAX_BYTES).
	MaxBytes int64
	// Retention is how long an ended run stays readable
	// (SEQUOIA_RUN_RETENTION).
	Retention time.Duration
	// Lease is how long a silent replica's runs wait before another
	// takes them over (SEQUOIA_DURABLE_LEASE).
	Lease    time.Duration
	Replicas int
	Log      *slog.Logger
}

// Resumer resumes a run from the journal: dag.Service. Yield stops the
// journaled runs it holds (this replica was cut off from the journal for
// a lease: the others take them over); Holds says whether it holds one.
type Resumer interface {
	Resume(rec *dag.RunRecord, done map[string]json.RawMessage) error
	Yield()
	Holds(id string) bool
}

// runEntry is run.{id}'s value.
type runEntry struct {
	Record dag.RunRecord `json:"record"`
	Owner  string        `json:"owner"`
}

// nodeEntry is node.{id}.{hash}'s value.
type nodeEntry struct {
	Key    string          `json:"key"`
	Node   string          `json:"node"`
	Output json.RawMessage `json:"output"`
}

// OpenRuns returns the journal on e and makes sure its bucket exists
// (again later, if NATS cannot be reached now). reg may be nil.
func OpenRuns(e *cluster.Engine, cfg RunsConfig, reg prometheus.Registerer) (*Runs, error) {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 10 * time.Minute
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	js, err := jetstream.New(e.Conn())
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	j := &Runs{cfg: cfg, e: e, js: js, log: cfg.Log, me: keyToken(e.Replica()), stopping: make(chan struct{}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sequoia", Name: "dag_runs_resumed_total",
			Help: "Async DAG runs this replica took over from the journal, after their replica died or stopped."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sequoia", Name: "dag_journal_errors_total",
			Help: "Writes to the DAG run journal that failed (a completed node not journaled runs again after a resume)."}),
	}
	if reg != nil {
		reg.MustRegister(j.resumed, j.errors)
	}
	if e.Connected() {
		if _, err := j.bucket(); err != nil {
			j.log.Warn("dag journal: not ready yet, retrying", "err", err)
		}
	}
	return j, nil
}

// keyToken makes s usable as one token of a key.
func keyToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// bucket returns the bucket, creating it if needed.
func (j *Runs) bucket() (jetstream.KeyValue, error) {
	j.mu.Lock()
	kv := j.kv
	j.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := j.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      j.e.Name("runs"),
		Description: "sequoia: the journal of async DAG runs",
		History:     1,
		MaxBytes:    j.cfg.MaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    j.cfg.Replicas,
		// Ended runs expire on their own (end.{id} has a TTL).
		LimitMarkerTTL: time.Minute,
	})
	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		j.lastErr = err
		return nil, err
	}
	j.kv, j.lastErr = kv, nil
	return kv, nil
}

func (j *Runs) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

// Begin records a run before its 202 (dag.Journal).
func (j *Runs) Begin(rec *dag.RunRecord) error {
	kv, err := j.bucket()
	if err != nil {
		return err
	}
	b, err := json.Marshal(runEntry{Record: *rec, Owner: j.me})
	if err != nil {
		return err
	}
	ctx, cancel := j.ctx()
	defer cancel()
	// The index first: a run without one would never be claimed.
	if _, err := kv.Put(ctx, "own."+j.me+"."+rec.ID, []byte("1")); err != nil {
		j.errors.Inc()
		return err
	}
	if _, err := kv.Create(ctx, "run."+rec.ID, b); err != nil {
		j.errors.Inc()
		return err
	}
	return nil
}

// nodeKey is a task instance's key in the bucket.
func nodeKey(run, key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return "node." + run + "." + strconv.FormatUint(h.Sum64(), 36)
}

// Node records a completed task's output (dag.Journal).
func (j *Runs) Node(run, key, node string, out []byte) error {
	kv, err := j.bucket()
	if err != nil {
		j.errors.Inc()
		return err
	}
	b, err := json.Marshal(nodeEntry{Key: key, Node: node, Output: out})
	if err != nil {
		return err
	}
	ctx, cancel := j.ctx()
	defer cancel()
	if _, err := kv.Put(ctx, nodeKey(run, key), b); err != nil {
		j.errors.Inc()
		return err
	}
	return nil
}

// End records an ended run, readable for the retention, and drops its
// progress (dag.Journal).
func (j *Runs) End(snap *dag.Snapshot) error {
	kv, err := j.bucket()
	if err != nil {
		j.errors.Inc()
		return err
	}
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	ctx, cancel := j.ctx()
	defer cancel()
	if _, err := kv.Create(ctx, "end."+snap.ID, b, jetstream.KeyTTL(j.cfg.Retention)); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		j.errors.Inc()
		return err
	}
	if keys, err := j.keys(ctx, kv, "node."+snap.ID+".*"); err == nil {
		for _, k := range keys {
			_ = kv.Purge(ctx, k)
		}
	}
	_ = kv.Purge(ctx, "run."+snap.ID)
	_ = kv.Purge(ctx, "own."+j.me+"."+snap.ID)
	return nil
}

// keys lists the keys that match filter.
func (j *Runs) keys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	l, err := kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// Lookup returns a run from the journal (dag.Journal): its end if it
// ended, else its progress so far.
func (j *Runs) Lookup(id string) (*dag.Snapshot, bool) {
	if !validRunID(id) {
		return nil, false
	}
	kv, err := j.bucket()
	if err != nil {
		return nil, false
	}
	ctx, cancel := j.ctx()
	defer cancel()
	if e, err := kv.Get(ctx, "end."+id); err == nil {
		var snap dag.Snapshot
		if json.Unmarshal(e.Value(), &snap) == nil {
			return &snap, true
		}
	}
	e, err := kv.Get(ctx, "run."+id)
	if err != nil {
		return nil, false
	}
	var re runEntry
	if json.Unmarshal(e.Value(), &re) != nil {
		return nil, false
	}
	rec := re.Record
	snap := &dag.Snapshot{ID: rec.ID, DAG: rec.DAG, Status: dag.Running, Created: rec.Created, Deadline: rec.Deadline,
		DurationMs: float64(time.Since(rec.Created)) / float64(time.Millisecond), Nodes: map[string]*dag.NodeState{}}
	done, _ := j.done(ctx, kv, id)
	for _, n := range done {
		ns := snap.Nodes[n.Node]
		if ns == nil {
			ns = &dag.NodeState{State: "succeeded"}
			snap.Nodes[n.Node] = ns
		}
		ns.Runs++
	}
	return snap, true
}

// validRunID: what dag.Service names runs (run-{base32}), which keeps
// look-ups to one key.
func validRunID(id string) bool {
	if !strings.HasPrefix(id, "run-") || len(id) > 64 || len(id) == 4 {
		return false
	}
	for _, c := range id[4:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// done returns a run's completed tasks.
func (j *Runs) done(ctx context.Context, kv jetstream.KeyValue, id string) ([]nodeEntry, error) {
	keys, err := j.keys(ctx, kv, "node."+id+".*")
	if err != nil {
		return nil, err
	}
	out := make([]nodeEntry, 0, len(keys))
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var n nodeEntry
		if json.Unmarshal(e.Value(), &n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// Start starts the heartbeat and the take-over of dead replicas' runs,
// resumed through svc. The first heartbeat is written before it returns.
func (j *Runs) Start(svc Resumer) {
	j.mu.Lock()
	j.svc = svc
	j.mu.Unlock()
	j.tick()
	j.loops.Add(1)
	go func() {
		defer j.loops.Done()
		t := time.NewTicker(j.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-j.stopping:
				return
			case <-t.C:
				j.tick()
			}
		}
	}()
}

// tick writes the heartbeat and claims the runs of the replicas whose
// heartbeat is older than the lease.
func (j *Runs) tick() {
	kv, err := j.bucket()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.Lease/3)
	defer cancel()
	j.mu.Lock()
	svc := j.svc
	j.mu.Unlock()
	if _, err := kv.Put(ctx, "live."+j.me, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		if !j.yielded && !j.lastBeat.IsZero() && time.Since(j.lastBeat) > j.cfg.Lease {
			// Cut off for a lease: the others are taking these runs.
			j.log.Warn("dag journal: no heartbeat for a lease; yielding this replica's async runs", "err", err)
			svc.Yield()
			j.yielded = true
		}
		return
	}
	j.lastBeat = time.Now()
	if j.yielded {
		j.yielded = false
		j.reclaim(ctx, kv, svc)
	}
	mine, err := kv.Get(ctx, "live."+j.me)
	if err != nil {
		return
	}
	now := mine.Created() // the server's clock, as every heartbeat's
	owned, err := j.keys(ctx, kv, "own.*.*")
	if err != nil {
		return
	}
	alone := j.e.Embedded()
	dead := map[string]bool{}
	for _, k := range owned {
		parts := strings.SplitN(k, ".", 3)
		if len(parts) != 3 || parts[1] == j.me {
			continue
		}
		owner, id := parts[1], parts[2]
		d, seen := dead[owner]
		if !seen {
			d = alone
			if !d {
				e, err := kv.Get(ctx, "live."+owner)
				d = errors.Is(err, jetstream.ErrKeyNotFound) || err == nil && now.Sub(e.Created()) > j.cfg.Lease
			}
			dead[owner] = d
		}
		if d {
			j.claim(ctx, kv, owner, id)
		}
	}
	for owner, d := range dead {
		if d {
			if rest, err := j.keys(ctx, kv, "own."+owner+".*"); err == nil && len(rest) == 0 {
				_ = kv.Purge(ctx, "live."+owner)
			}
		}
	}
}

// reclaim resumes the runs this replica yielded that nobody took over
// (the journal still names it their owner).
func (j *Runs) reclaim(ctx context.Context, kv jetstream.KeyValue, svc Resumer) {
	keys, err := j.keys(ctx, kv, "own."+j.me+".*")
	if err != nil {
		return
	}
	for _, k := range keys {
		id := strings.TrimPrefix(k, "own."+j.me+".")
		if svc.Holds(id) {
			continue
		}
		e, err := kv.Get(ctx, "run."+id)
		if err != nil {
			continue
		}
		var re runEntry
		if json.Unmarshal(e.Value(), &re) != nil || re.Owner != j.me {
			_ = kv.Purge(ctx, k)
			continue
		}
		// A rewrite at the revision read: fails if another replica
		// claimed the run meanwhile.
		if _, err := kv.Update(ctx, "run."+id, e.Value(), e.Revision()); err != nil {
			continue
		}
		j.resume(ctx, kv, &re)
	}
}

// claim takes run id over from the dead replica from and resumes it.
func (j *Runs) claim(ctx context.Context, kv jetstream.KeyValue, from, id string) {
	e, err := kv.Get(ctx, "run."+id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		_ = kv.Purge(ctx, "own."+from+"."+id) // it ended
		return
	}
	if err != nil {
		return
	}
	var re runEntry
	if err := json.Unmarshal(e.Value(), &re); err != nil {
		j.log.Warn("dag journal: an unreadable run record", "run", id, "err", err)
		return
	}
	if re.Owner != from {
		_ = kv.Purge(ctx, "own."+from+"."+id) // claimed by another already
		return
	}
	re.Owner = j.me
	b, _ := json.Marshal(re)
	if _, err := kv.Update(ctx, "run."+id, b, e.Revision()); err != nil {
		return // another replica won it
	}
	if _, err := kv.Put(ctx, "own."+j.me+"."+id, []byte("1")); err != nil {
		j.log.Warn("dag journal: cannot index a claimed run", "run", id, "err", err)
	}
	_ = kv.Purge(ctx, "own."+from+"."+id)
	j.resume(ctx, kv, &re)
}

// resume resumes the run of re with its completed tasks.
func (j *Runs) resume(ctx context.Context, kv jetstream.KeyValue, re *runEntry) {
	id := re.Record.ID
	entries, err := j.done(ctx, kv, id)
	if err != nil {
		j.log.Warn("dag journal: cannot read a run's progress; its tasks run again", "run", id, "err", err)
	}
	done := make(map[string]json.RawMessage, len(entries))
	for _, n := range entries {
		done[n.Key] = n.Output
	}
	j.mu.Lock()
	svc := j.svc
	j.mu.Unlock()
	if err := svc.Resume(&re.Record, done); err != nil {
		j.log.Warn("dag journal: cannot resume a run", "run", id, "err", err)
		return
	}
	j.resumed.Inc()
}

// Close stops the heartbeat and removes it, so that the other replicas
// take this one's runs over at once. Call it after the runs are
// suspended, before closing the engine.
func (j *Runs) Close() {
	j.stopOnce.Do(func() { close(j.stopping) })
	j.loops.Wait()
	j.mu.Lock()
	kv := j.kv
	j.mu.Unlock()
	if kv == nil {
		return
	}
	ctx, cancel := j.ctx()
	defer cancel()
	_ = kv.Purge(ctx, "live."+j.me)
}

// Status is the journal's part of /sequoia/v1/status.
type RunsStatus struct {
	Ready     bool   `json:"ready"`
	Replica   string `json:"replica"`
	LastError string `json:"last_error,omitempty"`
}

// Status returns the journal's state now.
func (j *Runs) Status() RunsStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := RunsStatus{Ready: j.kv != nil, Replica: j.me}
	if j.lastErr != nil {
		st.LastError = j.lastErr.Error()
	}
	return st
}

var _ dag.Journal = (*Runs)(nil)
