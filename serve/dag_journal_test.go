package serve

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/dag"
)

// countingPlatform is an http platform (functions by path) that counts the
// calls of each function; "slow" takes until release is closed (or a
// minute), the others answer at once.
type countingPlatform struct {
	mu      sync.Mutex
	calls   map[string]int
	release chan struct{}
	url     string
}

func startCountingPlatform(t *testing.T) *countingPlatform {
	t.Helper()
	p := &countingPlatform{calls: map[string]int{}, release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn := strings.Trim(r.URL.Path, "/")
		p.mu.Lock()
		p.calls[fn]++
		p.mu.Unlock()
		if fn == "slow" {
			select {
			case <-p.release:
			case <-time.After(time.Minute):
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"from":"` + fn + `"}`))
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(p.open)
	p.url = srv.URL
	return p
}

func (p *countingPlatform) count(fn string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[fn]
}

var openOnce sync.Map

func (p *countingPlatform) open() {
	if _, done := openOnce.LoadOrStore(p, true); !done {
		close(p.release)
	}
}

const slowDAG = `{"start":"a","nodes":{
	"a":{"kind":"task","function":"a","next":"b"},
	"b":{"kind":"task","function":"slow","next":"c"},
	"c":{"kind":"task","function":"c"}}}`

func runSnapshot(t *testing.T, c apiClient, id string) dag.Snapshot {
	t.Helper()
	_, b := c.want(200, "GET", "/sequoia/v1/runs/"+id, "")
	var snap dag.Snapshot
	if err := json.Unmarshal([]byte(b), &snap); err != nil {
		t.Fatalf("snapshot %s: %v", b, err)
	}
	return snap
}

func startAsync(t *testing.T, c apiClient, dagName string) string {
	t.Helper()
	_, b := c.want(202, "POST", "/sequoia/v1/dags/"+dagName+"/runs", `{"input":{}}`, "Prefer", "respond-async")
	var r struct{ ID string }
	if err := json.Unmarshal([]byte(b), &r); err != nil || r.ID == "" {
		t.Fatalf("run: %s", b)
	}
	return r.ID
}

// TestAsyncRunSurvivesShutdown: SIGTERM while an async run's slow task is
// at the platform waits for that task, leaves the run in the journal and
// exits without error; the next sequoia on the same state directory
// resumes it after its last completed task, and GET answers its end. Every
// task ran once.
func TestAsyncRunSurvivesShutdown(t *testing.T) {
	p := startCountingPlatform(t)
	dir := t.TempDir()
	env := []string{"SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=" + p.url, "SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_STATE_DIR=" + dir, apiTokens(t)}
	s, stop := runServer(t, append(env, "SEQUOIA_SHUTDOWN_TIMEOUT=30s")...)
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	c.want(201, "PUT", "/sequoia/v1/dags/slow", slowDAG, asOps...)
	id := startAsync(t, c, "slow")
	waitFor(func() bool { return p.count("slow") == 1 })
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	waitFor(s.dags.Suspending) // the shutdown began while the task is at the platform
	p.open()
	if err := <-stopped; err != nil {
		t.Errorf("shutdown: %v, want none (the task at the platform finished)", err)
	}
	if n := p.count("c"); n != 0 {
		t.Fatalf("c ran %d times before the restart: the run was not suspended", n)
	}

	s2 := startServer(t, env...)
	c2 := apiClient{t, "http://" + s2.dataLn.Addr().String()}
	deadline := time.Now().Add(time.Minute)
	var snap dag.Snapshot
	for {
		snap = runSnapshot(t, c2, id)
		if snap.Status != dag.Running || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if snap.Status != dag.Succeeded || string(snap.Output) != `{"from":"c"}` {
		t.Errorf("resumed run: %s %s %+v", snap.Status, snap.Output, snap.Error)
	}
	for fn, want := range map[string]int{"a": 1, "slow": 1, "c": 1} {
		if got := p.count(fn); got != want {
			t.Errorf("%s ran %d times, want %d", fn, got, want)
		}
	}
}

// TestAsyncRunAbandonedExitsNonZero: a shutdown whose time runs out while
// an async run's task is at the platform says so (Run's error).
func TestAsyncRunAbandonedExitsNonZero(t *testing.T) {
	p := startCountingPlatform(t)
	s, stop := runServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL="+p.url, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_SHUTDOWN_TIMEOUT=100ms", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	c.want(201, "PUT", "/sequoia/v1/dags/slow", slowDAG, asOps...)
	startAsync(t, c, "slow")
	waitFor(func() bool { return p.count("slow") == 1 })
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Errorf("shutdown: %v, want an error naming the abandoned run", err)
	}
	p.open()
}

// TestAsyncRunTakenOverByAnotherReplica: two replicas on one NATS. A run
// accepted by the first is visible from the second (GET answers from the
// journal) while it runs; when the first dies with a task at the platform,
// the second resumes it after the lease, runs that task again (at most
// once more) and the rest once.
func TestAsyncRunTakenOverByAnotherReplica(t *testing.T) {
	ns := natstest.Start(t)
	p := startCountingPlatform(t)
	env := []string{"SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=" + p.url, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_NATS_URL=" + ns.URL(), "SEQUOIA_DURABLE_LEASE=1s", apiTokens(t)}
	a, _ := runServer(t, env...)
	b := startServer(t, env...)
	ca := apiClient{t, "http://" + a.dataLn.Addr().String()}
	cb := apiClient{t, "http://" + b.dataLn.Addr().String()}
	ca.want(201, "PUT", "/sequoia/v1/dags/slow", slowDAG, asOps...)
	id := startAsync(t, ca, "slow")
	waitFor(func() bool { return p.count("slow") == 1 })

	snap := runSnapshot(t, cb, id) // from the journal: b does not hold it
	if snap.Status != dag.Running || snap.Nodes["a"] == nil || snap.Nodes["a"].Runs != 1 || len(snap.Nodes) != 1 {
		t.Errorf("the other replica sees %s, nodes %v", snap.Status, snap.Nodes)
	}

	// The first replica dies: its connection goes, nothing more of the
	// run starts there; its task at the platform is left running.
	_ = a.engine.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a.dags.Suspend(ctx)

	waitFor(func() bool { return p.count("slow") == 2 }) // resumed at b
	p.open()
	deadline := time.Now().Add(time.Minute)
	for snap = runSnapshot(t, cb, id); snap.Status == dag.Running && time.Now().Before(deadline); snap = runSnapshot(t, cb, id) {
		time.Sleep(10 * time.Millisecond)
	}
	if snap.Status != dag.Succeeded || snap.Nodes["a"].Replayed != 1 {
		t.Errorf("taken-over run: %s, nodes %+v", snap.Status, snap.Nodes)
	}
	for fn, want := range map[string]int{"a": 1, "slow": 2, "c": 1} {
		if got := p.count(fn); got != want {
			t.Errorf("%s ran %d times, want %d", fn, got, want)
		}
	}
}
