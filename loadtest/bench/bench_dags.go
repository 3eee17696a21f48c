package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/serve"
)

// dagBenchSpec is the DAG benchmark's workload (issue 8).
type dagBenchSpec struct {
	Exec     time.Duration `json:"exec_ns"`        // every function's execution time
	Steps    int           `json:"sequence_steps"` // the sequence's length
	Width    int           `json:"map_width"`      // the map's items
	Rounds   int           `json:"rounds"`         // measured runs of each, after 5 warm-up runs
	Limit    int           `json:"limit"`          // sequoia's and the platform's concurrency for the overhead runs
	Burst    int           `json:"burst_runs"`     // runs of the 3-node DAG started at once
	BurstCap int           `json:"burst_limit"`    // concurrency during the burst
	Deadline time.Duration `json:"burst_deadline_ns"`
}

// overheadRow is one DAG's orchestration overhead: a run's wall time at
// its client minus the function time on its critical path.
type overheadRow struct {
	DAG      string        `json:"dag"`
	Critical time.Duration `json:"critical_path_ns"`
	P50      time.Duration `json:"overhead_p50_ns"`
	P90      time.Duration `json:"overhead_p90_ns"`
	Min      time.Duration `json:"overhead_min_ns"`
	PerStep  time.Duration `json:"overhead_p50_per_step_ns"`
}

// burstRow is one burst of runs.
type burstRow struct {
	Deadline            time.Duration `json:"deadline_ns"`
	Runs                int           `json:"runs"`
	Admitted            int           `json:"admitted"`
	Completed           int           `json:"completed"`
	Refused             int           `json:"refused"`
	Dropped             int           `json:"dropped_after_admission"`
	PlatformInvocations int64         `json:"platform_invocations"`
	PlatformThrottles   int64         `json:"platform_throttles"`
	PeakConcurrency     int64         `json:"platform_peak_concurrency"`
	Wall                time.Duration `json:"wall_ns"`
}

type dagBenchReport struct {
	Spec     dagBenchSpec  `json:"spec"`
	Overhead []overheadRow `json:"overhead"`
	ASL      []aslRow      `json:"asl"`
	Bursts   []burstRow    `json:"bursts"`
}

const dagsUsage = `usage: sequoia bench dags [flags]

Against an emulated platform: the orchestration overhead of DAG runs (wall
time less the critical path's function time, client HTTP included) for a
-steps sequence and a -width map, over -rounds runs each; then -burst
concurrent runs of a 3-node DAG (a then b ‖ c) through -burst-limit slots,
without a deadline and with -deadline; and a few state machines (Amazon
States Language) against the same calls made directly. --json prints the report as JSON.
`

// aslRow is one state machine against the same function calls made
// directly at the platform by the client, measured alternately in the
// same run: the difference, per state the machine enters, is what running
// it as a state machine through sequoia costs.
type aslRow struct {
	Machine   string        `json:"machine"`
	States    int           `json:"states_entered"`
	Direct    string        `json:"direct_equivalent"`
	RunP50    time.Duration `json:"run_p50_ns"`
	DirectP50 time.Duration `json:"direct_p50_ns"`
	Overhead  time.Duration `json:"overhead_p50_ns"`
	PerState  time.Duration `json:"overhead_per_state_ns"`
}

func runBenchDags(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench dags", flag.ContinueOnError)
	b := defaultDagBench()
	var asJSON bool
	fs.DurationVar(&b.Exec, "exec", b.Exec, "execution time of every function")
	fs.IntVar(&b.Steps, "steps", b.Steps, "length of the sequence")
	fs.IntVar(&b.Width, "width", b.Width, "items of the map")
	fs.IntVar(&b.Rounds, "rounds", b.Rounds, "measured runs of each DAG")
	fs.IntVar(&b.Limit, "limit", b.Limit, "concurrency for the overhead runs (sequoia's and the platform's)")
	fs.IntVar(&b.Burst, "burst", b.Burst, "runs of the 3-node DAG started at once")
	fs.IntVar(&b.BurstCap, "burst-limit", b.BurstCap, "concurrency during the burst")
	fs.DurationVar(&b.Deadline, "deadline", b.Deadline, "the burst's second round's deadline (the first has none)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, dagsUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench dags", "unexpected argument %q", fs.Arg(0))
	}
	if b.Steps <= 0 || b.Width <= 0 || b.Rounds <= 0 || b.Limit < b.Width || b.Burst <= 0 || b.BurstCap <= 0 || b.Exec < 0 || b.Deadline < 0 {
		return cli.Usagef("bench dags", "sizes must be positive, -limit at least -width")
	}
	rep, err := benchDags(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printDagReport(out, rep) })
}

func defaultDagBench() dagBenchSpec {
	return dagBenchSpec{Exec: 20 * time.Millisecond, Steps: 10, Width: 80, Rounds: 30, Limit: 100,
		Burst: 500, BurstCap: 50, Deadline: 400 * time.Millisecond}
}

func printDagReport(out io.Writer, rep dagBenchReport) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dag\tcritical path ms\toverhead p50 ms\tp90 ms\tmin ms\tp50 per step ms\t")
	for _, r := range rep.Overhead {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r.DAG, ms(r.Critical), ms(r.P50), ms(r.P90), ms(r.Min), ms(r.PerStep))
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "state machine\tstates\tdirect equivalent\trun p50 ms\tdirect p50 ms\toverhead ms\tper state ms\t")
	for _, r := range rep.ASL {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Machine, r.States, r.Direct, ms(r.RunP50), ms(r.DirectP50), ms(r.Overhead), ms(r.PerState))
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "burst deadline ms\truns\tadmitted\tcompleted\trefused\tdropped after admission\tplatform calls\tthrottles\tpeak\twall ms\t")
	for _, r := range rep.Bursts {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", ms(r.Deadline), r.Runs, r.Admitted, r.Completed, r.Refused,
			r.Dropped, r.PlatformInvocations, r.PlatformThrottles, r.PeakConcurrency, ms(r.Wall))
	}
	tw.Flush()
}

// benchThreeNodeDAG is the burst's DAG: a, then b and c in parallel.
const benchThreeNodeDAG = `{"start":"a","nodes":{
	"a":{"kind":"task","function":"a","next":"p"},
	"p":{"kind":"parallel","branches":["b","c"]},
	"b":{"kind":"task","function":"b","input":"/input"},
	"c":{"kind":"task","function":"c","input":"/input"}}}`

// benchDags runs sequoia in-process in front of an emulator whose functions
// take exactly b.Exec, so that a run's critical-path function time is
// known, and measures.
func benchDags(ctx context.Context, b dagBenchSpec, progress io.Writer) (dagBenchReport, error) {
	rep := dagBenchReport{Spec: b}
	emu, emuAddr, err := serve.StartLocalPlatform("bench dags", emulator.Config{Limit: b.Limit, ExecTime: b.Exec, KeepAlive: time.Hour})
	if err != nil {
		return rep, err
	}
	defer emu.Shutdown()
	// The DAGs are registered from a directory (SEQUOIA_DAG_DIR): writes
	// through the API need a token.
	var seq strings.Builder
	seq.WriteString(`{"start":"s0","nodes":{`)
	for i := range b.Steps {
		if i > 0 {
			seq.WriteString(",")
		}
		next := ""
		if i < b.Steps-1 {
			next = fmt.Sprintf(`,"next":"s%d"`, i+1)
		}
		fmt.Fprintf(&seq, `"s%d":{"kind":"task","function":"step%d"%s}`, i, i, next)
	}
	seq.WriteString(`}}`)
	seqName, mapName := fmt.Sprintf("sequence%d", b.Steps), fmt.Sprintf("map%d", b.Width)
	dagDir, err := os.MkdirTemp("", "sequoia-bench-dags-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dagDir)
	for name, src := range map[string]string{
		seqName: seq.String(),
		mapName: `{"start":"m","nodes":{"m":{"kind":"map","items":"/items","do":"w"},"w":{"kind":"task","function":"item"}}}`,
		"three": benchThreeNodeDAG,
	} {
		if err := os.WriteFile(filepath.Join(dagDir, name+".json"), []byte(src), 0o644); err != nil {
			return rep, err
		}
	}
	for _, m := range aslMachines(b) {
		if err := os.WriteFile(filepath.Join(dagDir, m.name+".json"), []byte(m.src), 0o644); err != nil {
			return rep, err
		}
	}
	srv, stop, err := serve.StartLocal(ctx, emuAddr, discardLog,
		"SEQUOIA_BACKEND=http", "SEQUOIA_HTTP_ROUTE=path",
		fmt.Sprintf("SEQUOIA_MAX_CONCURRENCY=%d", b.Limit), fmt.Sprintf("SEQUOIA_QUEUE_CAPACITY=%d", 3*b.Burst),
		"SEQUOIA_LOG_LEVEL=error", "SEQUOIA_DAG_DIR="+dagDir,
		fmt.Sprintf("SEQUOIA_DAG_MAX_MAP_WIDTH=%d", max(b.Width, 1000)),
		fmt.Sprintf("SEQUOIA_DAG_MAX_NODES=%d", max(b.Steps, 256)))
	if err != nil {
		return rep, err
	}
	defer stop()

	addr := srv.DataAddr()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: b.Burst + 16, ReadTimeout: 5 * time.Minute}
	call := func(method, path, body string) (int, []byte, time.Duration, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + path)
		req.Header.SetMethod(method)
		req.SetBodyString(body)
		start := time.Now()
		err := hc.Do(req, resp)
		return resp.StatusCode(), append([]byte(nil), resp.Body()...), time.Since(start), err
	}
	items := `{"input":{"items":[` + strings.TrimSuffix(strings.Repeat(`{"x":1},`, b.Width), ",") + `]}}`

	measure := func(name, body string, critical time.Duration, steps int) error {
		fmt.Fprintf(progress, "%-12s %d runs...\n", name, b.Rounds)
		var over []time.Duration
		for i := range b.Rounds + 5 {
			code, out, d, err := call("POST", "/sequoia/v1/dags/"+name+"/runs", body)
			if err != nil || code != 200 {
				return fmt.Errorf("%s: %d %s %v", name, code, out, err)
			}
			if i >= 5 { // the first runs warm instances and estimates
				over = append(over, d-critical)
			}
		}
		slices.Sort(over)
		p50 := over[len(over)/2]
		rep.Overhead = append(rep.Overhead, overheadRow{DAG: name, Critical: critical, P50: p50,
			P90: over[len(over)*9/10], Min: over[0], PerStep: p50 / time.Duration(steps)})
		return nil
	}
	if err := measure(seqName, `{"input":{}}`, time.Duration(b.Steps)*b.Exec, b.Steps); err != nil {
		return rep, err
	}
	if err := measure(mapName, items, b.Exec, 1); err != nil {
		return rep, err
	}
	asl, err := measureASL(b, call, emuAddr, progress)
	if err != nil {
		return rep, err
	}
	rep.ASL = asl

	srv.SetBudget(b.BurstCap)
	emu.SetLimit(b.BurstCap)
	for _, deadline := range []time.Duration{0, b.Deadline} {
		fmt.Fprintf(progress, "burst        %d runs, deadline %v...\n", b.Burst, deadline)
		emu.Reset()
		row := burstRow{Deadline: deadline, Runs: b.Burst}
		var mu sync.Mutex
		var wg sync.WaitGroup
		body := fmt.Sprintf(`{"input":{},"deadline_ms":%d}`, deadline.Milliseconds())
		start := time.Now()
		for range b.Burst {
			wg.Go(func() {
				code, out, _, err := call("POST", "/sequoia/v1/dags/three/runs", body)
				ok := false
				if err == nil && code == 200 {
					var arr []json.RawMessage
					ok = json.Unmarshal(out, &arr) == nil && len(arr) == 2
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && code == 429:
					row.Refused++
				case ok:
					row.Admitted++
					row.Completed++
				default:
					row.Admitted++
					row.Dropped++
				}
			})
		}
		wg.Wait()
		row.Wall = time.Since(start)
		st := emu.Stats()
		row.PlatformInvocations, row.PlatformThrottles, row.PeakConcurrency = st.Invocations, st.Throttles, st.PeakConcurrency
		rep.Bursts = append(rep.Bursts, row)
	}
	return rep, nil
}

// aslMachines are the state machines bench dags measures: one per state
// type, each with the function calls a client would make itself instead.
func aslMachines(b dagBenchSpec) []struct {
	name, src, input, direct string
	states, calls            int
	parallel                 bool
} {
	var seq strings.Builder
	seq.WriteString(`{"StartAt":"T0","States":{`)
	for i := range b.Steps {
		if i > 0 {
			seq.WriteString(",")
		}
		end := fmt.Sprintf(`"Next":"T%d"`, i+1)
		if i == b.Steps-1 {
			end = `"End":true`
		}
		fmt.Fprintf(&seq, `"T%d":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:step%d",%s}`, i, i, end)
	}
	seq.WriteString(`}}`)
	items := `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"x":1},`, b.Width), ",") + `]}`
	return []struct {
		name, src, input, direct string
		states, calls            int
		parallel                 bool
	}{
		{name: fmt.Sprintf("asl-task%d", b.Steps), src: seq.String(), input: `{}`, states: b.Steps, calls: b.Steps,
			direct: fmt.Sprintf("%d calls in sequence", b.Steps)},
		{name: fmt.Sprintf("asl-map%d", b.Width), input: items, states: 1 + b.Width, calls: b.Width, parallel: true,
			direct: fmt.Sprintf("%d calls at once", b.Width),
			src: `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","ItemSelector":{"v.$":"$$.Map.Item.Value"},
				"ItemProcessor":{"StartAt":"W","States":{"W":{"Type":"Task","Resource":"item","End":true}}},"End":true}}}`},
		{name: "asl-parallel2", input: `{"k":1}`, states: 3, calls: 2, parallel: true, direct: "2 calls at once",
			src: `{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[
				{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"a","End":true}}},
				{"StartAt":"B","States":{"B":{"Type":"Task","Resource":"b","End":true}}}],"End":true}}}`},
		{name: "asl-flow", input: `{"n":3}`, states: 6, calls: 1, direct: "1 call",
			src: `{"StartAt":"Prep","States":{
				"Prep":{"Type":"Pass","Parameters":{"n.$":"$.n","msg.$":"States.Format('n is {}', $.n)"},"Next":"Pick"},
				"Pick":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":2,"Next":"Work"}],"Default":"Done"},
				"Work":{"Type":"Task","Resource":"work","ResultSelector":{"f.$":"$.function"},"ResultPath":"$.out","Next":"Hold"},
				"Hold":{"Type":"Wait","Seconds":0,"Next":"Shape"},
				"Shape":{"Type":"Pass","OutputPath":"$.out","Next":"Done"},
				"Done":{"Type":"Succeed"}}}`},
	}
}

// measureASL runs each state machine (registered from the DAG directory), alternating with
// its direct equivalent at the platform, b.Rounds times after 5 warm-up
// rounds.
func measureASL(b dagBenchSpec, call func(method, path, body string) (int, []byte, time.Duration, error), emuAddr string,
	progress io.Writer) ([]aslRow, error) {
	direct := &fasthttp.HostClient{Addr: emuAddr, MaxConns: b.Width + 16, ReadTimeout: time.Minute}
	one := func(fn string) error {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + emuAddr + "/" + fn)
		req.Header.SetMethod("POST")
		req.SetBodyString(`{"x":1}`)
		if err := direct.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			return fmt.Errorf("direct call of %s: %d %v", fn, resp.StatusCode(), err)
		}
		return nil
	}
	var rows []aslRow
	for _, m := range aslMachines(b) { // registered from SEQUOIA_DAG_DIR
		fmt.Fprintf(progress, "%-12s %d runs and direct equivalents...\n", m.name, b.Rounds)
		var runs, directs []time.Duration
		for i := range b.Rounds + 5 {
			code, out, d, err := call("POST", "/sequoia/v1/dags/"+m.name+"/runs", `{"input":`+m.input+`}`)
			if err != nil || code != 200 {
				return nil, fmt.Errorf("%s: %d %s %v", m.name, code, out, err)
			}
			start := time.Now()
			if m.parallel {
				errs := make(chan error, m.calls)
				for j := range m.calls {
					go func() { errs <- one(fmt.Sprintf("d%d", j)) }()
				}
				for range m.calls {
					if err := <-errs; err != nil {
						return nil, err
					}
				}
			} else {
				for j := range m.calls {
					if err := one(fmt.Sprintf("d%d", j)); err != nil {
						return nil, err
					}
				}
			}
			if i >= 5 {
				runs, directs = append(runs, d), append(directs, time.Since(start))
			}
		}
		slices.Sort(runs)
		slices.Sort(directs)
		r := aslRow{Machine: m.name, States: m.states, Direct: m.direct, RunP50: runs[len(runs)/2], DirectP50: directs[len(directs)/2]}
		r.Overhead = r.RunP50 - r.DirectP50
		r.PerState = r.Overhead / time.Duration(m.states)
		rows = append(rows, r)
	}
	return rows, nil
}
