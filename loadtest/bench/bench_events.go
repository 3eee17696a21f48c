package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/serve"
)

// eventsSpec is `sequoia bench events`'s workload (issue 15).
type eventsSpec struct {
	Events    int           `json:"events"`         // per scenario
	Clients   int           `json:"clients"`        // concurrent clients sending them
	Rate      int           `json:"accept_rate"`    // the paced acceptance run's events per second
	Kills     int           `json:"kills"`          // SIGKILLs during delivery
	Exec      time.Duration `json:"exec_ns"`        // the platform's time per event
	Limit     int           `json:"limit"`          // SEQUOIA_MAX_CONCURRENCY
	Lease     time.Duration `json:"lease_ns"`       // SEQUOIA_DURABLE_LEASE
	DAGTasks  int           `json:"dag_tasks"`      // the DAG run's sequence
	DAGExec   time.Duration `json:"dag_task_ns"`    // each of its tasks' time
	Scenarios []string      `json:"scenarios"`      // accept, kill, cluster, dag
	Binary    string        `json:"sequoia_binary"` // what the kill scenarios run
}

// acceptRow is one way of accepting Events, measured at the clients: as
// fast as Clients connections go (closed loop: the most it accepts), and
// paced at Rate events per second (open loop: latency counted from each
// event's scheduled send, so a stall delays the ones behind it too).
type acceptRow struct {
	Store      string        `json:"store"`
	Sync       string        `json:"state_sync,omitempty"`
	Durability string        `json:"durability"`
	Events     int           `json:"events"`
	Errors     int           `json:"errors"`
	PerSecond  float64       `json:"accepted_per_second"` // closed loop
	P50        time.Duration `json:"p50_ns"`              // closed loop
	P99        time.Duration `json:"p99_ns"`              // closed loop
	Max        time.Duration `json:"max_ns"`              // closed loop
	PacedRate  float64       `json:"paced_per_second"`    // achieved
	PacedP50   time.Duration `json:"paced_p50_ns"`
	PacedP99   time.Duration `json:"paced_p99_ns"`
	PacedMax   time.Duration `json:"paced_max_ns"`
	RatioRate  float64       `json:"rate_vs_memory"`
	RatioP99   float64       `json:"paced_p99_vs_memory"`
}

// killRow is one crash scenario: events accepted, sequoia SIGKILLed during
// delivery, and what the platform ran in the end.
type killRow struct {
	Mode      string  `json:"mode"`
	Events    int     `json:"events"`
	Accepted  int     `json:"accepted"`
	Kills     int     `json:"kills"`
	Distinct  int     `json:"distinct_delivered"`
	Lost      int     `json:"lost"`
	Repeats   int     `json:"repeats"`
	RepeatPct float64 `json:"repeats_pct"`
	// Redelivered is what sequoia counted in
	// sequoia_events_redelivered_total, summed over the processes: each
	// count is logged as it is made, and the bench reads the logs, which
	// a SIGKILL does not lose.
	Redelivered float64       `json:"redelivered_counted"`
	Wall        time.Duration `json:"wall_ns"`
	// SIGTERMExits are the last processes' exits on SIGTERM once all was
	// delivered: "0" when nothing was in flight.
	SIGTERMExits []string `json:"sigterm_exits"`
}

// dagKillRow is an async DAG run whose sequoia is SIGKILLed mid-run.
type dagKillRow struct {
	Tasks       int            `json:"tasks"`
	KilledAfter int            `json:"tasks_done_when_killed"`
	Status      string         `json:"status"`
	PerTask     map[string]int `json:"runs_per_task"`
	MaxRuns     int            `json:"max_runs_of_a_task"`
	Wall        time.Duration  `json:"wall_ns"`
}

type eventsReport struct {
	Spec   eventsSpec   `json:"spec"`
	Accept []acceptRow  `json:"accept,omitempty"`
	Kills  []killRow    `json:"kills,omitempty"`
	DAG    []dagKillRow `json:"dag,omitempty"`
}

const eventsUsage = `usage: sequoia bench events [flags]

What Lambda Events accepted into the durable store cost, and whether they
survive: accept (acceptance rate and latency against an in-memory queue in
the same run), kill (-events accepted, sequoia SIGKILLed -kills times during
delivery: distinct deliveries, repeats, and sequoia's own count of them),
cluster (the same with two replicas on an external NATS, the accepting one
killed) and dag (an async DAG run whose process is SIGKILLed mid-run).
--json prints the report as JSON.
`

func defaultEventsBench() eventsSpec {
	return eventsSpec{Events: 10000, Clients: 16, Rate: 5000, Kills: 3, Exec: 20 * time.Millisecond, Limit: 25, Lease: 2 * time.Second,
		DAGTasks: 6, DAGExec: 500 * time.Millisecond, Scenarios: []string{"accept", "kill", "cluster", "dag"}}
}

func runBenchEvents(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench events", flag.ContinueOnError)
	b := defaultEventsBench()
	var scenarios string
	var asJSON bool
	fs.IntVar(&b.Events, "events", b.Events, "events in each scenario")
	fs.IntVar(&b.Clients, "clients", b.Clients, "concurrent clients sending them")
	fs.IntVar(&b.Rate, "rate", b.Rate, "events per second of the paced acceptance run")
	fs.IntVar(&b.Kills, "kills", b.Kills, "SIGKILLs of sequoia during delivery")
	fs.DurationVar(&b.Exec, "exec", b.Exec, "the platform's time per event")
	fs.IntVar(&b.Limit, "limit", b.Limit, "SEQUOIA_MAX_CONCURRENCY")
	fs.DurationVar(&b.Lease, "lease", b.Lease, "SEQUOIA_DURABLE_LEASE (a killed replica's events wait this long)")
	fs.IntVar(&b.DAGTasks, "dag-tasks", b.DAGTasks, "tasks in the DAG run's sequence")
	fs.DurationVar(&b.DAGExec, "dag-exec", b.DAGExec, "each DAG task's time")
	fs.StringVar(&scenarios, "scenarios", strings.Join(b.Scenarios, ","), "accept, kill (embedded), cluster (external NATS, two replicas), dag")
	fs.StringVar(&b.Binary, "bin", "", "the sequoia binary the kill scenarios run (default: this one)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, eventsUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench events", "unexpected argument %q", fs.Arg(0))
	}
	b.Scenarios = strings.Split(scenarios, ",")
	if b.Events <= 0 || b.Clients <= 0 || b.Rate <= 0 || b.Kills < 0 || b.Limit <= 0 || b.Exec < 0 || b.Lease < time.Second || b.DAGTasks < 2 {
		return cli.Usagef("bench events", "-events, -clients and -limit must be positive, -lease at least 1s, -dag-tasks at least 2")
	}
	if b.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench events: %w", err)
		}
		b.Binary = exe
	}
	rep, err := benchEvents(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printEventsReport(out, rep) })
}

func benchEvents(ctx context.Context, b eventsSpec, progress io.Writer) (eventsReport, error) {
	rep := eventsReport{Spec: b}
	for _, sc := range b.Scenarios {
		fmt.Fprintf(progress, "bench events: %s\n", sc)
		var err error
		switch sc {
		case "accept":
			rep.Accept, err = benchAccept(ctx, b)
		case "kill":
			var row killRow
			row, err = benchKill(ctx, b, false, progress)
			rep.Kills = append(rep.Kills, row)
		case "cluster":
			var row killRow
			row, err = benchKill(ctx, b, true, progress)
			rep.Kills = append(rep.Kills, row)
		case "dag":
			var row dagKillRow
			row, err = benchDAGKill(ctx, b)
			rep.DAG = append(rep.DAG, row)
		default:
			err = fmt.Errorf("unknown scenario %q (accept, kill, cluster, dag)", sc)
		}
		if err != nil {
			return rep, fmt.Errorf("bench events %s: %w", sc, err)
		}
	}
	return rep, nil
}

// benchAccept sends b.Events Events from b.Clients clients to an
// in-process sequoia, in turn with the in-memory queue it had before the
// store (the baseline), with the store on the embedded default and with
// SEQUOIA_STATE_SYNC=always, and measures acceptance at the clients.
func benchAccept(ctx context.Context, b eventsSpec) ([]acceptRow, error) {
	for _, kv := range fakeAWS {
		k, v, _ := strings.Cut(kv, "=")
		if os.Getenv(k) == "" {
			os.Setenv(k, v) // the in-process sequoia signs for the recorder
		}
	}
	rec, err := startRecorder(time.Millisecond, 0)
	if err != nil {
		return nil, err
	}
	defer rec.close()
	var rows []acceptRow
	for _, v := range []struct {
		name, sync, durability string
		opts                   []serve.Option
	}{
		{"memory (no store)", "", "none: lost when the process exits", []serve.Option{serve.InMemoryEvents()}},
		{"JetStream, embedded", "2m", "written to the files before the 202; fsync every 2m", nil},
		{"JetStream, embedded", "always", "fsync before the 202", nil},
	} {
		srv, stop, err := serve.StartLocalWith(ctx, rec.addr(), discardLog, v.opts,
			"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+rec.addr(), "SEQUOIA_LOG_LEVEL=error",
			"SEQUOIA_MAX_CONCURRENCY="+strconv.Itoa(b.Limit), "SEQUOIA_MAX_EVENTS="+strconv.Itoa(2*b.Events),
			"SEQUOIA_STATE_SYNC="+cmpOr(v.sync, "2m"))
		if err != nil {
			return nil, err
		}
		row := acceptBurst(srv.DataAddr(), b, 0)
		paced := acceptBurst(srv.DataAddr(), b, b.Rate)
		stop()
		row.PacedRate, row.PacedP50, row.PacedP99, row.PacedMax = paced.PerSecond, paced.P50, paced.P99, paced.Max
		row.Errors += paced.Errors
		row.Store, row.Sync, row.Durability = v.name, v.sync, v.durability
		rows = append(rows, row)
	}
	for i := range rows {
		rows[i].RatioP99 = float64(rows[i].PacedP99) / float64(max(rows[0].PacedP99, 1))
		rows[i].RatioRate = rows[i].PerSecond / max(rows[0].PerSecond, 1)
	}
	return rows, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// acceptBurst sends b.Events Events to addr and measures each request's
// latency: from b.Clients connections as fast as they go (rate 0), or
// paced at rate per second, each latency counted from its scheduled send.
func acceptBurst(addr string, b eventsSpec, rate int) acceptRow {
	client := &fasthttp.HostClient{Addr: addr, MaxConns: 256, MaxConnWaitTimeout: time.Minute}
	lat := make([]time.Duration, b.Events)
	var errs atomic.Int64
	start := time.Now()
	tag := strconv.FormatInt(start.UnixNano(), 36)
	send := func(i int, from time.Time) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + "/2015-03-31/functions/f" + strconv.Itoa(i%8) + "/invocations")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.Set("X-Amz-Invocation-Type", "Event")
		req.Header.Set("Amz-Sdk-Invocation-Id", "bench-"+strconv.Itoa(i)+"-"+tag)
		req.SetBodyString(`{"id":` + strconv.Itoa(i) + `}`)
		err := client.Do(req, resp)
		lat[i] = time.Since(from)
		if err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
			errs.Add(1)
		}
	}
	var wg sync.WaitGroup
	if rate <= 0 {
		var next atomic.Int64
		for range b.Clients {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < b.Events; i = int(next.Add(1) - 1) {
					send(i, time.Now())
				}
			})
		}
	} else {
		// Every millisecond, the events due by then go to 256 senders;
		// each latency counts from its event's due time.
		type job struct {
			i  int
			at time.Time
		}
		jobs := make(chan job, b.Events)
		for range 256 {
			wg.Go(func() {
				for j := range jobs {
					send(j.i, j.at)
				}
			})
		}
		every := time.Second / time.Duration(rate)
		t := time.NewTicker(time.Millisecond)
		for i := 0; i < b.Events; {
			now := <-t.C
			for ; i < b.Events; i++ {
				at := start.Add(time.Duration(i) * every)
				if at.After(now) {
					break
				}
				jobs <- job{i, at}
			}
		}
		t.Stop()
		close(jobs)
	}
	wg.Wait()
	wall := time.Since(start)
	// The first tenth warms up (connections, the server's workers, the
	// store's first blocks) and is left out of the percentiles.
	lat = lat[len(lat)/10:]
	slices.Sort(lat)
	return acceptRow{Events: b.Events, Errors: int(errs.Load()), PerSecond: float64(b.Events) / wall.Seconds(),
		P50: lat[len(lat)/2], P99: lat[len(lat)*99/100], Max: lat[len(lat)-1]}
}

// sdkClient is the official Lambda client pointed at addr.
func sdkClient(addr string) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("CLIENT", "client-secret", ""),
		RetryMaxAttempts: 10,
	})
}

// sendEvents sends Events 0..n-1 to addr with the official SDK from
// clients goroutines (the SDK retries what sequoia refuses for a moment);
// it returns how many were answered 202.
func sendEvents(ctx context.Context, addr string, n, clients int) int {
	c := sdkClient(addr)
	var next, ok atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("f" + strconv.Itoa(i%8)),
					Payload: []byte(`{"id":` + strconv.Itoa(i) + `}`), InvocationType: types.InvocationTypeEvent})
				if err == nil && out.StatusCode == 202 {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// benchKill accepts b.Events Events at a sequoia (with cluster, the first
// of two replicas on an external NATS) and SIGKILLs that sequoia b.Kills
// times during delivery, restarting it each time, until the platform ran
// every event; it counts what was lost and what ran twice.
func benchKill(ctx context.Context, b eventsSpec, cluster bool, progress io.Writer) (killRow, error) {
	row := killRow{Mode: "embedded", Events: b.Events, Kills: b.Kills}
	rec, err := startRecorder(b.Exec, 0)
	if err != nil {
		return row, err
	}
	defer rec.close()
	tmp, err := os.MkdirTemp("", "sequoia-bench-events-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(tmp)
	base := []string{"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://" + rec.addr(),
		"SEQUOIA_MAX_CONCURRENCY=" + strconv.Itoa(b.Limit), "SEQUOIA_MAX_EVENTS=" + strconv.Itoa(2*b.Events),
		"SEQUOIA_DURABLE_LEASE=" + b.Lease.String(), "SEQUOIA_SHUTDOWN_TIMEOUT=5s"}
	if cluster {
		row.Mode = "cluster (external NATS, 2 replicas)"
		ns, url, err := startNATS(filepath.Join(tmp, "nats"))
		if err != nil {
			return row, err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		base = append(base, "SEQUOIA_NATS_URL="+url, "SEQUOIA_CLUSTER=bench")
	}
	replicaEnv := func(name string) (env []string, data string, err error) {
		data, err1 := freePort()
		admin, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return nil, "", err
		}
		return append(slices.Clone(base), "SEQUOIA_LISTEN="+data, "SEQUOIA_ADMIN_LISTEN="+admin,
			"SEQUOIA_STATE_DIR="+filepath.Join(tmp, name)), data, nil
	}
	envA, dataA, err := replicaEnv("a")
	if err != nil {
		return row, err
	}
	a, err := startSequoia(b.Binary, envA)
	if err != nil {
		return row, err
	}
	procs := []*sequoiaProc{a}
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	if cluster {
		envB, _, err := replicaEnv("b")
		if err != nil {
			return row, err
		}
		bp, err := startSequoia(b.Binary, envB)
		if err != nil {
			return row, err
		}
		procs = append(procs, bp)
	}
	start := time.Now()
	row.Accepted = sendEvents(ctx, dataA, b.Events, b.Clients)
	fmt.Fprintf(progress, "  %d accepted in %s\n", row.Accepted, time.Since(start).Round(time.Millisecond))
	last := int64(0)
	for k := 1; k <= b.Kills; k++ {
		// Kill at k/(kills+1) of the deliveries, and after some progress
		// since the last restart.
		target := min(int64(row.Accepted), max(int64(b.Events*k/(b.Kills+1)), last+int64(b.Events/(2*(b.Kills+1)))))
		for rec.distinct.Load() < target {
			if err := ctx.Err(); err != nil {
				return row, err
			}
			time.Sleep(2 * time.Millisecond)
		}
		procs[0].kill()
		row.Redelivered += float64(procs[0].redelivered.Load())
		last = rec.distinct.Load()
		fmt.Fprintf(progress, "  SIGKILL %d at %d delivered\n", k, last)
		a, err := startSequoia(b.Binary, envA)
		if err != nil {
			return row, err
		}
		procs[0] = a
	}
	deadline := time.Now().Add(b.Lease + 10*time.Minute)
	for int(rec.distinct.Load()) < row.Accepted && time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return row, err
		}
		time.Sleep(5 * time.Millisecond)
	}
	row.Wall = time.Since(start)
	time.Sleep(b.Lease + time.Second) // late repeats, if any, land too
	row.Distinct, row.Repeats = rec.count(b.Events)
	row.Lost = row.Accepted - row.Distinct
	row.RepeatPct = 100 * float64(row.Repeats) / float64(max(row.Distinct, 1))
	for _, p := range procs {
		exit := "0"
		if err := p.term(); err != nil {
			exit = err.Error()
		}
		row.SIGTERMExits = append(row.SIGTERMExits, exit)
		row.Redelivered += float64(p.redelivered.Load()) // complete: it exited
	}
	procs = nil
	return row, nil
}

// startNATS starts a NATS server with JetStream on a loopback port, its
// files in dir: the cluster mode's external NATS.
func startNATS(dir string) (*server.Server, string, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: dir, NoSigs: true, NoLog: true, MaxPayload: 8 << 20})
	if err != nil {
		return nil, "", err
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("NATS did not start")
	}
	return ns, "nats://" + ns.Addr().String(), nil
}

// benchDAGKill starts an async run of a sequence of b.DAGTasks slow tasks,
// SIGKILLs sequoia while the middle task runs, restarts it, and reads the
// run's end and how often each task ran.
func benchDAGKill(ctx context.Context, b eventsSpec) (dagKillRow, error) {
	row := dagKillRow{Tasks: b.DAGTasks, PerTask: map[string]int{}}
	rec, err := startRecorder(0, b.DAGExec)
	if err != nil {
		return row, err
	}
	defer rec.close()
	tmp, err := os.MkdirTemp("", "sequoia-bench-dag-")
	if err != nil {
		return row, err
	}
	defer os.RemoveAll(tmp)
	data, err1 := freePort()
	admin, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return row, err
	}
	// The DAG is registered from a directory (SEQUOIA_DAG_DIR): writes
	// through the API need a token.
	nodes := map[string]any{}
	for i := range b.DAGTasks {
		n := map[string]any{"kind": "task", "function": "slow" + strconv.Itoa(i)}
		if i+1 < b.DAGTasks {
			n["next"] = "t" + strconv.Itoa(i+1)
		}
		nodes["t"+strconv.Itoa(i)] = n
	}
	src, _ := json.Marshal(map[string]any{"start": "t0", "nodes": nodes})
	dagDir := filepath.Join(tmp, "dags")
	if err := os.Mkdir(dagDir, 0o755); err != nil {
		return row, err
	}
	if err := os.WriteFile(filepath.Join(dagDir, "seq.json"), src, 0o644); err != nil {
		return row, err
	}
	env := []string{"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://" + rec.addr(), "SEQUOIA_LISTEN=" + data,
		"SEQUOIA_ADMIN_LISTEN=" + admin, "SEQUOIA_STATE_DIR=" + filepath.Join(tmp, "state"), "SEQUOIA_DAG_DIR=" + dagDir}
	p, err := startSequoia(b.Binary, env)
	if err != nil {
		return row, err
	}
	defer func() { p.kill() }()
	base := "http://" + data + "/sequoia/v1"
	start := time.Now()
	code, body, err := httpDo("POST", base+"/dags/seq/runs", []byte(`{"input":{}}`), map[string]string{"Prefer": "respond-async"})
	if err != nil || code != 202 {
		return row, fmt.Errorf("start the run: %d %s %v", code, body, err)
	}
	var run struct{ ID string }
	_ = json.Unmarshal(body, &run)
	mid := "slow" + strconv.Itoa(b.DAGTasks/2)
	for rec.ranFunction(mid) == 0 {
		if time.Since(start) > 5*time.Minute {
			return row, errors.New("the run never reached its middle task")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(b.DAGExec / 2) // well inside the middle task
	row.KilledAfter = b.DAGTasks / 2
	p.kill()
	if p, err = startSequoia(b.Binary, env); err != nil {
		return row, err
	}
	for {
		code, body, err := httpDo("GET", base+"/runs/"+run.ID, nil, nil)
		var snap struct{ Status string }
		if err == nil && code == 200 && json.Unmarshal(body, &snap) == nil && snap.Status != "running" {
			row.Status = snap.Status
			break
		}
		if time.Since(start) > 10*time.Minute || ctx.Err() != nil {
			return row, fmt.Errorf("the run did not end: %d %s %v", code, body, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	row.Wall = time.Since(start)
	for i := range b.DAGTasks {
		fn := "slow" + strconv.Itoa(i)
		row.PerTask[fn] = rec.ranFunction(fn)
		row.MaxRuns = max(row.MaxRuns, row.PerTask[fn])
	}
	return row, nil
}

func httpDo(method, url string, body []byte, hdr map[string]string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, 30*time.Second); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

func printEventsReport(out io.Writer, rep eventsReport) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	if len(rep.Accept) > 0 {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "store\tsync\tevents\terrors\tmost accepted/s\tvs memory\tp99 ms\tat %d/s: p50 ms\tp99 ms\tmax ms\tp99 vs memory\t\n", rep.Spec.Rate)
		for _, r := range rep.Accept {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.0f\t%.2fx\t%s\t%s\t%s\t%s\t%.2fx\t\n", r.Store, cmpOr(r.Sync, "-"), r.Events, r.Errors,
				r.PerSecond, r.RatioRate, ms(r.P99), ms(r.PacedP50), ms(r.PacedP99), ms(r.PacedMax), r.RatioP99)
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
	if len(rep.Kills) > 0 {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tevents\taccepted\tSIGKILLs\tdelivered (distinct)\tlost\trepeats\trepeats %\tredelivered (sequoia's count)\twall s\t")
		for _, r := range rep.Kills {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.0f\t%.1f\t\n", r.Mode, r.Events, r.Accepted, r.Kills, r.Distinct,
				r.Lost, r.Repeats, r.RepeatPct, r.Redelivered, r.Wall.Seconds())
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
	for _, r := range rep.DAG {
		fmt.Fprintf(out, "async DAG run of %d tasks, SIGKILLed during task %d: %s in %.1fs; runs per task %v (max %d)\n",
			r.Tasks, r.KilledAfter+1, r.Status, r.Wall.Seconds(), r.PerTask, r.MaxRuns)
	}
}
