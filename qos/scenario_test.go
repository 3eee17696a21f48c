package qos

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata scenarios")

// TestScenarios runs the scripts in testdata/. Each script is a list of
// blocks separated by blank lines: a command, a "----" line, and the
// output the command must print. Lines starting with # are comments.
//
// Commands:
//
//	new limit=N [capacity=N] [batch-share=F] [tenant-cap=N] [fn-cap=N] [rate=F] [estimate=D] [headroom=F]
//	    [max-headroom=F] [ttl=D] [order=shortest-first]
//	observe fn=F dur=D            feed the estimator one observed invocation
//	at t=D                        set admission's clock to D after the start
//	arrive name=X [fn=F] [tenant=T] [chain=C] [deadline=D] [steps=N] [class=batch] [priority=N] [fn-cap=N]
//	                              prints "X: running", "X: queued <queue>" or "X: <error>"
//	finish name=X [status=N]      the invocation X ends; prints the names granted a slot
//	leave name=X                  X's client goes away: a queued X ends (prints how), a
//	                              running one is answered to nobody when it finishes
//	sweep                         the sweepers run once: chains whose callers went quiet end
//	admission                     chains started and not ended, and the headroom kept
//	state                         in flight and queue depths by class
//	events                        what the scheduler reported since the last "events"
//
// Admission runs on a fake clock; waits use the real one, with deadlines an
// hour away, so that no wait in a script ends by itself. The sweepers run
// only when a script says so (scenarioConfig).
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScenario(t, f) })
	}
}

type block struct {
	cmd, want string
	comments  string
}

func parseScript(t *testing.T, text string) []block {
	t.Helper()
	var out []block
	var comments strings.Builder
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			if comments.Len() > 0 {
				comments.WriteString("\n")
			}
			continue
		case strings.HasPrefix(l, "#"):
			comments.WriteString(l + "\n")
			continue
		}
		b := block{cmd: l, comments: comments.String()}
		comments.Reset()
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("line %d: %q: want ---- after a command", i+1, l)
		}
		var want []string
		for i+1 < len(lines) && strings.TrimSpace(lines[i+1]) != "" {
			i++
			want = append(want, lines[i])
		}
		b.want = strings.Join(want, "\n")
		out = append(out, b)
	}
	return out
}

func runScenario(t *testing.T, path string) {
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseScript(t, string(text))
	h := &harness{t: t}
	defer h.close()
	var rewritten strings.Builder
	for _, b := range blocks {
		got := h.run(b.cmd)
		if *rewrite {
			rewritten.WriteString(b.comments + b.cmd + "\n----\n" + got + "\n\n")
			continue
		}
		if got != b.want {
			t.Errorf("%s:\n%s\ngot:\n%s\nwant:\n%s", path, b.cmd, got, b.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(rewritten.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// harness drives a Scheduler one command at a time.
type harness struct {
	t       *testing.T
	s       *Scheduler
	base    time.Time
	now     time.Time
	clockMu sync.Mutex
	ev      *recordEvents
	calls   map[string]*call
	started chan string
}

type call struct {
	inv     *invocation.Invocation
	release chan int // the status the invocation ends with
	done    chan error
	client  *client
	running bool // it got a slot (the harness saw it start)
}

// client is a call's caller, as the scheduler watches it (qos.Watcher and
// qos.GoneChecker).
type client struct {
	left chan struct{} // closed when it goes away
	gone atomic.Bool
}

func (c *client) WatchGone() <-chan struct{} { return c.left }
func (c *client) StopWatch()                 {}
func (c *client) Gone() bool                 { return c.gone.Load() }

func (h *harness) clock() time.Time {
	h.clockMu.Lock()
	defer h.clockMu.Unlock()
	return h.now
}

func (h *harness) close() {
	if h.s != nil {
		h.s.Close()
	}
	for _, c := range h.calls {
		select {
		case c.release <- 200:
		default:
		}
	}
	if h.s != nil {
		h.s.Close() // its sweepers: with -count=N, N×scripts of them would tick on
	}
}

func args(t *testing.T, fields []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range fields {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("argument %q: want key=value", f)
		}
		m[k] = v
	}
	return m
}

func (h *harness) dur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) num(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		h.t.Fatal(err)
	}
	return f
}

func (h *harness) run(cmd string) string {
	fields := strings.Fields(cmd)
	a := args(h.t, fields[1:])
	switch fields[0] {
	case "new":
		h.close()        // a scenario may start over: the last scheduler's calls end
		h.clockMu.Lock() // the last scheduler's calls may still read it
		h.base = time.Now().Add(time.Hour)
		h.now = h.base
		h.clockMu.Unlock()
		h.ev = &recordEvents{}
		h.calls = map[string]*call{}
		h.started = make(chan string, 100)
		// The chain table's sweeper runs on the real clock (reading the
		// script's): a TTL longer than any script keeps it from ending
		// chains between two commands, at a moment that would depend on
		// the machine's speed.
		cfg := Config{
			Limit: int(h.num(a["limit"])), QueueCapacity: 100, QueueTimeout: 10 * time.Hour,
			ChainTTL: 10 * time.Hour, Events: h.ev, Now: h.clock,
		}
		if v, ok := a["capacity"]; ok {
			cfg.QueueCapacity = int(h.num(v))
		}
		if v, ok := a["batch-share"]; ok {
			cfg.BatchShare = h.num(v)
		}
		if v, ok := a["tenant-cap"]; ok {
			cfg.TenantCap = int(h.num(v))
		}
		if v, ok := a["fn-cap"]; ok {
			cfg.FunctionCap = int(h.num(v))
		}
		if v, ok := a["rate"]; ok {
			cfg.MaxRate = h.num(v)
		}
		if v, ok := a["estimate"]; ok {
			cfg.DefaultEstimate = h.dur(v)
		}
		if v, ok := a["headroom"]; ok {
			cfg.Headroom = h.num(v)
		}
		if v, ok := a["ttl"]; ok {
			cfg.ChainTTL = h.dur(v)
		}
		cfg.ShortestFirst = a["order"] == "shortest-first"
		scenarioConfig(h.t, &cfg, a)
		h.s = New(cfg)
		return "ok"
	case "observe":
		if v, ok := a["queued"]; ok {
			// That many invocations that waited for their slot (a
			// full pool) held it that long.
			f := h.s.fnFlight.GetString(a["fn"])
			for range int(h.num(v)) {
				h.s.adm.est.observe(f, h.dur(a["dur"]), true)
			}
			return fmt.Sprintf("estimate %s: %s, full pool's pace %s", a["fn"], fmtDur(h.s.Estimate(a["fn"])), fmtDur(h.s.adm.est.drain()))
		}
		n := 1
		if v, ok := a["n"]; ok {
			n = int(h.num(v))
		}
		for range n {
			h.s.Observe(a["fn"], h.dur(a["dur"]))
		}
		return fmt.Sprintf("estimate %s: %s", a["fn"], fmtDur(h.s.Estimate(a["fn"])))
	case "at":
		h.clockMu.Lock()
		h.now = h.base.Add(h.dur(a["t"]))
		h.clockMu.Unlock()
		return "ok"
	case "arrive":
		return h.arrive(a)
	case "finish":
		return h.finish(a)
	case "state":
		var b strings.Builder
		fmt.Fprintf(&b, "in flight %d/%d", h.s.InFlight(), h.s.Limit())
		for k := range NumQueues {
			fmt.Fprintf(&b, "\n%s:", k)
			for c := range NumClasses {
				fmt.Fprintf(&b, " %s %d", ClassName(c), h.s.Depth(k, c))
			}
		}
		if p := h.s.Queued() - h.s.queuedInSets(); p > 0 {
			fmt.Fprintf(&b, "\nparked: %d", p)
		}
		return b.String()
	case "events":
		return h.ev.drain()
	case "leave":
		return h.leave(a)
	case "sweep":
		if sw, ok := any(h.s).(interface{ sweep() }); ok {
			sw.sweep()
		}
		return "ok"
	case "admission":
		out := fmt.Sprintf("active chains %d", h.s.ActiveChains())
		if hr, ok := any(h.s).(interface{ Headroom() float64 }); ok {
			out += fmt.Sprintf(", headroom %.3f", hr.Headroom())
		}
		return out
	}
	h.t.Fatalf("unknown command %q", fields[0])
	return ""
}

func (h *harness) arrive(a map[string]string) string {
	name := a["name"]
	inv := &invocation.Invocation{Function: a["fn"], Tenant: a["tenant"], Chain: a["chain"]}
	if inv.Function == "" {
		inv.Function = "f"
	}
	if v, ok := a["deadline"]; ok {
		inv.Budget = h.dur(v)
	}
	if v, ok := a["steps"]; ok {
		inv.Steps = int(h.num(v))
	}
	if v, ok := a["fn-cap"]; ok {
		inv.FunctionCap = int(h.num(v))
	}
	if v, ok := a["priority"]; ok {
		inv.Priority = int(h.num(v))
	}
	if v, ok := a["class"]; ok {
		c, ok := ParseClass([]byte(v))
		if !ok {
			h.t.Fatalf("class %q", v)
		}
		inv.Class = c
	}
	c := &call{inv: inv, release: make(chan int, 1), done: make(chan error, 1), client: &client{left: make(chan struct{})}}
	h.calls[name] = c
	before := h.s.Queued()
	started, s := h.started, h.s // a later "new" replaces them
	go func() {
		_, err := s.Do(inv, c.client, invokerFunc2(func() {
			started <- name
			<-c.release
		}))
		c.done <- err
	}()
	for {
		select {
		case got := <-h.started:
			if got != name {
				h.t.Fatalf("%s started while %s arrived", got, name)
			}
			c.running = true
			return name + ": running"
		case err := <-c.done:
			return name + ": " + describe(err)
		default:
		}
		if h.s.Queued() > before {
			q := Pending
			if inv.Continuation {
				q = ChainRunning
			}
			return fmt.Sprintf("%s: queued %s", name, q)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func describe(err error) string {
	var r *RefusedError
	switch {
	case err == nil:
		return "done"
	case errors.As(err, &r) && r.Never:
		return "refused, never fits: needs " + fmtDur(r.Needs) + ", allowed " + fmtDur(r.Allowed)
	case errors.As(err, &r):
		return "refused, retry after " + fmtDur(r.RetryAfter)
	}
	return err.Error()
}

func (h *harness) finish(a map[string]string) string {
	name := a["name"]
	c := h.calls[name]
	if c == nil {
		h.t.Fatalf("finish %s: no such invocation", name)
	}
	if !c.running {
		return name + ": not running" // refused, or still queued: nothing to finish
	}
	before := h.s.Queued()
	c.release <- 200
	if err := <-c.done; err != nil {
		h.t.Fatalf("%s: %v", name, err)
	}
	var granted []string
	for range before - h.s.Queued() {
		g := <-h.started
		h.calls[g].running = true
		granted = append(granted, g)
	}
	slices.Sort(granted)
	if len(granted) == 0 {
		return "granted: none"
	}
	return "granted: " + strings.Join(granted, " ")
}

func (h *harness) leave(a map[string]string) string {
	name := a["name"]
	c := h.calls[name]
	if c == nil {
		h.t.Fatalf("leave %s: no such invocation", name)
	}
	c.client.gone.Store(true)
	close(c.client.left)
	if c.running {
		return name + ": left"
	}
	select {
	case err := <-c.done:
		return name + ": " + describe(err)
	case <-time.After(time.Minute):
		h.t.Fatalf("leave %s: still queued a minute after its client left", name)
	}
	return ""
}

type invokerFunc2 func()

func (f invokerFunc2) Invoke(*invocation.Invocation) error { f(); return nil }

// recordEvents records what the scheduler reports, as text.
type recordEvents struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordEvents) add(s string) {
	r.mu.Lock()
	r.lines = append(r.lines, s)
	r.mu.Unlock()
}

func (r *recordEvents) drain() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) == 0 {
		return "none"
	}
	s := strings.Join(r.lines, "\n")
	r.lines = nil
	return s
}

func (r *recordEvents) ChainStarted(c uint8) { r.add("chain started (" + ClassName(c) + ")") }
func (r *recordEvents) ChainRefused(c uint8) { r.add("chain refused (" + ClassName(c) + ")") }
func (r *recordEvents) ChainEnded(e ChainEnd) {
	r.add(fmt.Sprintf("chain %s (%s): predicted %s, took %s", e.Outcome, ClassName(e.Class), fmtDur(e.Predicted), fmtDur(e.Actual)))
}
func (r *recordEvents) Waited(QueueKind, uint8, time.Duration) {}

// queuedInSets is Queued without the parked waiters.
func (s *Scheduler) queuedInSets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queues[ChainRunning].Len() + s.queues[Pending].Len()
}

// fmtDur prints whole seconds as "100s", shorter durations as Go does.
func fmtDur(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d >= time.Second && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
