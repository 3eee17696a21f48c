package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/config"
)

// startEngine starts an engine: embedded in dir, or on the NATS at url.
func startEngine(t testing.TB, dir, url string) *cluster.Engine {
	t.Helper()
	e, err := cluster.Start(cluster.Options{Config: config.Cluster{Name: "t", StateDir: dir, NatsURL: url}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func openStore(t *testing.T, e *cluster.Engine, cfg Config) *Store {
	t.Helper()
	s, err := Open(e, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// request is a stored Lambda request carrying n in its body.
func request(fn string, n int) []byte {
	body := `{"n":` + strconv.Itoa(n) + `}`
	return []byte("POST /2015-03-31/functions/" + fn + "/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"X-Amz-Invocation-Type: RequestResponse\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}

func event(fn string, n int) *Event {
	return &Event{Function: fn, Arrival: time.Now(), Request: request(fn, n)}
}

// recorder is a Deliverer that answers with verdict and records what it
// saw, in order.
type recorder struct {
	mu      sync.Mutex
	seen    []string // function/n per attempt
	answer  func(ev *Event) Result
	block   chan struct{} // when set, attempts wait for it (or the stop)
	started atomic.Int64
}

func (r *recorder) Deliver(ev *Event, stop <-chan struct{}) Result {
	r.started.Add(1)
	if r.block != nil {
		select {
		case <-r.block:
		case <-stop:
			return Result{Verdict: Stopped}
		}
	}
	ev.Sending()
	var b struct{ N int }
	body := ev.Request[strings.Index(string(ev.Request), "\r\n\r\n")+4:]
	_ = json.Unmarshal(body, &b)
	r.mu.Lock()
	r.seen = append(r.seen, ev.Function+"/"+strconv.Itoa(b.N))
	r.mu.Unlock()
	if r.answer != nil {
		return r.answer(ev)
	}
	return Result{Verdict: Delivered, Status: 200}
}

func (r *recorder) attempts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// eventually polls cond for up to a minute.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue() + m.GetGauge().GetValue()
}

// TestAcceptDeliverOnce: accepted events are all delivered, each once, and
// leave the store.
func TestAcceptDeliverOnce(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{Concurrency: 4, Lease: time.Second})
	r := &recorder{}
	s.Start(r)
	const n = 200
	for i := range n {
		if dup, err := s.Accept(event("f"+strconv.Itoa(i%3), i)); err != nil || dup {
			t.Fatalf("accept %d: %v %v", i, dup, err)
		}
	}
	eventually(t, "all delivered", func() bool { return len(r.attempts()) >= n })
	eventually(t, "the store empty", func() bool {
		info, err := s.current().events.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	seen := map[string]int{}
	for _, a := range r.attempts() {
		seen[a]++
	}
	for i := range n {
		if k := "f" + strconv.Itoa(i%3) + "/" + strconv.Itoa(i); seen[k] != 1 {
			t.Errorf("%s delivered %d times", k, seen[k])
		}
	}
	eventually(t, "counted delivered", func() bool { return value(t, s.m.outcome.WithLabelValues("delivered")) == n })
	if got := value(t, s.m.redelivered); got != 0 {
		t.Errorf("redelivered = %v, want 0", got)
	}
}

// TestDuplicateKey: the same key for the same function is one event; for
// another function it is another.
func TestDuplicateKey(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{})
	for i, c := range []struct {
		fn, key string
		dup     bool
	}{{"f", "k1", false}, {"f", "k1", true}, {"g", "k1", false}, {"f", "k2", false}, {"f", "", false}, {"f", "", false}} {
		ev := event(c.fn, i)
		ev.Key = c.key
		dup, err := s.Accept(ev)
		if err != nil || dup != c.dup {
			t.Errorf("%s %q: duplicate %v, %v; want %v", c.fn, c.key, dup, err, c.dup)
		}
	}
	info, err := s.current().events.Info(context.Background())
	if err != nil || info.State.Msgs != 5 {
		t.Errorf("stored %d events (%v), want 5", info.State.Msgs, err)
	}
}

// TestFull: beyond MaxEvents undelivered events, Accept refuses, and
// accepts again once some are delivered.
func TestFull(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{MaxEvents: 3})
	for i := range 3 {
		if _, err := s.Accept(event("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Accept(event("f", 3)); !errors.Is(err, ErrFull) {
		t.Fatalf("4th accept: %v, want ErrFull", err)
	}
	r := &recorder{}
	s.Start(r)
	eventually(t, "delivery", func() bool { return len(r.attempts()) == 3 })
	eventually(t, "room again", func() bool { _, err := s.Accept(event("f", 4)); return err == nil })
	if got := value(t, s.m.outcome.WithLabelValues("refused")); got < 1 {
		t.Errorf("refused = %v", got)
	}
}

// TestTooLarge: an event larger than NATS's max payload is refused at
// once.
func TestTooLarge(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{})
	ev := event("f", 1)
	ev.Request = make([]byte, e.Conn().MaxPayload()+1)
	if _, err := s.Accept(ev); !errors.Is(err, ErrTooLarge) {
		t.Errorf("accept: %v, want ErrTooLarge", err)
	}
}

// TestFairAcrossFunctions: with one delivery at a time and a backlog of
// 200 events of one function ahead, another function's events are
// delivered in alternation with it, not after the backlog.
func TestFairAcrossFunctions(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{Concurrency: 1})
	for i := range 200 {
		if _, err := s.Accept(event("busy", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := s.Accept(event("quiet", i)); err != nil {
			t.Fatal(err)
		}
	}
	r := &recorder{}
	s.Start(r)
	eventually(t, "all delivered", func() bool { return len(r.attempts()) == 205 })
	last := 0
	for i, a := range r.attempts() {
		if strings.HasPrefix(a, "quiet/") {
			last = i
		}
	}
	// Alternating turns put the fifth quiet event at position 9 or 10;
	// one pull of a few more is the slack.
	if last > 10+maxFetch {
		t.Errorf("the last quiet event was delivered %dth, behind the busy backlog: %v", last+1, r.attempts()[:last+1])
	}
}

// TestRetriesAndDeadLetters: a function error is retried MaxRetries times
// then dead-lettered (RetriesExhausted); a throttle is retried until the
// event's age (EventAgeExceeded); a rejection is dead at once. The dead
// letters are listed newest first, with the payload and the last error.
func TestRetriesAndDeadLetters(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxAge: time.Minute})
	r := &recorder{answer: func(ev *Event) Result {
		switch ev.Function {
		case "broken":
			return Result{Verdict: FunctionError, Status: 200, Error: `{"errorMessage":"boom"}`, FunctionError: "Unhandled"}
		case "throttled":
			return Result{Verdict: Retry, Reason: "throttled_concurrency", Delay: 100 * time.Millisecond, Status: 429}
		case "gone":
			return Result{Verdict: Rejected, Status: 404, Error: "no such function"}
		}
		return Result{Verdict: Delivered}
	}}
	s.Start(r)
	for i, fn := range []string{"broken", "throttled", "gone"} {
		ev := event(fn, i)
		ev.Key = "key-" + fn
		if fn == "throttled" {
			ev.Arrival = time.Now().Add(-time.Minute + 500*time.Millisecond) // half a second left
		}
		if _, err := s.Accept(ev); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three dead letters", func() bool {
		dl, _, err := s.Dead(context.Background(), 10, 0)
		return err == nil && len(dl) == 3
	})
	count := map[string]int{}
	for _, a := range r.attempts() {
		count[strings.Split(a, "/")[0]]++
	}
	if count["broken"] != 3 || count["gone"] != 1 || count["throttled"] < 1 {
		t.Errorf("attempts %v, want broken 3 (1 + 2 retries), gone 1, throttled until its age", count)
	}
	// Each attempt but the last was retried; the last too when the event
	// expired waiting for its next one.
	if got := int(value(t, s.m.retried.WithLabelValues("throttled_concurrency"))); got != count["throttled"]-1 && got != count["throttled"] {
		t.Errorf("retried{throttled_concurrency} = %v after %d attempts", got, count["throttled"])
	}
	dl, next, err := s.Dead(context.Background(), 10, 0)
	if err != nil || next != 0 {
		t.Fatalf("dead: %v, next %d", err, next)
	}
	byFn := map[string]DeadLetter{}
	for i, d := range dl {
		byFn[d.Function] = d
		if i > 0 && d.Seq >= dl[i-1].Seq {
			t.Errorf("not newest first: %d after %d", d.Seq, dl[i-1].Seq)
		}
	}
	if d := byFn["broken"]; d.Reason != reasonRetries || d.Attempts != 3 || d.FunctionErrors != 3 ||
		d.FunctionError != "Unhandled" || d.LastStatus != 200 || !strings.Contains(d.LastError, "boom") ||
		string(d.Payload) != `{"n":0}` || d.Key != "key-broken" {
		t.Errorf("broken: %+v", d)
	}
	if d := byFn["throttled"]; d.Reason != reasonAge || d.LastStatus != 429 || d.FunctionErrors != 0 {
		t.Errorf("throttled: %+v", d)
	}
	if d := byFn["gone"]; d.Reason != reasonRejected || d.LastStatus != 404 || d.Attempts != 1 {
		t.Errorf("gone: %+v", d)
	}
	// Paging: one at a time.
	page, next, err := s.Dead(context.Background(), 1, 0)
	if err != nil || len(page) != 1 || next == 0 {
		t.Fatalf("page 1: %v %v %d", page, err, next)
	}
	page2, _, err := s.Dead(context.Background(), 1, next)
	if err != nil || len(page2) != 1 || page2[0].Seq >= page[0].Seq {
		t.Errorf("page 2: %v %v", page2, err)
	}
	if got := value(t, s.m.retried.WithLabelValues("function_error")); got != 2 {
		t.Errorf("retried{function_error} = %v, want 2", got)
	}
	for _, reason := range []string{reasonRetries, reasonAge, reasonRejected} {
		if got := value(t, s.m.dead.WithLabelValues(reason)); got != 1 {
			t.Errorf("dead_lettered{%s} = %v, want 1", reason, got)
		}
	}
}

// TestOnFailureURL: a dead letter is posted as Lambda's on-failure record,
// retried after a failing answer.
func TestOnFailureURL(t *testing.T) {
	var calls atomic.Int64
	got := make(chan onFailureRecord, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(500)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var rec onFailureRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Errorf("record %s: %v", b, err)
		}
		got <- rec
	}))
	defer srv.Close()
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{MaxRetries: 0, OnFailureURL: srv.URL})
	s.Start(&recorder{answer: func(*Event) Result {
		return Result{Verdict: FunctionError, Status: 200, Error: `{"errorMessage":"boom"}`, FunctionError: "Unhandled"}
	}})
	ev := event("broken", 7)
	ev.Qualifier = "3"
	if _, err := s.Accept(ev); err != nil {
		t.Fatal(err)
	}
	var rec onFailureRecord
	select {
	case rec = <-got:
	case <-time.After(time.Minute):
		t.Fatal("no on-failure record")
	}
	if rec.RequestContext.Condition != reasonRetries || rec.RequestContext.FunctionArn != "broken:3" ||
		string(rec.RequestPayload) != `{"n":7}` || rec.ResponseContext.FunctionError != "Unhandled" ||
		string(rec.ResponsePayload) != `{"errorMessage":"boom"}` || rec.RequestContext.ApproximateInvokeCount != 1 {
		t.Errorf("record %+v", rec)
	}
	if calls.Load() != 2 {
		t.Errorf("%d posts, want 2 (one failed, one retried)", calls.Load())
	}
}

// TestStopLeavesEventsInStore: Stop hands events waiting for a slot back
// untouched and abandons none; after a restart on the same files they are
// delivered.
func TestStopLeavesEventsInStore(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir, "")
	s := openStore(t, e, Config{Concurrency: 2, Lease: time.Second})
	r := &recorder{block: make(chan struct{})}
	s.Start(r)
	for i := range 10 {
		if _, err := s.Accept(event("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "two in delivery", func() bool { return r.started.Load() == 2 })
	if n := s.Stop(context.Background()); n != 0 {
		t.Errorf("abandoned %d, want 0", n)
	}
	_ = e.Close()

	e2 := startEngine(t, dir, "")
	s2 := openStore(t, e2, Config{Concurrency: 2, Lease: time.Second})
	r2 := &recorder{}
	s2.Start(r2)
	eventually(t, "all ten delivered after the restart", func() bool { return len(r2.attempts()) == 10 })
	if got := value(t, s2.m.redelivered); got != 0 {
		t.Errorf("redelivered = %v: events handed back at Stop are not repeats", got)
	}
}

// TestStopAbandons: a delivery that does not finish within Stop's context
// is reported abandoned.
func TestStopAbandons(t *testing.T) {
	e := startEngine(t, t.TempDir(), "")
	s := openStore(t, e, Config{Concurrency: 1})
	hold := make(chan struct{})
	defer close(hold)
	s.Start(DelivererFunc(func(ev *Event, _ <-chan struct{}) Result { ev.Sending(); <-hold; return Result{Verdict: Delivered} }))
	if _, err := s.Accept(event("f", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "in delivery", func() bool { return s.m.delivering.Load() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := s.Stop(ctx); n != 1 {
		t.Errorf("abandoned %d, want 1", n)
	}
}

// TestRedeliveryAcrossReplicas: a replica that dies while delivering loses
// its lease; another replica on the same NATS delivers the event again and
// counts it redelivered.
func TestRedeliveryAcrossReplicas(t *testing.T) {
	ns := natstest.Start(t)
	e1 := startEngine(t, "", ns.URL())
	s1 := openStore(t, e1, Config{Lease: time.Second})
	hold := make(chan struct{})
	defer close(hold)
	s1.Start(DelivererFunc(func(ev *Event, _ <-chan struct{}) Result { ev.Sending(); <-hold; return Result{Verdict: Delivered} }))
	if _, err := s1.Accept(event("f", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "in delivery at the first replica", func() bool { return s1.m.delivering.Load() == 1 })
	_ = e1.Close() // dies holding it: no acknowledgement, no hand-back

	e2 := startEngine(t, "", ns.URL())
	s2 := openStore(t, e2, Config{Lease: time.Second})
	r := &recorder{}
	s2.Start(r)
	eventually(t, "delivered by the second replica", func() bool { return len(r.attempts()) == 1 })
	eventually(t, "counted redelivered", func() bool { return value(t, s2.m.redelivered) == 1 })
}
