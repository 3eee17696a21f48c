package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/serve"
)

// demoSpec is the embedded default workload.
type demoSpec struct {
	chains, steps, limit int
	exec, coldStart      time.Duration
	spread               time.Duration
}

const demoUsage = `usage: sequoia demo [flags]

Starts an emulated platform and sequoia on free loopback ports, starts
-chains chains of -steps steps within -spread, first directly at the
platform and then through sequoia, and prints the comparison: chains
completed, refused at entry, dropped mid-chain, client 429s, latency and
makespan. Finishes within a minute at the defaults.
`

// Demo runs `sequoia demo`: an emulated platform and sequoia on loopback,
// a burst of chains at each, and the comparison printed to out.
func Demo(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var d demoSpec
	fs.IntVar(&d.chains, "chains", 300, "two-step chains in the burst")
	fs.IntVar(&d.steps, "steps", 2, "invocations per chain")
	fs.IntVar(&d.limit, "limit", 20, "the emulated platform's concurrency limit")
	fs.DurationVar(&d.exec, "exec", 50*time.Millisecond, "execution time of each invocation")
	fs.DurationVar(&d.coldStart, "cold-start", 100*time.Millisecond, "cold start of each new instance")
	fs.DurationVar(&d.spread, "spread", 500*time.Millisecond, "window over which the chains start")
	if help, err := cli.Parse(fs, demoUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("demo", "unexpected argument %q", fs.Arg(0))
	}
	if d.chains <= 0 || d.steps <= 0 || d.limit <= 0 || d.exec < 0 || d.coldStart < 0 || d.spread < 0 {
		return cli.Usagef("demo", "-chains, -steps and -limit must be positive, -exec, -cold-start and -spread not negative")
	}
	rows, err := demo(ctx, d, out)
	if err != nil {
		return err
	}
	printChainTable(out, rows)
	return nil
}

// demo runs the burst directly at an emulator and then through sequoia.
func demo(ctx context.Context, d demoSpec, out io.Writer) ([]loadtest.Summary, error) {
	emu, emuAddr, err := serve.StartLocalPlatform("demo", emulator.Config{
		Limit: d.limit, ExecTime: d.exec, ColdStart: d.coldStart,
	})
	if err != nil {
		return nil, err
	}
	defer emu.Shutdown()

	srv, stop, err := serve.StartLocal(ctx, emuAddr, discardLog,
		fmt.Sprintf("SEQUOIA_MAX_CONCURRENCY=%d", d.limit),
		fmt.Sprintf("SEQUOIA_QUEUE_CAPACITY=%d", d.chains*d.steps))
	if err != nil {
		return nil, err
	}
	defer stop()

	fmt.Fprintf(out, "sequoia demo: %d chains of %d steps starting within %v; platform limit %d, %v per invocation, %v cold start\n\n",
		d.chains, d.steps, d.spread, d.limit, d.exec, d.coldStart)
	var rows []loadtest.Summary
	for _, t := range []struct{ name, url string }{
		{"direct", "http://" + emuAddr},
		{"sequoia", "http://" + srv.DataAddr()},
	} {
		emu.Reset()
		fmt.Fprintf(out, "  %-8s running...", t.name)
		res := loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: t.url, Chains: d.chains, Steps: d.steps, Spread: d.spread})
		s := res.Summary()
		s.Target = t.name
		st := emu.Stats()
		fmt.Fprintf(out, " done in %v (platform: peak concurrency %d, %d throttled)\n",
			res.Makespan.Round(time.Millisecond), st.PeakConcurrency, st.Throttles)
		rows = append(rows, s)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	fmt.Fprintln(out)
	return rows, nil
}

// printChainTable prints chain-burst summaries side by side.
func printChainTable(out io.Writer, rows []loadtest.Summary) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "target\tchains\tcompleted\trefused at entry\tdropped mid-chain\tclient 429s\tp50 latency\tp99 latency\tmakespan\t\n")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n",
			r.Target, r.Chains, r.Completed, r.Refused, r.Dropped, r.Throttles, ms(r.P50), ms(r.P99), ms(r.Makespan))
	}
	tw.Flush()
}
