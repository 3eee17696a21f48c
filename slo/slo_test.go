package slo

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

func TestParse(t *testing.T) {
	objs, err := Parse([]byte(`{"objectives":[
		{"name":"checkout-p99","kind":"latency","function":"checkout","percentile":99,"threshold_ms":300,"window":"1h"},
		{"name":"acme","kind":"success","tenant":"acme","target":0.999,"labels":{"team":"payments"}},
		{"name":"chains","kind":"chains","class":"interactive","target":0.99,"window":"7d"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if objs[0].Target != 0.99 || objs[0].window != time.Hour || objs[1].window != 30*24*time.Hour || objs[2].window != 7*24*time.Hour {
		t.Errorf("parsed %+v", objs)
	}
	for src, want := range map[string]string{
		`{"objectives":[{"name":"x","kind":"latency","target":0.9}]}`:                                            "threshold_ms",
		`{"objectives":[{"name":"x","kind":"success","target":1}]}`:                                              "target",
		`{"objectives":[{"name":"x","kind":"speed","target":0.9}]}`:                                              `kind "speed"`,
		`{"objectives":[{"name":"x","kind":"success","target":0.9,"window":"soon"}]}`:                            `window "soon"`,
		`{"objectives":[{"name":"x","kind":"success","target":0.9,"labels":{"slo":"y"}}]}`:                       "label name",
		`{"objectives":[{"name":"x","kind":"success","target":0.9},{"name":"x","kind":"success","target":0.5}]}`: "used twice",
		`{"objectives":[{"name":"x","kind":"success","target":0.9,"extra":1}]}`:                                  "unknown field",
		`{"objectives":[{"name":"a b","kind":"success","target":0.9}]}`:                                          "name",
	} {
		if _, err := Parse([]byte(src)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error about %s", src, err, want)
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func mustParse(t *testing.T, src string) []Objective {
	t.Helper()
	objs, err := Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// finished reports an invocation of fn that took d at sequoia and
// answered status.
func finished(t *Tracker, fn, tenant string, d time.Duration, status int, err error) {
	resp := &fasthttp.Response{}
	resp.SetStatusCode(status)
	inv := &invocation.Invocation{Function: fn, Tenant: tenant, Platform: invocation.HTTP, Arrival: time.Now().Add(-d), Resp: resp}
	t.Finished(inv, d, err)
}

// TestBurnRatesAndBudget: on a fake clock, an hour-long objective whose
// budget burns at 20x sustainable for the last five minutes pages (fast
// burn), and its budget is spent once bad events pass 1% of the window's.
func TestBurnRatesAndBudget(t *testing.T) {
	clk := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	objs := mustParse(t, `{"objectives":[{"name":"ok","kind":"success","function":"f","target":0.99,"window":"30d"}]}`)
	tr := New(Config{Objectives: objs, Interval: 30 * time.Second, Now: clk.Now})
	// 59 minutes of clean traffic: 100 a minute.
	for range 59 * 2 {
		for range 50 {
			finished(tr, "f", "", time.Millisecond, 200, nil)
		}
		clk.Add(30 * time.Second)
		tr.Evaluate()
	}
	st := tr.Evaluate()[0]
	if len(st.Alerts) != 0 || st.BudgetRemaining != 1 || st.SLI != 1 {
		t.Fatalf("clean: %+v", st)
	}
	// Then a minute at 20% errors: 20x the 1% budget.
	for range 2 {
		for i := range 50 {
			code := 200
			if i%5 == 0 {
				code = 500
			}
			finished(tr, "f", "", time.Millisecond, code, nil)
		}
		clk.Add(30 * time.Second)
		st = tr.Evaluate()[0]
	}
	// Over the last hour (6000 events, 20 bad): burn 20/6000/0.01 = 0.33;
	// over the last 5 minutes (500 events, 20 bad): 0.4/... = 4. Not yet.
	if b := st.BurnRates["5m"]; math.Abs(b-4) > 0.01 {
		t.Errorf("5m burn %.3f, want 4 (%+v)", b, st.BurnRates)
	}
	if slices.Contains(st.Alerts, AlertFastBurn) {
		t.Errorf("paged at 1h burn %.2f: %+v", st.BurnRates["1h"], st)
	}
	// Every event bad for 10 minutes: 1h burn above 14.4 and 5m too.
	for range 20 {
		for range 50 {
			finished(tr, "f", "", time.Millisecond, 502, nil)
		}
		clk.Add(30 * time.Second)
		st = tr.Evaluate()[0]
	}
	if !slices.Contains(st.Alerts, AlertFastBurn) || !st.Burning {
		t.Errorf("all bad for 10 minutes: %+v", st)
	}
	// 1020 bad of 7000 events over the window: 14.6% against a 1% budget.
	if want := 1 - (1020.0/7000)/0.01; math.Abs(st.BudgetRemaining-want) > 1e-9 || !slices.Contains(st.Alerts, AlertBudgetExhausted) {
		t.Errorf("budget %.3f, want %.3f and breached: %+v", st.BudgetRemaining, want, st)
	}
	// Events the objective does not select, and refusals, do not count.
	before := st.Events
	finished(tr, "g", "", time.Millisecond, 500, nil)
	finished(tr, "f", "", time.Millisecond, 0, qos.ErrQueueFull)
	if st = tr.Evaluate()[0]; st.Events != before {
		t.Errorf("events %d, want %d: other functions and refusals counted", st.Events, before)
	}
}

// TestLatencyBreach: a latency objective counts answered invocations
// within the threshold as good; all slow, its budget is spent at once
// (breach) and every burn window fires.
func TestLatencyBreach(t *testing.T) {
	clk := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	objs := mustParse(t, `{"objectives":[{"name":"fast","kind":"latency","function":"slow","percentile":99,"threshold_ms":50,"window":"1h"}]}`)
	tr := New(Config{Objectives: objs, Interval: 10 * time.Second, Now: clk.Now})
	for range 10 {
		finished(tr, "slow", "", 200*time.Millisecond, 200, nil)
	}
	finished(tr, "slow", "", 200*time.Millisecond, 0, qos.ErrQueueTimeout) // unanswered: not latency's
	clk.Add(10 * time.Second)
	st := tr.Evaluate()[0]
	want := []string{AlertFastBurn, AlertSlowBurn, AlertBudgetExhausted}
	if !slices.Equal(st.Alerts, want) || st.Events != 10 || st.SLI != 0 || st.BudgetRemaining > -98 {
		t.Errorf("all slow: %+v, want alerts %v over 10 events", st, want)
	}
	if _, ok := st.BurnRates["5s"]; !ok {
		t.Errorf("burn windows %v: want the 30-day table scaled to 1h (5m -> 5s)", st.BurnRates)
	}
}

// TestChains: a chains objective counts the chains it selects (by class,
// first function or DAG name, tenant); each of the three ways a chain is
// dropped is bad, any other end good.
func TestChains(t *testing.T) {
	objs := mustParse(t, `{"objectives":[
		{"name":"c","kind":"chains","class":"interactive","target":0.9},
		{"name":"f","kind":"chains","function":"checkout","target":0.9},
		{"name":"t","kind":"chains","tenant":"acme","class":"batch","target":0.9}]}`)
	tr := New(Config{Objectives: objs})
	end := func(class uint8, o qos.ChainOutcome, fn, tenant string) {
		tr.ChainEnded(qos.ChainEnd{Class: class, Outcome: o, Function: fn, Tenant: tenant})
	}
	end(qos.Interactive, qos.ChainCompleted, "checkout", "acme")
	end(qos.Interactive, qos.ChainFailed, "other", "")
	end(qos.Interactive, qos.ChainDropped, "other", "")
	end(qos.Interactive, qos.ChainLate, "checkout", "")
	end(qos.Interactive, qos.ChainGone, "other", "acme")
	end(qos.Batch, qos.ChainDropped, "checkout", "acme")
	end(qos.Batch, qos.ChainCompleted, "other", "acme")
	st := tr.Evaluate()
	for i, want := range []struct {
		events uint64
		sli    float64
	}{{5, 2.0 / 5}, {3, 1.0 / 3}, {2, 1.0 / 2}} {
		if st[i].Events != want.events || math.Abs(st[i].SLI-want.sli) > 1e-9 {
			t.Errorf("%s: %d events, SLI %v; want %d, %v", st[i].Name, st[i].Events, st[i].SLI, want.events, want.sli)
		}
	}
}

// receiver is a webhook receiver: it fails the first fail requests, then
// records the messages.
type receiver struct {
	mu       sync.Mutex
	fail     int
	attempts int
	msgs     []Message
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.fail > 0 {
		r.fail--
		http.Error(w, "not now", http.StatusServiceUnavailable)
		return
	}
	var m Message
	dec := json.NewDecoder(req.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.msgs = append(r.msgs, m)
}

func (r *receiver) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestNotifierDedupRetryResolve: a breach is delivered once however many
// evaluations see it (the first attempt fails and is retried), a change
// in its alerts sends one more, and the end of the breach one resolved.
func TestNotifierDedupRetryResolve(t *testing.T) {
	rcv := &receiver{fail: 1}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	clk := &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	objs := mustParse(t, `{"objectives":[{"name":"fast","kind":"latency","function":"slow","percentile":99,"threshold_ms":50,"window":"1h","labels":{"team":"web"}}]}`)
	n := NewNotifier(NotifierConfig{URL: srv.URL, Backoff: 10 * time.Millisecond, Now: clk.Now, Labels: map[string]string{"cluster": "c1"}}, objs)
	defer n.Close()
	tr := New(Config{Objectives: objs, Interval: 10 * time.Second, Now: clk.Now, Notify: n.Update})
	tr.Evaluate() // nothing yet: no message
	// The function stays slow over many evaluations: the same breach.
	slow := func() {
		for range 5 {
			finished(tr, "slow", "", 200*time.Millisecond, 200, nil)
		}
		clk.Add(10 * time.Second)
		tr.Evaluate()
	}
	for range 5 {
		slow()
	}
	waitFor(t, "delivery", func() bool { return len(rcv.messages()) == 1 })
	for range 3 {
		slow()
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong second message
	msgs := rcv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages for one breach, want exactly 1", len(msgs))
	}
	m := msgs[0]
	if m.Version != "4" || m.Status != "firing" || m.GroupLabels["slo"] != "fast" || len(m.Alerts) != 3 ||
		m.CommonLabels["slo"] != "fast" || m.CommonLabels["team"] != "web" || m.CommonLabels["cluster"] != "c1" || m.CommonLabels["function"] != "slow" {
		t.Errorf("message %+v", m)
	}
	names := []string{}
	for _, a := range m.Alerts {
		names = append(names, a.Labels["alertname"])
		if a.Fingerprint == "" || a.Status != "firing" || a.StartsAt.IsZero() {
			t.Errorf("alert %+v", a)
		}
	}
	if !slices.Equal(names, []string{AlertBudgetExhausted, AlertFastBurn, AlertSlowBurn}) {
		t.Errorf("alerts %v", names)
	}
	if d, f, _ := n.Stats(); d != 1 || f != 1 {
		t.Errorf("delivered %d, failed %d: want the failed first attempt retried once", d, f)
	}
	// Fast traffic for the whole window: every alert resolves.
	for range 2000 {
		finished(tr, "slow", "", time.Millisecond, 200, nil)
	}
	for range 370 {
		clk.Add(10 * time.Second)
		tr.Evaluate()
	}
	waitFor(t, "resolution", func() bool { return len(rcv.messages()) >= 2 })
	time.Sleep(50 * time.Millisecond)
	msgs = rcv.messages()
	last := msgs[len(msgs)-1]
	if last.Status != "resolved" {
		t.Fatalf("last message %+v, want resolved", last)
	}
	resolved := 0
	for _, m := range msgs[1:] {
		for _, a := range m.Alerts {
			if a.Status == "resolved" {
				resolved++
				if a.EndsAt.IsZero() {
					t.Errorf("resolved alert without an end: %+v", a)
				}
			}
		}
	}
	if resolved != 3 {
		t.Errorf("%d resolutions told over %d messages, want each of the 3 alerts once", resolved, len(msgs)-1)
	}
}

// FuzzParse: Parse never panics; what it refuses wraps ErrInvalid; what
// it accepts tracks and evaluates.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"objectives":[{"name":"a","kind":"latency","function":"f","percentile":99,"threshold_ms":300,"window":"1h"}]}`))
	f.Add([]byte(`{"objectives":[{"name":"b","kind":"chains","class":"batch","target":0.9,"labels":{"team":"x"}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		objs, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !strings.Contains(err.Error(), "invalid") {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(objs) > 8 {
			return // large sets cost memory, not coverage
		}
		tr := New(Config{Objectives: objs, Interval: time.Second})
		for _, st := range tr.Evaluate() {
			if st.BudgetRemaining != 1 || len(st.Alerts) != 0 {
				t.Fatalf("no events, yet %+v", st)
			}
		}
	})
}
