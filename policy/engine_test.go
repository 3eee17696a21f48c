package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sequoia-qos/sequoia/policies"
)

// writePolicy writes files into dir, replacing what is there.
func writePolicy(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func newEngine(t *testing.T, opts Options) *Engine {
	t.Helper()
	if opts.Timeout == 0 {
		// Tests not about timeouts must not fail on a slow, shared
		// machine under -race.
		opts.Timeout = time.Minute
	}
	e, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func decide(t *testing.T, e *Engine, in Input) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), &in)
	if err != nil {
		t.Fatalf("Decide(%+v): %v", in, err)
	}
	return d
}

const priorityPolicy = `package sequoia

decision := {"priority": %d}
`

func priority(n string) string { return strings.Replace(priorityPolicy, "%d", n, 1) }

func TestShippedDefaults(t *testing.T) {
	e := newEngine(t, Options{})
	if got := e.Status(); got.Source != "embedded" || got.Version == "" || len(got.Files) != 8 {
		t.Errorf("status = %+v, want the 8 embedded policy files", got)
	}
	first := decide(t, e, Input{Function: "f", Tenant: "a", Class: "interactive", Step: 1})
	if first.Deny || first.Priority != nil || first.Class != "" || first.ConcurrencyCap != 0 {
		t.Errorf("first step = %+v, want allow and nothing else", first)
	}
	cont := decide(t, e, Input{Function: "f", Tenant: "a", Class: "interactive", Step: 2})
	if cont.Priority == nil || *cont.Priority != 100 {
		t.Errorf("continuation = %+v, want priority 100 from chains.rego", cont)
	}
}

func TestFairShareFromSnapshot(t *testing.T) {
	var snap atomic.Pointer[Snapshot]
	snap.Store(&Snapshot{Limit: 10})
	e := newEngine(t, Options{Snapshot: func() Snapshot { return *snap.Load() }})
	in := Input{Function: "f", Tenant: "a", Step: 1}
	if d := decide(t, e, in); d.Priority != nil {
		t.Fatalf("idle platform: %+v, want no priority", d)
	}
	snap.Store(&Snapshot{Limit: 10, Tenants: map[string]TenantStats{"a": {InFlight: 8}, "b": {InFlight: 2}}})
	// The cached decision holds until the next refresh...
	if d := decide(t, e, in); d.Priority != nil {
		t.Fatalf("before refresh: %+v, want the cached decision", d)
	}
	// ...which changes the epoch and so the key.
	e.Refresh()
	epoch := e.snap.Load().epoch
	e.Refresh() // the same state: the epoch stays, and the cache with it
	if got := e.snap.Load().epoch; got != epoch {
		t.Errorf("epoch %d after an unchanged refresh, want %d", got, epoch)
	}
	if d := decide(t, e, in); d.Priority == nil || *d.Priority != -10 {
		t.Fatalf("tenant over its share: %+v, want priority -10", d)
	}
}

func TestDenyFromDir(t *testing.T) {
	dir := t.TempDir()
	files, _ := ReadFiles(policies.FS)
	for _, f := range files {
		src := string(f.Data)
		if f.Name == "deny.rego" {
			src = strings.Replace(src, "deny_functions := {}", `deny_functions := {"ns/blocked": "under investigation"}`, 1)
		}
		writePolicy(t, dir, map[string]string{f.Name: src})
	}
	e := newEngine(t, Options{Dir: dir})
	d := decide(t, e, Input{Function: "ns/blocked", Tenant: "ns"})
	if !d.Deny || d.Reason != `function "ns/blocked" is denied: under investigation` {
		t.Errorf("blocked = %+v", d)
	}
	if d := decide(t, e, Input{Function: "ns/ok", Tenant: "ns"}); d.Deny {
		t.Errorf("ok = %+v, want allow", d)
	}
}

func TestBadPolicies(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"syntax", "package sequoia\n\ndecision := {\n", "p.rego:4: unexpected eof token"},
		{"unsafe", "package sequoia\n\ndecision := {\"priority\": x}\n", "p.rego:3: var x is unsafe"},
		{"not an object", "package sequoia\n\ndecision := 3\n", "p.rego:3: validation input 1: decision must be an object"},
		{"unknown field", "package sequoia\n\ndecision := {\"priorty\": 3}\n", "decision.priorty: unknown field"},
		{"unknown class", "package sequoia\n\ndecision := {\"class\": \"gold\"}\n", `decision.class: "gold" is not a class`},
		{"negative cap", "package sequoia\n\ndecision := {\"concurrency_cap\": -1}\n", "decision.concurrency_cap: -1 is out of range"},
		{"fractional steps", "package sequoia\n\ndecision := {\"chain_steps\": 1.5}\n", "decision.chain_steps: must be a whole number"},
		{"wrong type", "package sequoia\n\ndecision := {\"allow\": \"yes\"}\n", "decision.allow: must be a boolean"},
		{"reason without allow", "package sequoia\n\ndecision := {\"reason\": \"x\"}\n", "decision.reason: given without"},
		{"no decision", "package sequoia\n\nother := 1\n", "data.sequoia.decision is not defined"},
		{"eval error", "package sequoia\n\nx := 1 if input.step >= 0\n\nx := 2 if input.step >= 0\n\ndecision := {\"priority\": x}\n", "validation input 1: p.rego:5: eval_conflict_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compile(context.Background(), []File{{Name: "p.rego", Data: []byte(tc.src)}}, DefaultClasses)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestUnusedPackageRefused(t *testing.T) {
	decision := File{Name: "decision.rego", Data: []byte("package sequoia\n\nimport data.lib\n\ndecision := {\"priority\": lib.p}\n")}
	lib := File{Name: "lib.rego", Data: []byte("package lib\n\np := 1\n")}
	// Its rules read each other, which does not make it used.
	stray := File{Name: "deny.rego", Data: []byte("# written for another layout\npackage sequoia.policies.deny\n\ndenied := {\"acme\": \"x\"}\n\ndeny contains r if r := denied[input.tenant]\n")}
	if _, err := compile(context.Background(), []File{decision, lib}, DefaultClasses); err != nil {
		t.Fatalf("a library package that the decision imports: %v", err)
	}
	_, err := compile(context.Background(), []File{decision, lib, stray}, DefaultClasses)
	if err == nil || err.Error() != "deny.rego:2: package sequoia.policies.deny is not used: only package sequoia makes data.sequoia.decision, and no file refers to this one" {
		t.Errorf("err = %v", err)
	}
}

// A policy written for the per-field contributions (priority.mine := 5)
// is refused while nothing reads them, instead of doing nothing.
func TestUnreadContributionRefused(t *testing.T) {
	shipped, err := ReadFiles(policies.FS)
	if err != nil {
		t.Fatal(err)
	}
	old := File{Name: "mine.rego", Data: []byte("package sequoia\n\npriority.mine := 5\n")}
	_, err = compile(context.Background(), append(shipped, old), DefaultClasses)
	if err == nil || !strings.HasPrefix(err.Error(), "mine.rego:3: priority.mine is read by no rule") {
		t.Errorf("err = %v", err)
	}
	// A decision of the operator's own that reads them keeps them legal.
	own := File{Name: "decision.rego", Data: []byte("package sequoia\n\ndecision := {\"priority\": sum([n | some n in priority])}\n")}
	if _, err := compile(context.Background(), []File{own, old}, DefaultClasses); err != nil {
		t.Errorf("own decision reading priority: %v", err)
	}
}

func TestBrokenReloadKeepsRunningPolicy(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"p.rego": priority("1")})
	reg := prometheus.NewRegistry()
	e := newEngine(t, Options{Dir: dir, Registerer: reg})
	good := e.Version()

	writePolicy(t, dir, map[string]string{"p.rego": "package sequoia\n\ndecision := {\"priority\": }\n"})
	err := e.Reload(context.Background())
	var perr *Error
	if !errors.As(err, &perr) || perr.Problems[0].File != "p.rego" || perr.Problems[0].Line != 3 {
		t.Fatalf("reload error = %v, want one located at p.rego:3", err)
	}
	st := e.Status()
	if st.Version != good || !strings.HasPrefix(st.LastError, "p.rego:3:") || st.LastErrorAt == nil {
		t.Errorf("status = %+v, want version %s and the error at p.rego:3", st, good)
	}
	if d := decide(t, e, Input{Function: "f"}); *d.Priority != 1 {
		t.Errorf("decision = %+v, want the running policy's priority 1", d)
	}
	if got := value(e.m.reloads[reloadFailed]); got != 1 {
		t.Errorf("failed reloads = %v, want 1", got)
	}

	// Reverting the broken edit clears the error without a recompile.
	writePolicy(t, dir, map[string]string{"p.rego": priority("1")})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Version != good || st.LastError != "" {
		t.Errorf("status after reverting = %+v, want version %s and no error", st, good)
	}
	if got := value(e.m.reloads[reloadOK]); got != 1 {
		t.Errorf("successful loads = %v, want 1 (the revert recompiles nothing)", got)
	}

	writePolicy(t, dir, map[string]string{"p.rego": priority("2")})
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Version == good || st.LastError != "" {
		t.Errorf("status after a good reload = %+v, want a new version and no error", st)
	}
	if d := decide(t, e, Input{Function: "f"}); *d.Priority != 2 {
		t.Errorf("decision = %+v, want priority 2", d)
	}
}

// TestConfigMapSymlinkSwap updates a directory the way the kubelet
// updates a ConfigMap volume: the visible file is a link through
// "..data", and "..data" is atomically renamed to point at a new
// timestamped directory. No watched file is written.
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, src string) {
		t.Helper()
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writePolicy(t, filepath.Join(dir, name), map[string]string{"p.rego": src})
	}
	mkVersion("..v1", priority("1"))
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/p.rego", filepath.Join(dir, "p.rego")); err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, Options{Dir: dir, Debounce: time.Millisecond})
	if d := decide(t, e, Input{}); *d.Priority != 1 {
		t.Fatalf("decision = %+v, want priority 1", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	waitVersion := func(old string) {
		t.Helper()
		for e.Version() == old {
			time.Sleep(5 * time.Millisecond)
		}
	}

	// A broken version is swapped in: it never goes live.
	old := e.Version()
	mkVersion("..v2", "package sequoia\n\ndecision := {\"class\": \"gold\"}\n")
	swap := func(target string) {
		t.Helper()
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	swap("..v2")
	for e.Status().LastError == "" {
		time.Sleep(5 * time.Millisecond)
	}
	if e.Version() != old {
		t.Fatal("the broken version went live")
	}
	if !strings.Contains(e.Status().LastError, `p.rego:3: validation input 1: decision.class: "gold" is not a class`) {
		t.Errorf("last error = %q", e.Status().LastError)
	}

	mkVersion("..v3", priority("3"))
	swap("..v3")
	waitVersion(old)
	if d := decide(t, e, Input{}); *d.Priority != 3 {
		t.Errorf("decision = %+v, want priority 3", d)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// TestReloadUnderLoad evaluates from several goroutines while good and
// broken policies replace each other: no evaluation fails because of a
// swap, and no decision ever comes from a broken version.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"p.rego": priority("1")})
	// A small cache so that evaluations keep happening.
	// A long timeout: this test is about swaps, not slow evaluations.
	e := newEngine(t, Options{Dir: dir, CacheSize: 2, Timeout: time.Minute})
	broken := []string{
		"package sequoia\n\ndecision := {\"priority\": 666, \"class\": \"gold\"}\n",
		"package sequoia\n\ndecision := {\"priority\": 666\n",
		"package sequoia\n\ndecision := {\"priority\": 666, \"concurrency_cap\": -1}\n",
	}
	var stop atomic.Bool
	var evals, failures atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			fns := []string{"a", "b", "c", "d", "e"}
			for i := 0; !stop.Load(); i++ {
				in := Input{Function: fns[(i+g)%len(fns)]}
				d, err := e.Decide(context.Background(), &in)
				evals.Add(1)
				if err != nil || d.Priority == nil || (*d.Priority != 1 && *d.Priority != 2) {
					failures.Add(1)
					t.Errorf("decision %+v, err %v", d, err)
					return
				}
			}
		})
	}
	var failedReloads int
	for i := range 60 {
		src := priority([]string{"1", "2"}[i%2])
		if i%3 == 2 {
			src = broken[i%len(broken)]
		}
		writePolicy(t, dir, map[string]string{"p.rego": src})
		if err := e.Reload(context.Background()); err != nil {
			failedReloads++
		}
	}
	stop.Store(true)
	wg.Wait()
	if failedReloads != 20 {
		t.Errorf("%d reloads failed, want the 20 broken ones", failedReloads)
	}
	if evals.Load() == 0 || failures.Load() != 0 {
		t.Errorf("%d evaluations, %d failures", evals.Load(), failures.Load())
	}
}

func TestEvaluationErrorsFollowOnError(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"p.rego": `package sequoia

# Two values for one complete rule: an evaluation error, for "boom" only.
x := 1 if input.function == "boom"

x := 2 if input.function == "boom"

decision := {"priority": x} if input.function == "boom"

decision := {"priority": 0} if input.function != "boom"
`})
	for _, tc := range []struct {
		onError  OnError
		wantDeny bool
	}{{Allow, false}, {Deny, true}} {
		e := newEngine(t, Options{Dir: dir, OnError: tc.onError})
		d, err := e.Decide(context.Background(), &Input{Function: "boom"})
		if !errors.Is(err, ErrEvaluation) {
			t.Fatalf("err = %v, want ErrEvaluation", err)
		}
		if d.Deny != tc.wantDeny || d.Priority != nil {
			t.Errorf("on error %v: decision %+v, want deny=%v and nothing else", tc.onError, d, tc.wantDeny)
		}
		if got := value(e.m.errors[evalFailed]); got != 1 {
			t.Errorf("errors = %v, want 1", got)
		}
		// Failures are not cached: the next one is evaluated again.
		_, _ = e.Decide(context.Background(), &Input{Function: "boom"})
		if got := value(e.m.errors[evalFailed]); got != 2 {
			t.Errorf("errors = %v, want 2", got)
		}
	}
}

func TestTimeout(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, map[string]string{"p.rego": `package sequoia

# Far more work than any timeout allows, for "slow" only.
decision := {"priority": count([x | some x in numbers.range(1, 100000000); x % 7 == 0])} if input.function == "slow"

decision := {} if input.function != "slow"
`})
	e := newEngine(t, Options{Dir: dir, Timeout: time.Millisecond, OnError: Deny})
	d, err := e.Decide(context.Background(), &Input{Function: "slow"})
	if !errors.Is(err, ErrEvaluation) || !strings.Contains(err.Error(), "timed out") || !d.Deny {
		t.Fatalf("decision %+v, err %v; want a timeout and a deny", d, err)
	}
	if got := value(e.m.errors[evalTimeout]); got != 1 {
		t.Errorf("timeouts = %v, want 1", got)
	}
}

func TestCacheKeysOnWhatThePolicyReads(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		wantHits  float64
	}{
		// Reads only the function: three chains of one function share
		// one evaluation.
		{"function", "package sequoia\n\ndecision := {\"chain_steps\": count(input.function)}\n", 2},
		// Reads the chain id: every chain is its own key.
		{"chain", "package sequoia\n\ndecision := {\"chain_steps\": count(input.chain_id)}\n", 0},
		// Reads input as a whole: everything is in the key.
		{"whole", "package sequoia\n\ndecision := {\"chain_steps\": count(input)}\n", 0},
		// Non-deterministic: never cached.
		{"time", "package sequoia\n\ndecision := {\"chain_steps\": 1} if time.now_ns() > 0\n", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writePolicy(t, dir, map[string]string{"p.rego": tc.src})
			e := newEngine(t, Options{Dir: dir})
			for _, chain := range []string{"c1", "c22", "c333"} {
				decide(t, e, Input{Function: "f", ChainID: chain})
			}
			if got := value(e.m.cache[cacheHit]); got != tc.wantHits {
				t.Errorf("cache hits = %v, want %v", got, tc.wantHits)
			}
		})
	}
}

func TestCheckReportsFailingTests(t *testing.T) {
	files := []File{
		{Name: "p.rego", Data: []byte(priority("1"))},
		{Name: "p_test.rego", Data: []byte("package sequoia.test\n\ntest_ok if data.sequoia.decision.priority == 1\n\ntest_wrong if {\n\tdata.sequoia.decision.priority == 2\n}\n")},
	}
	n, err := Check(context.Background(), files, nil)
	if n != 2 {
		t.Errorf("ran %d tests, want 2", n)
	}
	want := "p_test.rego:6: test data.sequoia.test.test_wrong failed: data.sequoia.decision.priority == 2\n    expected: 2\n    actual:   1"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want the failure located at the failing expression, with what it compared:\n%s", err, want)
	}
}

func TestParseOnError(t *testing.T) {
	for s, want := range map[string]OnError{"allow": Allow, "deny": Deny} {
		if got, ok := ParseOnError(s); !ok || got != want {
			t.Errorf("ParseOnError(%q) = %v, %v", s, got, ok)
		}
	}
	if _, ok := ParseOnError("maybe"); ok {
		t.Error("ParseOnError(maybe) accepted")
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
