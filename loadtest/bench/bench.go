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

chains: bursts function chains at an emulated platform three ways
(directly, through HAProxy with maxconn = the platform limit, through
sequoia) and prints completed, refused at entry, dropped mid-chain, latency
and makespan.
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
deadline passes. Prints completed, refused at entry, dropped mid-chain,
failed, client 429s, p50/p99 chain latency, makespan, platform invocations
and wasted invocations, with the physical bound
(limit × deadline ÷ (steps × exec)); --json prints the report as JSON.
Progress goes to standard error.
`

// Run runs `sequoia bench NAME [flags]`: the report goes to out, progress
// to standard error.
func Run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("bench", "want a benchmark name: chains, coldstart, dags, events or cluster")
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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(out, benchUsage)
		return nil
	}
	return cli.Usagef("bench", "unknown benchmark %q: want chains, coldstart, dags, events or cluster", args[0])
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
}

// benchRow is one target's figures.
type benchRow struct {
	loadtest.Summary
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
	// AdmissionHeadroom is the headroom sequoia's admission ran with.
	AdmissionHeadroom *float64 `json:"admission_headroom,omitempty"`
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
	var targets string
	var asJSON bool
	fs.IntVar(&b.Chains, "chains", 1000, "chains started at once")
	fs.IntVar(&b.Steps, "steps", 2, "invocations per chain")
	fs.IntVar(&b.Limit, "limit", 50, "the emulated platform's concurrency limit")
	fs.DurationVar(&b.Exec, "exec", 40*time.Millisecond, "execution time of each invocation")
	fs.DurationVar(&b.ColdStart, "cold-start", 0, "cold start of each new instance (0: a warm platform)")
	fs.DurationVar(&b.Deadline, "deadline", time.Second, "each chain's budget, sent as X-Sequoia-Deadline-Ms and enforced by the client (0: none)")
	fs.IntVar(&b.Retries, "retries", 0, "client retries of a 429 while the deadline allows")
	fs.StringVar(&targets, "targets", "direct,haproxy,sequoia", "comma-separated targets to run")
	fs.StringVar(&b.HAProxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	fs.StringVar(&b.Headroom, "headroom", "", "sequoia's SEQUOIA_ADMISSION_HEADROOM (empty: its default)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, chainsUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench chains", "unexpected argument %q", fs.Arg(0))
	}
	if b.Chains <= 0 || b.Steps <= 0 || b.Limit <= 0 || b.Exec < 0 || b.ColdStart < 0 || b.Deadline < 0 || b.Retries < 0 {
		return cli.Usagef("bench chains", "-chains, -steps and -limit must be positive; -exec, -cold-start, -deadline and -retries not negative")
	}
	// sequoia's settings are checked before any target runs.
	if _, err := config.LoadFrom(b.sequoiaEnv()); err != nil {
		return cli.Usagef("bench chains", "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	for _, t := range strings.Split(targets, ",") {
		switch t = strings.TrimSpace(t); t {
		case "direct", "haproxy", "sequoia":
			b.Targets = append(b.Targets, t)
		default:
			return cli.Usagef("bench chains", "unknown target %q (want direct, haproxy or sequoia)", t)
		}
	}
	rep, err := benchChains(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printBench(out, rep) })
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

	for _, target := range b.Targets {
		row := benchRow{Summary: loadtest.Summary{Target: target, Chains: b.Chains}}
		url, stop, estimate, err := startTarget(ctx, target, b, emuAddr, discardLog, &row)
		if err != nil {
			var miss *missingError
			if !errors.As(err, &miss) {
				return rep, err
			}
			row.Skipped = err.Error()
			fmt.Fprintf(progress, "%-8s skipped: %v\n", target, err)
			rep.Rows = append(rep.Rows, row)
			continue
		}
		// Warm up. First open a connection per chain, with a burst of
		// one-step 1ms invocations of other functions, so that the
		// measured burst pays no TCP handshakes (callers of a platform
		// keep connections). Then as many chains as the platform runs at
		// once, so that instances are warm and sequoia has observed the
		// functions (twice, so that its estimate is not one round's).
		client := loadtest.NewClient(b.Chains, 2*time.Minute)
		loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Chains, Steps: 1, ExecMs: 1, Namespace: "warmup"})
		for range 2 {
			loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Limit, Steps: b.Steps})
		}
		if b.ColdStart == 0 {
			emu.Reset() // a warm platform: instances do not matter, peak does
		}
		before := emu.Stats()
		row.EstimateBefore = estimate()
		bar := progressbar.NewOptions(b.Chains, progressbar.OptionSetWriter(progress),
			progressbar.OptionSetDescription(fmt.Sprintf("%-8s", target)), progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
		res := loadtest.RunChains(ctx, loadtest.ChainSpec{
			BaseURL: url, Client: client, Chains: b.Chains, Steps: b.Steps, Deadline: b.Deadline,
			EnforceDeadline: b.Deadline > 0, Retries: b.Retries,
			Progress: func() { _ = bar.Add(1) },
		})
		_ = bar.Finish()
		time.Sleep(2 * b.Exec) // let abandoned invocations finish at the platform
		after := emu.Stats()
		row.EstimateAfter = estimate()
		client.CloseIdleConnections()
		stop()
		row.Summary = res.Summary()
		row.Target = target
		row.PlatformInvocations = after.Invocations - before.Invocations
		row.PlatformThrottles = after.Throttles - before.Throttles
		if b.ColdStart == 0 {
			row.PeakConcurrency = after.PeakConcurrency
		}
		row.Wasted = max(0, row.PlatformInvocations-int64(row.Completed*b.Steps))
		fmt.Fprintf(progress, "%-8s done: %d completed, %d refused, %d dropped in %v\n",
			target, row.Completed, row.Refused, row.Dropped, res.Makespan.Round(time.Millisecond))
		if row.Dropped > 0 {
			var by504 int
			for _, c := range res.Chains {
				if c.Outcome == loadtest.Dropped && c.Status == 504 {
					by504++
				}
			}
			fmt.Fprintf(progress, "%-8s dropped: %d answered 504 by the target, %d past the client's deadline or otherwise\n",
				target, by504, row.Dropped-by504)
		}
		if row.EstimateBefore > 0 {
			fmt.Fprintf(progress, "%-8s step estimate: %v before the burst, %v after\n",
				target, row.EstimateBefore.Round(time.Microsecond), row.EstimateAfter.Round(time.Microsecond))
		}
		rep.Rows = append(rep.Rows, row)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	return rep, nil
}

// missingError says a target's program is not installed.
type missingError struct{ what string }

func (e *missingError) Error() string { return e.what }

// startTarget starts what a target needs and returns the base URL to burst
// at, a func that stops it and one that reads sequoia's step estimate.
func startTarget(ctx context.Context, target string, b benchSpec, emuAddr string, log *slog.Logger, row *benchRow) (string, func(), func() time.Duration, error) {
	none := func() time.Duration { return 0 }
	switch target {
	case "haproxy":
		url, stop, err := startHAProxy(ctx, b, emuAddr)
		return url, stop, none, err
	case "sequoia":
		srv, stop, err := serve.StartLocal(ctx, emuAddr, log, b.sequoiaEnv()...)
		if err != nil {
			return "", nil, nil, err
		}
		h := srv.Config().Scheduling.AdmissionHeadroom
		row.AdmissionHeadroom = &h
		return "http://" + srv.DataAddr(), stop,
			func() time.Duration { return srv.Scheduler().Estimate("") }, nil
	}
	return "http://" + emuAddr, func() {}, none, nil
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
	fmt.Fprint(tw, "target\tcompleted\trefused at entry\tdropped mid-chain\tfailed\tclient 429s\tp50 latency\tp99 latency\tmakespan\tplatform invocations\twasted\t\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	var skipped []benchRow
	for _, r := range rep.Rows {
		if r.Skipped != "" {
			skipped = append(skipped, r)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t\n",
			r.Target, r.Completed, r.Refused, r.Dropped, r.Failed, r.Throttles, ms(r.P50), ms(r.P99), ms(r.Makespan),
			r.PlatformInvocations, r.Wasted)
	}
	tw.Flush()
	for _, r := range skipped {
		fmt.Fprintf(out, "%s: skipped: %s\n", r.Target, r.Skipped)
	}
}
