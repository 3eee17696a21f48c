package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/serve"
)

const benchUsage = `usage: sequoia bench chains [flags]
       sequoia bench coldstart [flags]
       sequoia bench dags [flags]
       sequoia bench events [flags]
       sequoia bench cluster [flags]
       sequoia bench chaos [flags]

chains: bursts function chains at an emulated platform three ways
(directly, through HAProxy with maxconn = the platform limit, through
sequoia) and prints completed, refused at entry, dropped mid-chain, latency,
queueing time and makespan, driven by several clients and scenarios.
chaos: the reliability suite: overload, platform outage, 503s, cut
answers, hung calls, slow connections, bad requests, shutdown under load.
coldstart: bursts after an idle period without and with the warm pool, and
a steady run that measures what the warm-ups cost.
dags: orchestration overhead of a sequence and a map of DAG runs, and a
burst of runs of a 3-node DAG.
events: Lambda Event acceptance with the durable store against the
in-memory queue, sequoia SIGKILLed during delivery (embedded, and two
replicas on an external NATS), an async DAG run SIGKILLed mid-run.
cluster: replicas sharing one budget behind a round-robin balancer, against
one replica on W1, then a SIGKILL of a replica and a NATS outage mid-stream.

'sequoia bench NAME --help' lists a benchmark's flags (docs/benchmarks.md).
`

const chainsUsage = `usage: sequoia bench chains [flags]

Starts an emulated platform and bursts -chains chains of -steps steps at it
three ways: directly, through HAProxy with maxconn = the platform limit
(skipped with a note when HAProxy is missing), and through sequoia. Each
target gets a warm-up first; the client gives up on a chain when its
deadline passes. -clients picks who sends the chains: fasthttp (a kept-alive
connection per chain), nethttp (net/http, a fresh connection per chain), k6
(a virtual user per chain; skipped with a note when k6 is missing). Each
scenario of -scenarios runs on targets started for it: burst (one burst),
untold (-untold chains that say neither length nor deadline, then the
burst), bursts (-bursts bursts back to back). Prints, per burst, completed,
refused at entry, dropped mid-chain, failed, client 429s, p50/p99 chain
latency, queueing time, makespan, platform invocations and wasted
invocations, with the physical bound (limit × deadline ÷ (steps × exec));
then sequoia's own counters (drops by reason, the learned headroom) and its
queueing time against HAProxy's. --json prints the report as JSON.
Progress goes to standard error.
`

// Run runs `sequoia bench NAME [flags]`: the report goes to out, progress
// to standard error.
func Run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("bench", "want a benchmark name: chains, coldstart, dags, events, cluster or chaos")
	}
	switch args[0] {
	case "chains":
		return runBenchChains(ctx, args[1:], out, os.Stderr)
	case "coldstart":
		return runBenchColdstart(ctx, args[1:], out, os.Stderr) // bench_coldstart.go
	case "dags":
		return runBenchDags(ctx, args[1:], out, os.Stderr) // bench_dags.go
	case "events":
		return runBenchEvents(ctx, args[1:], out, os.Stderr) // bench_events.go
	case "cluster":
		return runBenchCluster(ctx, args[1:], out, os.Stderr) // bench_cluster.go
	case "chaos":
		return runBenchChaos(ctx, args[1:], out, os.Stderr) // bench_chaos.go
	case "help", "-h", "-help", "--help":
		fmt.Fprint(out, benchUsage)
		return nil
	}
	return cli.Usagef("bench", "unknown benchmark %q: want chains, coldstart, dags, events, cluster or chaos", args[0])
}

// benchSpec is the chain-burst benchmark's workload.
type benchSpec struct {
	Chains    int           `json:"chains"`
	Steps     int           `json:"steps"`
	Limit     int           `json:"platform_limit"`
	Exec      time.Duration `json:"exec_ns"`
	ColdStart time.Duration `json:"cold_start_ns"`
	Deadline  time.Duration `json:"deadline_ns"`
	Retries   int           `json:"client_retries"`
	Targets   []string      `json:"targets"`
	HAProxy   string        `json:"haproxy"`
	// Headroom is SEQUOIA_ADMISSION_HEADROOM for the sequoia target; ""
	// leaves sequoia's default.
	Headroom string `json:"admission_headroom,omitempty"`
	// Clients send the chains: fasthttp (a kept-alive connection per
	// chain, opened by the warm-up), nethttp (net/http, a fresh
	// connection per chain), k6 (a virtual user per chain, a fresh
	// connection each).
	Clients []string `json:"clients"`
	// Scenarios: burst (one measured burst after the warm-up), untold (a
	// burst of Untold chains that say neither length nor deadline first,
	// then the measured burst), bursts (Bursts measured bursts back to
	// back).
	Scenarios []string `json:"scenarios"`
	Untold    int      `json:"untold_chains"`
	Bursts    int      `json:"bursts"`
	K6        string   `json:"k6,omitempty"`
}

// The clients and scenarios bench chains knows.
var (
	benchClients   = []string{"fasthttp", "nethttp", "k6"}
	benchScenarios = []string{"burst", "untold", "bursts"}
)

// benchRow is one measured burst's figures: of one target, driven by one
// client, in one scenario.
type benchRow struct {
	loadtest.Summary
	Scenario            string `json:"scenario"`
	Client              string `json:"client"`
	Burst               int    `json:"burst"` // 1-based, among the scenario's measured bursts
	Skipped             string `json:"skipped,omitempty"`
	PlatformInvocations int64  `json:"platform_invocations"`
	PlatformThrottles   int64  `json:"platform_throttles"`
	PeakConcurrency     int64  `json:"platform_peak_concurrency"`
	// Wasted counts invocations the platform ran for chains that did
	// not complete.
	Wasted int64 `json:"wasted_invocations"`
	// EstimateBefore and EstimateAfter are sequoia's estimate of one
	// invocation's slot time when the burst started and when it ended.
	EstimateBefore time.Duration `json:"step_estimate_before_ns,omitempty"`
	EstimateAfter  time.Duration `json:"step_estimate_after_ns,omitempty"`
	// AdmissionHeadroom is the headroom sequoia's admission was
	// configured with (its floor), HeadroomBefore and HeadroomAfter the
	// learned one when the burst started and ended.
	AdmissionHeadroom *float64 `json:"admission_headroom,omitempty"`
	HeadroomBefore    float64  `json:"admission_headroom_before,omitempty"`
	HeadroomAfter     float64  `json:"admission_headroom_after,omitempty"`
	// Sequoia is what sequoia's own metrics counted over the burst (the
	// untold scenario's first chains, which end during it, taken out).
	Sequoia *sequoiaCounts `json:"sequoia_counted,omitempty"`
	// UntoldActive is how many of the untold scenario's first chains
	// sequoia had not yet ended as the measured burst started (their
	// callers not quiet long enough), ActiveAfter how many chains it still
	// had active a while after the burst (0: all ended).
	UntoldActive int `json:"untold_chains_active_before,omitempty"`
	ActiveAfter  int `json:"sequoia_active_chains_after,omitempty"`
}

// sequoiaCounts are sequoia's chain counters' increase over a burst.
type sequoiaCounts struct {
	Completed int            `json:"completed"`
	Refused   int            `json:"refused"`
	Dropped   map[string]int `json:"dropped"` // by reason
	Failed    int            `json:"failed"`
}

type benchReport struct {
	Spec benchSpec `json:"spec"`
	// Bound is the physical bound on chains completed within the deadline:
	// limit × deadline ÷ (steps × exec); 0 without a deadline.
	Bound int        `json:"physical_bound"`
	Rows  []benchRow `json:"rows"`
}

func runBenchChains(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench chains", flag.ContinueOnError)
	var b benchSpec
	var targets, clients, scenarios string
	var asJSON bool
	fs.IntVar(&b.Chains, "chains", 1000, "chains started at once")
	fs.IntVar(&b.Steps, "steps", 2, "invocations per chain")
	fs.IntVar(&b.Limit, "limit", 50, "the emulated platform's concurrency limit")
	fs.DurationVar(&b.Exec, "exec", 40*time.Millisecond, "execution time of each invocation")
	fs.DurationVar(&b.ColdStart, "cold-start", 0, "cold start of each new instance (0: a warm platform)")
	fs.DurationVar(&b.Deadline, "deadline", time.Second, "each chain's budget, sent as X-Sequoia-Deadline-Ms and enforced by the client (0: none)")
	fs.IntVar(&b.Retries, "retries", 0, "client retries of a 429 while the deadline allows (fasthttp and nethttp)")
	fs.StringVar(&targets, "targets", "direct,haproxy,sequoia", "comma-separated targets to run")
	fs.StringVar(&clients, "clients", "fasthttp", "comma-separated clients: "+strings.Join(benchClients, ", "))
	fs.StringVar(&scenarios, "scenarios", "burst", "comma-separated scenarios: "+strings.Join(benchScenarios, ", "))
	fs.IntVar(&b.Untold, "untold", 0, "chains in the untold scenario's first burst (0: -chains)")
	fs.IntVar(&b.Bursts, "bursts", 3, "measured bursts of the bursts scenario")
	fs.StringVar(&b.HAProxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	fs.StringVar(&b.K6, "k6", "", "the k6 binary (empty: $K6, the one loadtest/k6/run.sh caches, or k6 on the PATH)")
	fs.StringVar(&b.Headroom, "headroom", "", "sequoia's SEQUOIA_ADMISSION_HEADROOM (empty: its default)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, chainsUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench chains", "unexpected argument %q", fs.Arg(0))
	}
	if b.Chains <= 0 || b.Steps <= 0 || b.Limit <= 0 || b.Exec < 0 || b.ColdStart < 0 || b.Deadline < 0 || b.Retries < 0 ||
		b.Untold < 0 || b.Bursts <= 0 {
		return cli.Usagef("bench chains", "-chains, -steps, -limit and -bursts must be positive; -exec, -cold-start, -deadline, -retries and -untold not negative")
	}
	if b.Untold == 0 {
		b.Untold = b.Chains
	}
	// sequoia's settings are checked before any target runs.
	if _, err := config.LoadFrom(b.sequoiaEnv()); err != nil {
		return cli.Usagef("bench chains", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	var err error
	if b.Targets, err = pick("target", targets, []string{"direct", "haproxy", "sequoia"}); err != nil {
		return err
	}
	if b.Clients, err = pick("client", clients, benchClients); err != nil {
		return err
	}
	if b.Scenarios, err = pick("scenario", scenarios, benchScenarios); err != nil {
		return err
	}
	rep, err := benchChains(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printBench(out, rep) })
}

// pick splits a comma-separated flag value, each of which must be known.
func pick(what, list string, known []string) ([]string, error) {
	var out []string
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if !slices.Contains(known, v) {
			return nil, cli.Usagef("bench chains", "unknown %s %q (want %s)", what, v, strings.Join(known, ", "))
		}
		out = append(out, v)
	}
	return out, nil
}

func benchChains(ctx context.Context, b benchSpec, progress io.Writer) (benchReport, error) {
	rep := benchReport{Spec: b}
	if b.Deadline > 0 && b.Exec > 0 {
		rep.Bound = int(int64(b.Limit) * int64(b.Deadline) / (int64(b.Steps) * int64(b.Exec)))
	}
	emu, emuAddr, err := serve.StartLocalPlatform("bench", emulator.Config{
		Limit: b.Limit, ExecTime: b.Exec, ColdStart: b.ColdStart, KeepAlive: time.Hour,
	})
	if err != nil {
		return rep, err
	}
	defer emu.Shutdown() //nolint:errcheck
	var k6bin string
	var k6err error
	if slices.Contains(b.Clients, "k6") {
		k6bin, k6err = loadtest.FindK6(b.K6)
	}

	for _, scenario := range b.Scenarios {
		for _, client := range b.Clients {
			for _, target := range b.Targets {
				rows, err := benchScenario(ctx, b, scenario, client, target, k6bin, k6err, emu, emuAddr, progress)
				rep.Rows = append(rep.Rows, rows...)
				if err != nil {
					return rep, err
				}
				if ctx.Err() != nil {
					return rep, ctx.Err()
				}
			}
		}
	}
	return rep, nil
}

// benchScenario runs one scenario against one target with one client, on
// a target started for it alone: the warm-up, the scenario's first bursts,
// and its measured bursts, a row each.
func benchScenario(ctx context.Context, b benchSpec, scenario, client, target, k6bin string, k6err error,
	emu *emulator.Emulator, emuAddr string, progress io.Writer) ([]benchRow, error) {
	label := fmt.Sprintf("%-7s %-8s %-8s", scenario, client, target)
	skip := func(why string) []benchRow {
		fmt.Fprintf(progress, "%s skipped: %s\n", label, why)
		return []benchRow{{Summary: loadtest.Summary{Target: target, Chains: b.Chains}, Scenario: scenario, Client: client, Burst: 1, Skipped: why}}
	}
	if client == "k6" && k6err != nil {
		return skip(k6err.Error()), nil
	}
	tgt, err := startTarget(ctx, target, b, emuAddr, discardLog)
	if err != nil {
		var miss *missingError
		if !errors.As(err, &miss) {
			return nil, err
		}
		return skip(err.Error()), nil
	}
	defer tgt.stop()
	// Warm up. First open a connection per chain, with a burst of
	// one-step 1ms invocations of other functions, so that the measured
	// burst of the fasthttp client pays no TCP handshakes (callers of a
	// platform keep connections). Then as many chains as the platform
	// runs at once, so that instances are warm and sequoia has observed
	// the functions (twice, so that its estimate is not one round's).
	fast := loadtest.NewClient(max(b.Chains, b.Untold), 2*time.Minute)
	defer fast.CloseIdleConnections()
	loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: tgt.url, Client: fast, Chains: b.Chains, Steps: 1, ExecMs: 1, Namespace: "warmup"})
	for range 2 {
		loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: tgt.url, Client: fast, Chains: b.Limit, Steps: b.Steps})
	}
	burst := func(spec loadtest.ChainSpec, desc string) (loadtest.Summary, error) {
		spec.BaseURL, spec.Client = tgt.url, fast
		spec.NetHTTP = client == "nethttp"
		if client == "k6" {
			fmt.Fprintf(progress, "%s %s: k6 running %d chains\n", label, desc, spec.Chains)
			return loadtest.RunChainsK6(ctx, k6bin, spec)
		}
		bar := progressbar.NewOptions(spec.Chains, progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription(label+" "+desc), progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
		spec.Progress = func() { _ = bar.Add(1) }
		res := loadtest.RunChains(ctx, spec)
		_ = bar.Finish()
		return res.Summary(), nil
	}
	untold := false
	if scenario == "untold" {
		// Chains that say neither their length nor a deadline, as most
		// clients' do not, all run to their end; the measured burst
		// follows at once, while sequoia still waits for their callers to
		// go quiet before it ends them.
		s, err := burst(loadtest.ChainSpec{Chains: b.Untold, Steps: b.Steps, Untold: true}, "untold")
		if err != nil {
			return nil, err
		}
		untold = true
		fmt.Fprintf(progress, "%s untold: %d of %d completed\n", label, s.Completed, b.Untold)
		time.Sleep(2 * b.Exec)
	}
	n := 1
	if scenario == "bursts" {
		n = b.Bursts
	}
	var rows []benchRow
	for k := 1; k <= n; k++ {
		row := benchRow{Scenario: scenario, Client: client, Burst: k, AdmissionHeadroom: tgt.headroomFloor}
		if b.ColdStart == 0 {
			emu.Reset() // a warm platform: instances do not matter, peak does
		}
		before, counted := emu.Stats(), tgt.counts()
		row.EstimateBefore, row.HeadroomBefore = tgt.estimate(), tgt.headroom()
		if untold {
			// The untold chains whose callers have not been quiet long
			// enough yet: still active, as the measured burst starts.
			row.UntoldActive = tgt.active()
		}
		s, err := burst(loadtest.ChainSpec{Chains: b.Chains, Steps: b.Steps, Deadline: b.Deadline,
			EnforceDeadline: b.Deadline > 0, Retries: b.Retries, Exec: b.Exec}, fmt.Sprintf("burst %d", k))
		if err != nil {
			return rows, err
		}
		time.Sleep(2 * b.Exec) // let abandoned invocations finish at the platform
		after := emu.Stats()
		row.EstimateAfter, row.HeadroomAfter = tgt.estimate(), tgt.headroom()
		if untold {
			// The untold chains end (completed) once their callers have
			// been quiet a while: wait for them, to count them apart.
			row.ActiveAfter = tgt.waitQuiet(10 * time.Second)
		}
		row.Sequoia = tgt.counts().minus(counted)
		if row.Sequoia != nil {
			row.Sequoia.Completed -= row.UntoldActive
		}
		untold = false
		row.Summary = s
		row.Target = target
		row.PlatformInvocations = after.Invocations - before.Invocations
		row.PlatformThrottles = after.Throttles - before.Throttles
		if b.ColdStart == 0 {
			row.PeakConcurrency = after.PeakConcurrency
		}
		row.Wasted = max(0, row.PlatformInvocations-int64(row.Completed*b.Steps))
		fmt.Fprintf(progress, "%s burst %d: %d completed, %d refused, %d dropped in %v\n",
			label, k, row.Completed, row.Refused, row.Dropped, row.Makespan.Round(time.Millisecond))
		if row.Dropped > 0 {
			fmt.Fprintf(progress, "%s dropped: %d answered 504 by the target, %d past the client's deadline or otherwise\n",
				label, row.DroppedBy504, row.Dropped-row.DroppedBy504)
		}
		if row.UntoldActive > 0 || row.ActiveAfter > 0 {
			fmt.Fprintf(progress, "%s untold chains still active when the burst started: %d; chains active after it: %d\n",
				label, row.UntoldActive, row.ActiveAfter)
		}
		if row.EstimateBefore > 0 {
			fmt.Fprintf(progress, "%s step estimate: %v before the burst, %v after; headroom %.3f before, %.3f after\n", label,
				row.EstimateBefore.Round(time.Microsecond), row.EstimateAfter.Round(time.Microsecond), row.HeadroomBefore, row.HeadroomAfter)
		}
		rows = append(rows, row)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

// missingError says a target's program is not installed.
type missingError struct{ what string }

func (e *missingError) Error() string { return e.what }

// runningTarget is a started target: the base URL to burst at, how to
// stop it, and, for sequoia, its server, whose state the rows report.
type runningTarget struct {
	url           string
	stop          func()
	srv           *serve.Server
	headroomFloor *float64
}

// startTarget starts what a target needs.
func startTarget(ctx context.Context, target string, b benchSpec, emuAddr string, log *slog.Logger) (*runningTarget, error) {
	switch target {
	case "haproxy":
		url, stop, err := startHAProxy(ctx, b, emuAddr)
		if err != nil {
			return nil, err
		}
		return &runningTarget{url: url, stop: stop}, nil
	case "sequoia":
		srv, stop, err := serve.StartLocal(ctx, emuAddr, log, b.sequoiaEnv()...)
		if err != nil {
			return nil, err
		}
		h := srv.Config().Scheduling.AdmissionHeadroom
		return &runningTarget{url: "http://" + srv.DataAddr(), stop: stop, srv: srv, headroomFloor: &h}, nil
	}
	return &runningTarget{url: "http://" + emuAddr, stop: func() {}}, nil
}

// estimate is sequoia's estimate of one invocation's slot time (0 for
// other targets).
func (t *runningTarget) estimate() time.Duration {
	if t.srv == nil {
		return 0
	}
	return t.srv.Scheduler().Estimate("")
}

// headroom is sequoia's admission headroom now (0 for other targets).
func (t *runningTarget) headroom() float64 {
	if t.srv == nil {
		return 0
	}
	return t.srv.Scheduler().Headroom()
}

// active is sequoia's count of active chains (0 for other targets).
func (t *runningTarget) active() int {
	if t.srv == nil {
		return 0
	}
	return t.srv.Scheduler().ActiveChains()
}

// waitQuiet waits, up to limit, until sequoia has no active chain, and
// returns how many it still has.
func (t *runningTarget) waitQuiet(limit time.Duration) int {
	if t.srv == nil {
		return 0
	}
	for end := time.Now().Add(limit); t.srv.Scheduler().ActiveChains() > 0 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	return t.srv.Scheduler().ActiveChains()
}

// counts reads sequoia's chain counters (nil for other targets).
func (t *runningTarget) counts() *sequoiaCounts {
	if t.srv == nil {
		return nil
	}
	mfs, err := t.srv.Metrics().Registry().Gather()
	if err != nil {
		return nil
	}
	c := &sequoiaCounts{Dropped: map[string]int{}}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := int(m.GetCounter().GetValue())
			switch mf.GetName() {
			case "sequoia_chains_completed_total":
				c.Completed += v
			case "sequoia_chains_refused_total":
				c.Refused += v
			case "sequoia_chains_failed_total":
				c.Failed += v
			case "sequoia_chains_dropped_total":
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" {
						c.Dropped[l.GetValue()] += v
					}
				}
			}
		}
	}
	return c
}

// minus is c's increase over before.
func (c *sequoiaCounts) minus(before *sequoiaCounts) *sequoiaCounts {
	if c == nil || before == nil {
		return nil
	}
	d := &sequoiaCounts{Completed: c.Completed - before.Completed, Refused: c.Refused - before.Refused,
		Failed: c.Failed - before.Failed, Dropped: map[string]int{}}
	for r, v := range c.Dropped {
		d.Dropped[r] = v - before.Dropped[r]
	}
	return d
}

// sequoiaEnv is the sequoia target's configuration, over startLocal's.
func (b benchSpec) sequoiaEnv() []string {
	env := []string{
		fmt.Sprintf("SEQUOIA_MAX_CONCURRENCY=%d", b.Limit),
		fmt.Sprintf("SEQUOIA_QUEUE_CAPACITY=%d", b.Chains*b.Steps),
		"SEQUOIA_LOG_LEVEL=error",
	}
	if b.Headroom != "" {
		env = append(env, "SEQUOIA_ADMISSION_HEADROOM="+b.Headroom)
	}
	return env
}

// startHAProxy runs HAProxy in front of the emulator with maxconn set to the
// platform limit: its FIFO queue is what users put in front of a platform
// today.
func startHAProxy(ctx context.Context, b benchSpec, emuAddr string) (string, func(), error) {
	bin, err := exec.LookPath(b.HAProxy)
	if err != nil {
		return "", nil, &missingError{fmt.Sprintf("haproxy is missing (%s not found; on Debian: apt-get install haproxy)", b.HAProxy)}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	dir, err := os.MkdirTemp("", "sequoia-bench-haproxy")
	if err != nil {
		return "", nil, err
	}
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	conf := fmt.Sprintf(`global
    maxconn %d
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 5m
    timeout server 5m
    timeout queue 5m
frontend chains
    bind %s
    default_backend platform
backend platform
    server emulator %s maxconn %d
`, b.Chains*2+100, addr, emuAddr, b.Limit)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("bench: start haproxy: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			stop()
			return "", nil, fmt.Errorf("bench: haproxy did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr, stop, nil
}

func printBench(out io.Writer, rep benchReport) {
	s := rep.Spec
	fmt.Fprintf(out, "sequoia bench chains: %d chains of %d steps at once; platform limit %d, %v per invocation, %v cold start, deadline %v\n",
		s.Chains, s.Steps, s.Limit, s.Exec, s.ColdStart, s.Deadline)
	if rep.Bound > 0 {
		fmt.Fprintf(out, "physical bound: %d chains within the deadline (limit × deadline ÷ (steps × exec))\n", rep.Bound)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "scenario\tclient\ttarget\tburst\tcompleted\trefused at entry\tdropped mid-chain\tfailed\tclient 429s\tp50 latency\tp99 latency\tqueueing mean\tqueueing p99\tmakespan\tplatform invocations\twasted\t\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	var skipped []benchRow
	for _, r := range rep.Rows {
		if r.Skipped != "" {
			skipped = append(skipped, r)
			continue
		}
		qm, qp := "-", "-"
		if r.Queue != nil {
			qm, qp = ms(r.Queue.All.Mean), ms(r.Queue.All.P99)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
			r.Scenario, r.Client, r.Target, r.Burst, r.Completed, r.Refused, r.Dropped, r.Failed, r.Throttles,
			ms(r.P50), ms(r.P99), qm, qp, ms(r.Makespan), r.PlatformInvocations, r.Wasted)
	}
	tw.Flush()
	fmt.Fprintln(out, "(queueing: each request's time not being run, as its client saw it: latency less the execution time if it ran, else all of it)")

	// What sequoia counted, beside what its clients saw.
	first := true
	for _, r := range rep.Rows {
		if r.Sequoia == nil || r.Skipped != "" {
			continue
		}
		if first {
			fmt.Fprintln(out, "\nsequoia's own counters over each burst:")
			tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprint(tw, "scenario\tclient\tburst\tcompleted\trefused\tdropped: deadline\tlate\tclient gone\tfailed\theadroom before\tafter\t\n")
			first = false
		}
		c := r.Sequoia
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t\n", r.Scenario, r.Client, r.Burst,
			c.Completed, c.Refused, c.Dropped["deadline"], c.Dropped["late"], c.Dropped["client_gone"], c.Failed,
			r.HeadroomBefore, r.HeadroomAfter)
	}
	if !first {
		tw.Flush()
	}

	// The Sequoia paper's headline measure: queueing time against
	// HAProxy's FIFO queue.
	type key struct {
		scenario, client string
		burst            int
	}
	hap := map[key]benchRow{}
	for _, r := range rep.Rows {
		if r.Target == "haproxy" && r.Skipped == "" && r.Queue != nil {
			hap[key{r.Scenario, r.Client, r.Burst}] = r
		}
	}
	first = true
	for _, r := range rep.Rows {
		h, ok := hap[key{r.Scenario, r.Client, r.Burst}]
		if r.Target != "sequoia" || r.Skipped != "" || r.Queue == nil || !ok {
			continue
		}
		if first {
			fmt.Fprintln(out, "\nqueueing time, sequoia against HAProxy's FIFO queue (mean per request; the paper: up to 6.4× lower):")
			first = false
		}
		fmt.Fprintf(out, "  %s %s burst %d: all requests %s against %s (%s); answered ones %s against %s (%s)\n",
			r.Scenario, r.Client, r.Burst, ms(r.Queue.All.Mean), ms(h.Queue.All.Mean), ratio(h.Queue.All.Mean, r.Queue.All.Mean),
			ms(r.Queue.Answered.Mean), ms(h.Queue.Answered.Mean), ratio(h.Queue.Answered.Mean, r.Queue.Answered.Mean))
	}
	for _, r := range skipped {
		fmt.Fprintf(out, "%s %s %s: skipped: %s\n", r.Scenario, r.Client, r.Target, r.Skipped)
	}
}

// ratio says how many times lower b is than a.
func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "sequoia's is 0"
	}
	return fmt.Sprintf("%.1f× lower", float64(a)/float64(b))
}
