package events

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/cluster/natstest"
)

// The tests of this file crash a process at chosen points of a delivery
// and check that sequoia_events_redelivered_total, summed over the
// processes, equals the repeats at the platform (its runs beyond the
// first). A crash is played with a crash image: a copy of the state
// directory taken at that point, which is what a SIGKILL then would leave
// (the operating system has every write); the next process starts on the
// copy, while the first one is declared dead (its platform runs nothing
// more).

// platform is a Deliverer playing the platform for one process: an
// attempt tells the store it goes out, then runs (counted per event), and
// is answered Delivered, unless script says otherwise.
type platform struct {
	proc   *process    // set before the process starts
	images chan string // crash images taken by crash
	once   sync.Once
	mu     sync.Mutex
	runs   map[int]int
	dead   bool
	script func(p *platform, ev *Event, n int, stop <-chan struct{}) Result
}

func newPlatform(script func(p *platform, ev *Event, n int, stop <-chan struct{}) Result) *platform {
	return &platform{runs: map[int]int{}, script: script, images: make(chan string, 1)}
}

// crash crashes the platform's process now (see process.crash), the first
// time, and hands the image to image.
func (p *platform) crash() { p.once.Do(func() { p.images <- p.proc.crash() }) }

// image waits for the crash image.
func (p *platform) image(t *testing.T) string {
	t.Helper()
	select {
	case img := <-p.images:
		return img
	case <-time.After(time.Minute):
		t.Fatal("no crash")
		return ""
	}
}

func (p *platform) Deliver(ev *Event, stop <-chan struct{}) Result {
	if p.isDead() {
		<-stop
		return Result{Verdict: Stopped}
	}
	var b struct{ N int }
	_ = json.Unmarshal(ev.Request[strings.Index(string(ev.Request), "\r\n\r\n")+4:], &b)
	if p.script != nil {
		return p.script(p, ev, b.N, stop)
	}
	p.run(ev, b.N)
	return Result{Verdict: Delivered, Status: 200}
}

// run sends the attempt: the platform runs event n once more.
func (p *platform) run(ev *Event, n int) {
	ev.Sending()
	p.mu.Lock()
	p.runs[n]++
	p.mu.Unlock()
}

func (p *platform) ran(n int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runs[n]
}

// kill makes the process dead as far as the platform goes: it runs
// nothing more (its attempts wait for the stop).
func (p *platform) kill() {
	p.mu.Lock()
	p.dead = true
	p.mu.Unlock()
}

func (p *platform) isDead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

// process is one sequoia process on the embedded default.
type process struct {
	t   *testing.T
	dir string
	s   *Store
	p   *platform
}

// startProcess starts a process on dir delivering to p; setup, when not
// nil, sets the store's test hooks before it starts.
func startProcess(t *testing.T, dir string, cfg Config, p *platform, setup func(*repeats)) *process {
	t.Helper()
	return startOn(t, startEngine(t, dir, ""), dir, cfg, p, setup)
}

// startReplica starts a replica on the NATS at url (dir is empty).
func startReplica(t *testing.T, url string, cfg Config, p *platform, setup func(*repeats)) *process {
	t.Helper()
	return startOn(t, startEngine(t, "", url), "", cfg, p, setup)
}

func startOn(t *testing.T, e *cluster.Engine, dir string, cfg Config, p *platform, setup func(*repeats)) *process {
	t.Helper()
	s := openStore(t, e, cfg)
	if setup != nil {
		setup(&s.disp.rep)
	}
	pr := &process{t: t, dir: dir, s: s, p: p}
	p.proc = pr
	s.Start(p)
	return pr
}

// crash takes the process's crash image and declares it dead; it returns
// the image's directory.
func (pr *process) crash() string {
	pr.p.kill()
	return crashImage(pr.t, pr.s, pr.dir)
}

// crashImage copies the embedded server's files and the markers under dir
// into a new directory, as a SIGKILL of the process now would leave them;
// no marker write runs meanwhile. It may run outside the test's goroutine.
func crashImage(t *testing.T, s *Store, dir string) string {
	s.disp.rep.wmu.Lock()
	defer s.disp.rep.wmu.Unlock()
	dst := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, de fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a temporary file renamed meanwhile
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if de.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if strings.HasSuffix(path, ".tmp") || de.Name() == "sequoia.lock" {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Errorf("crash image: %v", err)
	}
	return dst
}

// counted sums the processes' sequoia_events_redelivered_total.
func counted(t *testing.T, procs ...*process) int {
	t.Helper()
	n := 0
	for _, pr := range procs {
		n += int(value(t, pr.s.m.redelivered))
	}
	return n
}

// ranTotal sums the runs of event n at the processes' platforms.
func ranTotal(n int, procs ...*process) int {
	r := 0
	for _, pr := range procs {
		r += pr.p.ran(n)
	}
	return r
}

// checkExact checks that the processes counted each repeat of event 0 at
// the platform, and nothing else.
func checkExact(t *testing.T, wantRuns int, procs ...*process) {
	t.Helper()
	runs, c := ranTotal(0, procs...), counted(t, procs...)
	if c != runs-1 {
		t.Errorf("counted %d redeliveries for %d runs of the event (%d repeats)", c, runs, runs-1)
	}
	if runs < wantRuns {
		t.Errorf("the event ran %d times, want %d", runs, wantRuns)
	}
}

var repeatCfg = Config{Concurrency: 4, Lease: time.Second, MaxRetries: 2}

// TestRepeatsCountedAcrossACrash crashes the process at each point of a
// delivery; the next process on the files it left delivers the event
// again, or not, and counts a redelivery exactly when the platform runs
// the event a second time.
func TestRepeatsCountedAcrossACrash(t *testing.T) {
	crashThenWait := func(p *platform, stop <-chan struct{}) Result {
		p.crash()
		<-stop
		return Result{Verdict: Stopped}
	}
	for _, c := range []struct {
		name string
		// The first process's attempt (nil: runs and answers Delivered);
		// it crashes in it, or at hook.
		script   func(p *platform, ev *Event, n int, stop <-chan struct{}) Result
		hook     string
		wantRuns int  // at both platforms
		again    bool // the event is in the store after the crash
	}{
		{"at the platform", func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
			p.run(ev, n)
			return crashThenWait(p, stop)
		}, "", 2, true},
		{"waiting for a slot", func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
			return crashThenWait(p, stop)
		}, "", 1, true},
		{"answered, not acknowledged", nil, "answered", 2, true},
		{"acknowledged", nil, "settled", 1, false},
		{"throttled, not handed back", func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
			ev.Sending()
			return Result{Verdict: Retry, Reason: "throttled_concurrency", Delay: time.Hour, Status: 429}
		}, "handing back", 1, true},
		{"function error, not handed back", func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
			p.run(ev, n)
			return Result{Verdict: FunctionError, Status: 200, FunctionError: "Unhandled"}
		}, "handing back", 2, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			hold := make(chan struct{})
			plat := newPlatform(c.script)
			var setup func(*repeats)
			if c.hook != "" {
				setup = func(r *repeats) {
					r.hook = func(point string, _ uint64) {
						if point == c.hook {
							plat.crash()
							<-hold
						}
					}
				}
			}
			pr := startProcess(t, t.TempDir(), repeatCfg, plat, setup)
			t.Cleanup(func() { close(hold) }) // before the store stops
			if _, err := pr.s.Accept(event("f", 0)); err != nil {
				t.Fatal(err)
			}
			img := plat.image(t)

			var left int
			var err error
			next := startProcess(t, img, repeatCfg, newPlatform(nil), func(r *repeats) {
				left, err = r.d.s.Undelivered(context.Background()) // before deliveries start
			})
			if err != nil {
				t.Fatal(err)
			}
			if again := left == 1; again != c.again {
				t.Fatalf("%d events in the store after the crash, want again=%v", left, c.again)
			}
			if c.again {
				eventually(t, "delivered after the crash", func() bool { return next.p.ran(0) == 1 })
			} else if next.s.disp.rep.isOwed(1) {
				t.Error("an acknowledged event is owed after the crash")
			}
			checkExact(t, c.wantRuns, pr, next)
		})
	}
}

// TestRepeatsCarriedOverTwoCrashes: an event at the platform at a crash is
// owed by the next process until it delivers it; if that one dies too,
// the one after counts the repeat, once for each run.
func TestRepeatsCarriedOverTwoCrashes(t *testing.T) {
	for _, c := range []struct {
		name      string
		secondRan bool // the second process's attempt reached the platform
		wantRuns  int
	}{{"second died waiting for a slot", false, 2}, {"second died at the platform", true, 3}} {
		t.Run(c.name, func(t *testing.T) {
			first := startProcess(t, t.TempDir(), repeatCfg, newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
				p.run(ev, n)
				p.crash()
				<-stop
				return Result{Verdict: Stopped}
			}), nil)
			if _, err := first.s.Accept(event("f", 0)); err != nil {
				t.Fatal(err)
			}
			second := startProcess(t, first.p.image(t), repeatCfg, newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
				if c.secondRan {
					p.run(ev, n)
				}
				p.crash()
				<-stop
				return Result{Verdict: Stopped}
			}), func(r *repeats) {
				if !r.isOwed(1) {
					t.Error("the event at the platform at the first crash is not owed")
				}
			})
			third := startProcess(t, second.p.image(t), repeatCfg, newPlatform(nil), nil)
			eventually(t, "delivered by the third process", func() bool { return third.p.ran(0) == 1 })
			checkExact(t, c.wantRuns, first, second, third)
			if got := counted(t, second); c.secondRan != (got == 1) {
				t.Errorf("the second process counted %d", got)
			}
		})
	}
}

// TestRepeatWhileAttemptRuns: the lease lapses while an attempt runs (its
// heartbeat late); the event's next delivery, in the same process, is
// counted before it goes out. The earlier attempt's acknowledgement does
// not make the later one forgotten; two attempts at the platform at a
// crash count two repeats.
func TestRepeatWhileAttemptRuns(t *testing.T) {
	cfg := Config{Concurrency: 4, Lease: 300 * time.Millisecond}
	for _, mode := range []string{"embedded", "cluster"} {
		t.Run("both answered, "+mode, func(t *testing.T) { bothAnswered(t, mode, cfg) })
	}
	t.Run("both at the platform at a crash", func(t *testing.T) {
		pr := startProcess(t, t.TempDir(), cfg, newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
			p.run(ev, n)
			if ev.Delivery > 1 {
				p.crash()
			}
			<-stop
			return Result{Verdict: Stopped}
		}), func(r *repeats) { r.noHeartbeat = true })
		if _, err := pr.s.Accept(event("f", 0)); err != nil {
			t.Fatal(err)
		}
		next := startProcess(t, pr.p.image(t), repeatCfg, newPlatform(nil), nil)
		eventually(t, "delivered after the crash", func() bool { return next.p.ran(0) == 1 })
		checkExact(t, 3, pr, next)
	})
}

// bothAnswered: the first attempt waits until the second (its lease
// lapsed) went out, and is acknowledged while the second runs.
func bothAnswered(t *testing.T, mode string, cfg Config) {
	secondIn, firstSettled := make(chan struct{}), make(chan struct{})
	var countedBefore, owedAfter atomic.Bool
	plat := newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
		p.run(ev, n)
		switch ev.Delivery {
		case 1:
			<-secondIn
		case 2:
			countedBefore.Store(value(t, p.proc.s.m.redelivered) == 1)
			close(secondIn)
			<-firstSettled
			owedAfter.Store(p.proc.s.disp.rep.isOwed(ev.Seq))
		}
		return Result{Verdict: Delivered, Status: 200}
	})
	setup := func(r *repeats) {
		r.noHeartbeat = true
		r.hook = func(point string, _ uint64) {
			// The first attempt's settlement, once the second runs.
			if point == "settled" {
				select {
				case <-secondIn:
					select {
					case <-firstSettled:
					default:
						close(firstSettled)
					}
				default:
				}
			}
		}
	}
	var pr *process
	if mode == "cluster" {
		pr = startReplica(t, natstest.Start(t).URL(), cfg, plat, setup)
	} else {
		pr = startProcess(t, t.TempDir(), cfg, plat, setup)
	}
	if _, err := pr.s.Accept(event("f", 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "both attempts settled", func() bool {
		return value(t, pr.s.m.outcome.WithLabelValues("delivered")) == 2
	})
	if !countedBefore.Load() {
		t.Error("the second attempt was not counted before it went out")
	}
	if !owedAfter.Load() {
		t.Error("the second attempt was forgotten when the first was acknowledged")
	}
	checkExact(t, 2, pr)
}

// TestOwedFromMarkers: a start owes the events a dead process's marker
// names that are still in the store, and only those; it counts the next
// attempt of each, once.
func TestOwedFromMarkers(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir, "")
	s := openStore(t, e, repeatCfg)
	for i := range 2 {
		if _, err := s.Accept(event("f", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.Stop(context.Background())
	_ = e.Close()
	markers := filepath.Join(dir, "events-inflight")
	if err := os.MkdirAll(markers, 0o700); err != nil {
		t.Fatal(err)
	}
	// Event 0 (stream sequence 1) is in the store; 7 never was; 99
	// follows the line's end.
	if err := os.WriteFile(filepath.Join(markers, "dead-replica"), []byte("1,7,\n99,"), 0o600); err != nil {
		t.Fatal(err)
	}
	var owed [3]bool // 1, 7, 99 once open, before deliveries start
	pr := startProcess(t, dir, repeatCfg, newPlatform(nil), func(r *repeats) {
		owed = [3]bool{r.isOwed(1), r.isOwed(7), r.isOwed(99)}
	})
	if owed != [3]bool{true, false, false} {
		t.Errorf("owed 1, 7, 99 (after the line): %v; want only 1", owed)
	}
	if _, err := os.Stat(filepath.Join(markers, "dead-replica")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the dead process's marker is still there: %v", err)
	}
	eventually(t, "both delivered", func() bool { return pr.p.ran(0) == 1 && pr.p.ran(1) == 1 })
	if got := counted(t, pr); got != 1 {
		t.Errorf("counted %d, want 1 (event 0's attempt)", got)
	}
	eventually(t, "nothing owed once delivered", func() bool { return !pr.s.disp.rep.isOwed(1) })
}

// TestStopMarker: a clean stop leaves no marker; a stop that abandons an
// attempt at the platform names it, and the next start counts its repeat.
func TestStopMarker(t *testing.T) {
	dir := t.TempDir()
	e := startEngine(t, dir, "")
	s := openStore(t, e, repeatCfg)
	hold := make(chan struct{})
	defer close(hold)
	p := newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
		p.run(ev, n)
		if n == 1 {
			<-hold
		}
		return Result{Verdict: Delivered, Status: 200}
	})
	s.Start(p)
	if _, err := s.Accept(event("f", 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivered", func() bool { return value(t, s.m.outcome.WithLabelValues("delivered")) == 1 })
	if _, err := s.Accept(event("f", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "at the platform", func() bool { return p.ran(1) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := s.Stop(ctx); n != 1 {
		t.Fatalf("abandoned %d, want 1", n)
	}
	b, err := os.ReadFile(filepath.Join(dir, "events-inflight", keyToken(e.Replica())))
	if line, _, _ := strings.Cut(string(b), "\n"); err != nil || line != "2," {
		t.Errorf("marker %q (%v), want the abandoned event's sequence, 2", b, err)
	}
	_ = e.Close()
	next := startProcess(t, dir, repeatCfg, newPlatform(nil), nil)
	eventually(t, "delivered again", func() bool { return next.p.ran(1) == 1 })
	if got := counted(t, next); got != 1 {
		t.Errorf("counted %d, want 1", got)
	}
	next.s.Stop(context.Background())
	if files, _ := filepath.Glob(filepath.Join(dir, "events-inflight", "*")); len(files) != 0 {
		t.Errorf("markers left by a clean stop: %v", files)
	}
}

// TestClusterCountsEachLossOnce: on an external NATS, a replica dies with
// an attempt at the platform; the next delivery is counted, and recorded
// as such, so that after it was throttled (ran nothing) the one after is
// not counted again.
func TestClusterCountsEachLossOnce(t *testing.T) {
	ns := natstest.Start(t)
	e1 := startEngine(t, "", ns.URL())
	p1 := newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
		p.run(ev, n)
		<-stop
		return Result{Verdict: Stopped}
	})
	s1 := openStore(t, e1, repeatCfg)
	s1.Start(p1)
	if _, err := s1.Accept(event("f", 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "at the platform", func() bool { return p1.ran(0) == 1 })
	_ = e1.Close() // dies holding it
	p1.kill()

	e2 := startEngine(t, "", ns.URL())
	s2 := openStore(t, e2, repeatCfg)
	p2 := newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
		if ev.Delivery == 2 {
			ev.Sending()
			return Result{Verdict: Retry, Reason: "throttled_concurrency", Delay: 10 * time.Millisecond, Status: 429}
		}
		p.run(ev, n)
		return Result{Verdict: Delivered, Status: 200}
	})
	s2.Start(p2)
	eventually(t, "delivered by the second replica", func() bool { return p2.ran(0) == 1 })
	checkExact(t, 2, &process{s: s1, p: p1}, &process{s: s2, p: p2})
	if got := value(t, s2.m.redelivered); got != 1 {
		t.Errorf("the second replica counted %v, want 1", got)
	}
}

// TestClusterHandBackRecorded: on an external NATS, a replica dies once it
// recorded the hand-back of an attempt the platform throttled, before the
// hand-back itself: the next delivery, after the lease, is no repeat.
func TestClusterHandBackRecorded(t *testing.T) {
	ns := natstest.Start(t)
	hold := make(chan struct{})
	e1dead := make(chan struct{})
	p1 := newPlatform(func(p *platform, ev *Event, n int, stop <-chan struct{}) Result {
		ev.Sending()
		return Result{Verdict: Retry, Reason: "throttled_concurrency", Delay: time.Hour, Status: 429}
	})
	e1 := startEngine(t, "", ns.URL())
	r1 := startOn(t, e1, "", repeatCfg, p1, func(r *repeats) {
		r.hook = func(point string, _ uint64) {
			if point == "recorded" {
				p1.kill()
				_ = e1.Close() // dies before the hand-back
				close(e1dead)
				<-hold
			}
		}
	})
	t.Cleanup(func() { close(hold) }) // before the store stops
	if _, err := r1.s.Accept(event("f", 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e1dead:
	case <-time.After(time.Minute):
		t.Fatal("the first replica never handed the event back")
	}
	r2 := startReplica(t, ns.URL(), repeatCfg, newPlatform(nil), nil)
	eventually(t, "delivered by the second replica", func() bool { return r2.p.ran(0) == 1 })
	checkExact(t, 1, r1, r2)
}
