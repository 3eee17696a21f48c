package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/schollz/progressbar/v3"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/serve"
	"github.com/sequoia-qos/sequoia/warmpool"
)

const coldstartUsage = `usage: sequoia bench coldstart [flags]

Against an emulated platform with a cold start per new instance: a burst of
chains after an idle period longer than the platform's keep-alive, through
sequoia without and with the warm pool; then a steady low-rate run with
occasional bursts through sequoia with the warm pool, to measure what the
warm-ups cost. SEQUOIA_PREWARM_* variables set in the environment (other
than _MIN, which -prewarm and -steady-prewarm set) apply to the runs with
the pool.

What warm-ups cost is reported three ways, from the emulator's counts and
timings (an invocation occupies a platform slot for its cold start, if
any, plus its execution; a warm-up for its cold start plus its hold, the
mean of the holds the pool asked for, which it adapts per function):

  by count        warm-ups / (warm-ups + real invocations)
  by slot-time    warm-up slot-time / all occupied slot-time
  of capacity     warm-up slot-time / (limit x duration)

The goal (warm-ups <= 5% of invocation slots) is judged by slot-time: the
platform's concurrency budget is spent in slot-time, a warm-up holding an
instance briefly costs less of it than an invocation, and one that
creates an instance costs the whole cold start. Count ignores how long
each holds its slot; capacity divides by slots nobody used, so it shrinks
as the limit grows whatever the warm-ups cost.

Keeping N instances warm takes N warm-ups in flight together once per
keep-alive (the platform hands out the most recent idle instance, so a
trickle of real traffic refreshes one instance and the rest age). The
steady row shows the keep-alive warm-ups per function per keep-alive
period beside N: a pool at that floor spends nothing more on keep-alive.
`

// coldSpec is the cold-start benchmark's workload.
type coldSpec struct {
	Chains    int           `json:"burst_chains"`
	Steps     int           `json:"steps"`
	Limit     int           `json:"platform_limit"`
	Exec      time.Duration `json:"exec_ns"`
	ColdStart time.Duration `json:"cold_start_ns"`
	KeepAlive time.Duration `json:"keepalive_ns"`
	Idle      time.Duration `json:"idle_ns"`
	Prewarm   int           `json:"prewarm_min"`
	Steady    time.Duration `json:"steady_ns"`
	// SteadyPrewarm is SEQUOIA_PREWARM_MIN in the steady run.
	SteadyPrewarm int `json:"steady_prewarm_min"`
	// SteadyKeepAlive is the platform's keep-alive in the steady run:
	// the cost of keeping N instances warm is N warm-ups per function
	// per keep-alive, so it sets the warm-ups' share.
	SteadyKeepAlive time.Duration `json:"steady_keepalive_ns"`
	Rate            float64       `json:"steady_chains_per_second"`
	BurstEvery      time.Duration `json:"steady_burst_every_ns"`
	// SteadyBaseline runs the steady run without the pool first, so that
	// the report can say what the pool adds to occupied slot-time.
	SteadyBaseline bool `json:"steady_baseline"`
}

// coldRow is one burst run's figures.
type coldRow struct {
	loadtest.Summary
	WarmPool bool `json:"warm_pool"`
	// ColdStarts are the cold starts real invocations paid, as the
	// platform counted them; Detected is what sequoia's warm pool
	// detected (with the pool only).
	ColdStarts int64 `json:"cold_starts"`
	Detected   int64 `json:"cold_starts_detected"`
	// Warmups were sent during the idle period and the burst.
	Warmups          int64 `json:"warmups"`
	WarmupColdStarts int64 `json:"warmup_cold_starts"`
	Invocations      int64 `json:"platform_invocations"`
	// Holds is what the pool holds (with the pool only).
	Holds *benchHolds `json:"warmup_holds,omitempty"`
}

// benchHolds is what the warm pool's hold settled on: per function (ms),
// the rounds of warm-ups checked, and the mean hold asked per warm-up.
type benchHolds struct {
	ByFunction map[string]int64     `json:"by_function_ms"`
	Rounds     warmpool.RoundCounts `json:"rounds"`
	Mean       time.Duration        `json:"mean_ns"`
}

// steadyRow is the steady run's figures.
type steadyRow struct {
	loadtest.Summary
	Invocations      int64 `json:"platform_invocations"`
	ColdStarts       int64 `json:"cold_starts"`
	Detected         int64 `json:"cold_starts_detected"`
	Warmups          int64 `json:"warmups"`
	WarmupColdStarts int64 `json:"warmup_cold_starts"`
	// ByReason splits Warmups as sequoia counted them (keepalive, burst,
	// chain).
	ByReason map[string]int64 `json:"warmups_by_reason"`
	// WarmupShare is warm-ups ÷ (warm-ups + real invocations), by count.
	// SlotTimeShare is warm-up slot-time ÷ all occupied slot-time: the
	// goal's measure. CapacityShare is warm-up slot-time ÷ (limit ×
	// duration). Slot-time is from the emulator's timings: cold start
	// (if paid) plus execution, or plus hold for a warm-up.
	WarmupShare   float64 `json:"warmup_share_of_invocations"`
	SlotTimeShare float64 `json:"warmup_share_of_slot_time"`
	CapacityShare float64 `json:"warmup_share_of_capacity"`
	// WarmupSlotTime and RealSlotTime are the slot-times compared.
	// WarmupCreateTime is the part of WarmupSlotTime spent creating
	// instances (warm-ups' cold starts); the rest is the holds.
	WarmupSlotTime   time.Duration `json:"warmup_slot_time_ns"`
	RealSlotTime     time.Duration `json:"real_slot_time_ns"`
	WarmupCreateTime time.Duration `json:"warmup_create_slot_time_ns"`
	// KeepAlivePerPeriod is keep-alive warm-ups per function per
	// keep-alive period; keeping N warm needs about N - 1 (real traffic
	// refreshes the instance it reuses).
	KeepAlivePerPeriod float64 `json:"keepalive_warmups_per_function_per_keepalive"`
	// Holds is what the pool's warm-up hold settled on (with the pool);
	// WarmupSlotTime counts each warm-up at Holds.Mean.
	Holds *benchHolds `json:"warmup_holds,omitempty"`
}

type coldReport struct {
	Spec   coldSpec   `json:"spec"`
	Rows   []coldRow  `json:"burst"`
	Steady *steadyRow `json:"steady,omitempty"`
	// SteadyBaseline is the same steady run without the pool (with
	// -steady-baseline), and NetSlotTime what the pool added to occupied
	// slot-time against it (negative: it saved more cold starts than its
	// warm-ups cost), as a share of the run with the pool. Information
	// beside the goal, which is judged by the warm-ups' own slot-time.
	SteadyBaseline *steadyRow `json:"steady_baseline,omitempty"`
	NetSlotTime    float64    `json:"steady_net_slot_time_share,omitempty"`
	// Goals: cold starts with ≤ 10% of without, p99 ≤ 0.5× without,
	// warm-ups ≤ 5% of invocation slots over the steady run, judged by
	// slot-time (steadyRow.SlotTimeShare).
	ColdRatio float64 `json:"cold_start_ratio"`
	P99Ratio  float64 `json:"p99_ratio"`
}

func runBenchColdstart(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench coldstart", flag.ContinueOnError)
	var b coldSpec
	var asJSON bool
	fs.IntVar(&b.Chains, "chains", 20, "chains in each burst")
	fs.IntVar(&b.Steps, "steps", 2, "invocations per chain (each step its own function)")
	fs.IntVar(&b.Limit, "limit", 50, "the emulated platform's concurrency limit (and SEQUOIA_MAX_CONCURRENCY)")
	fs.DurationVar(&b.Exec, "exec", 50*time.Millisecond, "execution time of each invocation")
	fs.DurationVar(&b.ColdStart, "cold-start", 500*time.Millisecond, "cold start of each new instance")
	fs.DurationVar(&b.KeepAlive, "keepalive", 2*time.Second, "the platform's keep-alive (and SEQUOIA_PLATFORM_KEEPALIVE)")
	fs.DurationVar(&b.Idle, "idle", 0, "idle time before the burst (0: twice the keep-alive plus one second)")
	fs.IntVar(&b.Prewarm, "prewarm", 0, "SEQUOIA_PREWARM_MIN with the warm pool (0: the burst's chains)")
	fs.DurationVar(&b.Steady, "steady", 10*time.Minute, "length of the steady run (0 skips it); the goal is judged over at least 10 minutes, to amortise the first fill")
	fs.IntVar(&b.SteadyPrewarm, "steady-prewarm", -1, "SEQUOIA_PREWARM_MIN in the steady run (-1: -prewarm)")
	fs.DurationVar(&b.SteadyKeepAlive, "steady-keepalive", time.Minute, "the platform's keep-alive in the steady run (0: -keepalive); the goal is judged at a real platform's, at least a minute (OpenWhisk keeps 10)")
	fs.Float64Var(&b.Rate, "rate", 5, "chains per second in the steady run")
	fs.DurationVar(&b.BurstEvery, "burst-every", 30*time.Second, "a burst of -chains chains this often in the steady run")
	fs.BoolVar(&b.SteadyBaseline, "steady-baseline", true, "run the steady run without the pool too, first, and report what the pool adds to occupied slot-time (the net measure)")
	short := fs.Bool("short", false, "a quick run for CI, seconds long: 4 chains, limit 10, 10ms calls, 100ms cold starts, 400ms keep-alive, a 2s steady run at 4 chains/s with a burst every second (explicit flags still apply); its steady figures are not the goal's")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, coldstartUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench coldstart", "unexpected argument %q", fs.Arg(0))
	}
	if *short {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		for name, v := range map[string]string{
			"chains": "4", "limit": "10", "exec": "10ms", "cold-start": "100ms", "keepalive": "400ms",
			"steady": "2s", "steady-keepalive": "400ms", "rate": "4", "burst-every": "1s",
		} {
			if !set[name] {
				_ = fs.Set(name, v)
			}
		}
	}
	if b.Idle == 0 {
		b.Idle = 2*b.KeepAlive + time.Second
	}
	if b.Prewarm == 0 {
		b.Prewarm = b.Chains
	}
	if b.SteadyPrewarm < 0 {
		b.SteadyPrewarm = b.Prewarm
	}
	if b.SteadyKeepAlive == 0 {
		b.SteadyKeepAlive = b.KeepAlive
	}
	if b.Chains <= 0 || b.Steps <= 0 || b.Limit <= 0 || b.Exec < 0 || b.ColdStart < 0 || b.KeepAlive <= 0 ||
		b.Idle < 0 || b.Prewarm < 0 || b.Prewarm > b.Limit || b.SteadyPrewarm > b.Limit || b.Steady < 0 || b.Rate <= 0 || b.BurstEvery <= 0 {
		return cli.Usagef("bench coldstart", "-chains, -steps, -limit, -keepalive, -rate and -burst-every must be positive; -prewarm and -steady-prewarm at most -limit; the rest not negative")
	}
	rep, err := benchColdstart(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printColdstart(out, rep) })
}

func benchColdstart(ctx context.Context, b coldSpec, progress io.Writer) (coldReport, error) {
	rep := coldReport{Spec: b}
	emu, emuAddr, err := serve.StartLocalPlatform("bench", emulator.Config{
		Limit: b.Limit, ExecTime: b.Exec, ColdStart: b.ColdStart, KeepAlive: b.KeepAlive,
	})
	if err != nil {
		return rep, err
	}
	defer emu.Shutdown() //nolint:errcheck

	for _, pool := range []bool{false, true} {
		row, err := coldBurst(ctx, b, pool, emu, emuAddr, discardLog, progress)
		if err != nil {
			return rep, err
		}
		rep.Rows = append(rep.Rows, row)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	if without, with := rep.Rows[0], rep.Rows[1]; without.ColdStarts > 0 && without.P99 > 0 {
		rep.ColdRatio = float64(with.ColdStarts) / float64(without.ColdStarts)
		rep.P99Ratio = float64(with.P99) / float64(without.P99)
	}
	if b.Steady > 0 {
		sb := b
		sb.KeepAlive = b.SteadyKeepAlive
		sb.Prewarm = b.SteadyPrewarm
		emu.SetKeepAlive(sb.KeepAlive)
		if b.SteadyBaseline {
			base, err := coldSteady(ctx, sb, false, emu, emuAddr, discardLog, progress)
			if err != nil {
				return rep, err
			}
			rep.SteadyBaseline = &base
		}
		st, err := coldSteady(ctx, sb, true, emu, emuAddr, discardLog, progress)
		if err != nil {
			return rep, err
		}
		rep.Steady = &st
		if base := rep.SteadyBaseline; base != nil {
			if with := st.WarmupSlotTime + st.RealSlotTime; with > 0 {
				rep.NetSlotTime = float64(with-base.RealSlotTime) / float64(with)
			}
		}
	}
	return rep, nil
}

// startColdTarget starts sequoia in front of the emulator, with or without
// the warm pool.
func startColdTarget(ctx context.Context, b coldSpec, pool bool, emuAddr string, log *slog.Logger) (*serve.Server, func(), error) {
	env := []string{
		fmt.Sprintf("SEQUOIA_MAX_CONCURRENCY=%d", b.Limit),
		fmt.Sprintf("SEQUOIA_QUEUE_CAPACITY=%d", 100*b.Chains*b.Steps),
		"SEQUOIA_LOG_LEVEL=error",
		"SEQUOIA_PLATFORM_KEEPALIVE=" + b.KeepAlive.String(),
	}
	if pool {
		env = append(env, "SEQUOIA_PREWARM=true", fmt.Sprintf("SEQUOIA_PREWARM_MIN=%d", b.Prewarm))
		// The operator's other warm-pool settings (hold, burst, chains...)
		// apply to the run with the pool.
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "SEQUOIA_PREWARM_") && !strings.HasPrefix(kv, "SEQUOIA_PREWARM_MIN=") {
				env = append(env, kv)
			}
		}
	}
	return serve.StartLocal(ctx, emuAddr, log, env...)
}

// counterSums sums the counter name in srv's registry by the value of its
// label by (all under "" when by is ""); nil when the registry fails.
func counterSums(srv *serve.Server, name, by string) map[string]float64 {
	mfs, err := srv.Metrics().Registry().Gather()
	if err != nil {
		return nil
	}
	sums := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sums[label(m, by)] += m.GetCounter().GetValue()
			}
		}
	}
	return sums
}

// warmupsByReason reads sequoia_warmups_total from srv's registry, by
// reason.
func warmupsByReason(srv *serve.Server) map[string]int64 {
	sums := counterSums(srv, "sequoia_warmups_total", "reason")
	if sums == nil {
		return nil
	}
	out := make(map[string]int64, len(sums))
	for reason, n := range sums {
		out[reason] = int64(n)
	}
	return out
}

// holdsOf reads what srv's warm pool's hold settled on; nil without the
// pool. The mean is sequoia_warmup_hold_seconds_total over
// sequoia_warmups_total.
func holdsOf(srv *serve.Server) *benchHolds {
	if srv.WarmPool() == nil {
		return nil
	}
	h := &benchHolds{ByFunction: map[string]int64{}}
	for _, f := range srv.WarmPool().Status(serve.StatusListLimit).List {
		h.ByFunction[f.Function] = f.HoldMs
		h.Rounds.Verified += f.Rounds.Verified
		h.Rounds.Unverified += f.Rounds.Unverified
	}
	h.Mean = srv.Config().WarmPool.PrewarmHold
	held := counterSums(srv, "sequoia_warmup_hold_seconds_total", "")[""]
	n := counterSums(srv, "sequoia_warmups_total", "")[""]
	if n > 0 {
		h.Mean = time.Duration(held / n * float64(time.Second))
	}
	return h
}

// detected sums sequoia_cold_starts_total from srv's registry.
func detected(srv *serve.Server) int64 {
	return int64(counterSums(srv, "sequoia_cold_starts_total", "")[""])
}

func coldLabel(pool bool) string {
	if pool {
		return "with pool"
	}
	return "no pool"
}

// coldBurst primes the functions with one burst, waits out the idle period
// and measures a second burst.
func coldBurst(ctx context.Context, b coldSpec, pool bool, emu *emulator.Emulator, emuAddr string, log *slog.Logger, progress io.Writer) (coldRow, error) {
	emu.Reset()
	srv, stop, err := startColdTarget(ctx, b, pool, emuAddr, log)
	if err != nil {
		return coldRow{}, err
	}
	defer stop()
	url := "http://" + srv.DataAddr()
	client := loadtest.NewClient(b.Chains, 2*time.Minute)
	defer client.CloseIdleConnections()
	name := fmt.Sprintf("%-9s", coldLabel(pool))

	// The functions are seen (and their instances made) by a first burst.
	loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Chains, Steps: b.Steps})
	before := emu.Stats()
	detBefore := detected(srv)
	idle := progressbar.NewOptions(int(b.Idle/(100*time.Millisecond)), progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription(name+" idle"), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
	for range int(b.Idle / (100 * time.Millisecond)) {
		select {
		case <-ctx.Done():
			return coldRow{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		_ = idle.Add(1)
	}
	_ = idle.Finish()
	bar := progressbar.NewOptions(b.Chains, progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription(name+" burst"), progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
	res := loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Chains, Steps: b.Steps,
		Progress: func() { _ = bar.Add(1) }})
	_ = bar.Finish()
	after := emu.Stats()
	row := coldRow{
		Summary:          res.Summary(),
		WarmPool:         pool,
		ColdStarts:       after.ColdStarts - before.ColdStarts,
		Warmups:          after.Warmups - before.Warmups,
		WarmupColdStarts: after.WarmupColdStarts - before.WarmupColdStarts,
		Invocations:      after.Invocations - before.Invocations,
		Detected:         detected(srv) - detBefore,
		Holds:            holdsOf(srv),
	}
	row.Target = coldLabel(pool)
	fmt.Fprintf(progress, "%s burst: %d completed, %d cold starts, %d warm-ups, p99 %v\n",
		name, row.Completed, row.ColdStarts, row.Warmups, row.P99.Round(time.Millisecond))
	return row, nil
}

// coldSteady runs chains at a low steady rate with a burst every
// b.BurstEvery, through sequoia with the warm pool or without, and counts
// what the warm-ups cost.
func coldSteady(ctx context.Context, b coldSpec, pool bool, emu *emulator.Emulator, emuAddr string, log *slog.Logger, progress io.Writer) (steadyRow, error) {
	emu.Reset()
	srv, stop, err := startColdTarget(ctx, b, pool, emuAddr, log)
	if err != nil {
		return steadyRow{}, err
	}
	defer stop()
	url := "http://" + srv.DataAddr()
	client := loadtest.NewClient(b.Chains*2, 2*time.Minute)
	defer client.CloseIdleConnections()
	desc := "steady   "
	if !pool {
		desc = "no pool  "
	}
	bar := progressbar.NewOptions(int(b.Steady/time.Second), progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription(desc), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish(),
		progressbar.OptionShowCount())

	var mu sync.Mutex
	var all loadtest.Result
	var wg sync.WaitGroup
	run := func(n int) {
		defer wg.Done()
		r := loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: n, Steps: b.Steps})
		mu.Lock()
		all.Chains = append(all.Chains, r.Chains...)
		all.Throttle += r.Throttle
		mu.Unlock()
	}
	before := emu.Stats()
	start := time.Now()
	every := time.Duration(float64(time.Second) / b.Rate)
	tick := time.NewTicker(every)
	defer tick.Stop()
	nextBurst, nextSecond := start.Add(b.BurstEvery), start.Add(time.Second)
	for now := start; now.Sub(start) < b.Steady; {
		select {
		case <-ctx.Done():
			wg.Wait()
			return steadyRow{}, ctx.Err()
		case now = <-tick.C:
		}
		wg.Add(1)
		go run(1)
		if !now.Before(nextBurst) {
			nextBurst = nextBurst.Add(b.BurstEvery)
			wg.Add(1)
			go run(b.Chains)
		}
		for !now.Before(nextSecond) {
			nextSecond = nextSecond.Add(time.Second)
			_ = bar.Add(1)
		}
	}
	wg.Wait()
	_ = bar.Finish()
	elapsed := time.Since(start)
	after := emu.Stats()
	all.Makespan = elapsed
	row := steadyRow{
		Summary:          all.Summary(),
		Invocations:      after.Invocations - before.Invocations,
		ColdStarts:       after.ColdStarts - before.ColdStarts,
		Warmups:          after.Warmups - before.Warmups,
		WarmupColdStarts: after.WarmupColdStarts - before.WarmupColdStarts,
		Detected:         detected(srv),
		ByReason:         warmupsByReason(srv),
		Holds:            holdsOf(srv),
	}
	row.Target = "steady"
	if !pool {
		row.Target = "steady, no pool"
	}
	if n := row.Warmups + row.Invocations; n > 0 {
		row.WarmupShare = float64(row.Warmups) / float64(n)
	}
	hold := srv.Config().WarmPool.PrewarmHold
	if row.Holds != nil {
		hold = row.Holds.Mean // the pool adapts it
	}
	row.WarmupCreateTime = time.Duration(row.WarmupColdStarts) * b.ColdStart
	row.WarmupSlotTime = time.Duration(row.Warmups)*hold + row.WarmupCreateTime
	row.RealSlotTime = time.Duration(row.Invocations)*b.Exec + time.Duration(row.ColdStarts)*b.ColdStart
	if t := row.WarmupSlotTime + row.RealSlotTime; t > 0 {
		row.SlotTimeShare = float64(row.WarmupSlotTime) / float64(t)
	}
	row.CapacityShare = float64(row.WarmupSlotTime) / (float64(b.Limit) * float64(elapsed))
	row.KeepAlivePerPeriod = float64(row.ByReason["keepalive"]) / float64(b.Steps) / (float64(elapsed) / float64(b.KeepAlive))
	fmt.Fprintf(progress, "%s: %d chains, %d invocations, %d warm-ups %v, %d cold starts over %v\n",
		row.Target, len(all.Chains), row.Invocations, row.Warmups, row.ByReason, row.ColdStarts, elapsed.Round(time.Second))
	return row, nil
}

func printColdstart(out io.Writer, rep coldReport) {
	s := rep.Spec
	fmt.Fprintf(out, "sequoia bench coldstart: bursts of %d chains of %d steps after %v idle; platform limit %d, %v per invocation, %v cold start, %v keep-alive; warm pool keeps %d per function\n\n",
		s.Chains, s.Steps, s.Idle, s.Limit, s.Exec, s.ColdStart, s.KeepAlive, s.Prewarm)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "burst\tcompleted\tcold starts\tdetected\tp50 latency\tp99 latency\twarm-ups\twarm-up cold starts\t\n")
	for _, r := range rep.Rows {
		det := "-"
		if r.WarmPool {
			det = fmt.Sprint(r.Detected)
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%s\t%s\t%s\t%d\t%d\t\n", r.Target, r.Completed, r.Chains, r.ColdStarts, det,
			ms(r.P50), ms(r.P99), r.Warmups, r.WarmupColdStarts)
	}
	tw.Flush()
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, r := range rep.Rows {
		if h := r.Holds; h != nil {
			fmt.Fprintf(out, "burst with the pool: warm-up hold settled at %s; rounds verified %d, not verified %d\n",
				h.settled(), h.Rounds.Verified, h.Rounds.Unverified)
		}
	}
	fmt.Fprintf(out, "\ncold starts with the pool: %.1f%% of without (goal ≤ 10%%: %s)\n", 100*rep.ColdRatio, verdict(rep.ColdRatio <= 0.10))
	fmt.Fprintf(out, "p99 chain latency with the pool: %.2f× without (goal ≤ 0.5×: %s)\n", rep.P99Ratio, verdict(rep.P99Ratio <= 0.5))
	if st := rep.Steady; st != nil {
		fmt.Fprintf(out, "\nsteady run, %v: %.1f chains/s and a burst of %d every %v, %v keep-alive, with the pool keeping %d per function\n",
			s.Steady, s.Rate, s.Chains, s.BurstEvery, s.SteadyKeepAlive, s.SteadyPrewarm)
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "completed\tp99 latency\tinvocations\tcold starts\tdetected\twarm-ups\tkeepalive/burst/chain\twarm-up cold starts\t\n")
		fmt.Fprintf(tw, "%d/%d\t%s\t%d\t%d\t%d\t%d\t%d/%d/%d\t%d\t\n", st.Completed, st.Chains, ms(st.P99), st.Invocations,
			st.ColdStarts, st.Detected, st.Warmups, st.ByReason["keepalive"], st.ByReason["burst"], st.ByReason["chain"], st.WarmupColdStarts)
		tw.Flush()
		sec := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
		fmt.Fprintf(out, "warm-ups by count: %.1f%% of invocations\n", 100*st.WarmupShare)
		fmt.Fprintf(out, "warm-ups by slot-time: %s of %s occupied, %.1f%% (of capacity: %.2f%%); creating instances %s, holding them %s\n",
			sec(st.WarmupSlotTime), sec(st.WarmupSlotTime+st.RealSlotTime), 100*st.SlotTimeShare, 100*st.CapacityShare,
			sec(st.WarmupCreateTime), sec(st.WarmupSlotTime-st.WarmupCreateTime))
		if s.Steady >= 4*s.SteadyKeepAlive { // else creating the instances dominates
			fmt.Fprintf(out, "keep-alive warm-ups per function per keep-alive: %.1f (keeping %d warm needs about %d)\n",
				st.KeepAlivePerPeriod, s.SteadyPrewarm, max(s.SteadyPrewarm-1, 0))
		}
		if h := st.Holds; h != nil {
			fmt.Fprintf(out, "warm-up hold: %.2f ms on average, settled at %s; rounds verified %d, not verified %d\n",
				float64(h.Mean)/float64(time.Millisecond), h.settled(), h.Rounds.Verified, h.Rounds.Unverified)
		}
		share := verdict(st.SlotTimeShare <= 0.05)
		if s.Steady < 10*time.Minute || s.SteadyKeepAlive < time.Minute {
			share += " (not the goal's run: it needs -steady >= 10m and -steady-keepalive >= 1m)"
		}
		fmt.Fprintf(out, "warm-ups ≤ 5%% of invocation slots, by slot-time: %s\n", share)
		if base := rep.SteadyBaseline; base != nil {
			fmt.Fprintf(out, "without the pool: %d cold starts, %s occupied; the pool added %.1f%% of the occupied slot-time (p99 %s without, %s with)\n",
				base.ColdStarts, sec(base.RealSlotTime), 100*rep.NetSlotTime, ms(base.P99), ms(st.P99))
			goalRun := s.Steady >= 10*time.Minute && s.SteadyKeepAlive >= time.Minute
			judged := "not the goal's run (it needs -steady >= 10m and -steady-keepalive >= 1m)"
			if goalRun {
				judged = verdict(rep.NetSlotTime <= 0)
			}
			fmt.Fprintf(out, "net slot-time (what the pool adds less the cold starts it saves) <= 0: %s\n", judged)
		}
	}
}

// settled lists the hold per function, in name order.
func (h *benchHolds) settled() string {
	names := slices.Sorted(maps.Keys(h.ByFunction))
	parts := make([]string, len(names))
	for i, fn := range names {
		parts[i] = fmt.Sprintf("%d ms (%s)", h.ByFunction[fn], fn)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// label is the value of m's label name, "" if it has none.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
