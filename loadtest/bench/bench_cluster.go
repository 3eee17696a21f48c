package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/serve"
)

const clusterUsage = `usage: sequoia bench cluster [flags]

N replicas of sequoia (separate processes of this binary, so that SIGKILL
is real) share one platform budget through NATS JetStream (run by the
bench), behind a round-robin balancer (HAProxy when installed, else a
small built-in one that balances each request, as HAProxy does). The
platform is an emulator. Three parts, in one run:

  W1        one replica against the cluster, each with the whole budget:
            a burst of -chains chains of -steps steps at once, with the
            -deadline told by headers, then the same burst with
            -long-deadline
  SIGKILL   a steady stream of chains (-rate per second for -run); one
            replica is killed with SIGKILL -kill-after into it: the
            platform must never see more than the budget, and the dead
            replica's slots go back to the others within the lease TTL
  NATS      the same stream; NATS stops -kill-after into it and returns
            after the lease TTL and -outage more: replicas serve on safe
            shares meanwhile (0 platform throttles) and have the whole
            budget again soon after NATS returns

Goals: at -deadline, the cluster completes at least 0.9x what one replica
completes, with 0 chains dropped mid-chain and 0 platform throttles; at
-long-deadline every chain completes; requests make no NATS operation.
`

// clusterSpec is the cluster bench's workload.
type clusterSpec struct {
	Replicas     int           `json:"replicas"`
	Chains       int           `json:"chains"`
	Steps        int           `json:"steps"`
	Limit        int           `json:"platform_limit"`
	Exec         time.Duration `json:"exec_ns"`
	Deadline     time.Duration `json:"deadline_ns"`
	LongDeadline time.Duration `json:"long_deadline_ns"`
	Rate         float64       `json:"stream_chains_per_second"`
	Run          time.Duration `json:"stream_ns"`
	KillAfter    time.Duration `json:"kill_after_ns"`
	Outage       time.Duration `json:"outage_beyond_ttl_ns"`
	LeaseTTL     time.Duration `json:"lease_ttl_ns"`
	NATSNodes    int           `json:"nats_nodes"`
	// NATSReplicas is the replicas' SEQUOIA_NATS_REPLICAS.
	NATSReplicas int      `json:"nats_replicas"`
	Balancer     string   `json:"balancer"`
	IDs          string   `json:"ids"`
	Parts        []string `json:"parts"`
	HAProxy      string   `json:"-"`
	Binary       string   `json:"-"`
}

// clusterRow is one run's figures.
type clusterRow struct {
	loadtest.Summary
	Setup               string        `json:"setup"`
	Deadline            time.Duration `json:"deadline_ns"`
	PlatformInvocations int64         `json:"platform_invocations"`
	PlatformThrottles   int64         `json:"platform_throttles"`
	PeakConcurrency     int64         `json:"platform_peak_concurrency"`
	// RequestOps and BackgroundOps are the NATS operations the replicas
	// made during the run, on requests' path and in the background.
	RequestOps    float64 `json:"nats_ops_request"`
	BackgroundOps float64 `json:"nats_ops_background"`
	// Reclaimed is, after a SIGKILL, how long until the other replicas'
	// leases held the whole budget again; FullAgain, after a NATS outage,
	// how long after NATS returned until no replica was on a safe share
	// and the leases held the whole budget. FallbackSeen says replicas
	// were seen on safe shares during the outage. Zero: not measured or
	// not seen.
	Reclaimed    time.Duration `json:"reclaimed_after_kill_ns,omitempty"`
	FullAgain    time.Duration `json:"full_budget_after_nats_return_ns,omitempty"`
	FallbackSeen bool          `json:"fallback_seen,omitempty"`
	// MinApplied is the fewest slots the replicas applied together
	// during the outage (their safe shares).
	MinApplied int `json:"min_applied_during_outage,omitempty"`
}

type clusterReport struct {
	Spec clusterSpec  `json:"spec"`
	Rows []clusterRow `json:"rows"`
	// Ratio is the cluster's completed chains at -deadline over one
	// replica's (goal: >= 0.9).
	Ratio float64 `json:"completed_ratio"`
	// Shift is how long after a stream of chains starts at one replica of
	// the idle cluster, straight to it, that replica holds every slot but
	// the others' one each (goal: within a second); zero if never within
	// 10 s.
	Shift time.Duration `json:"lease_shift_ns,omitempty"`
}

func runBenchCluster(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench cluster", flag.ContinueOnError)
	var b clusterSpec
	var parts string
	var asJSON bool
	fs.IntVar(&b.Replicas, "replicas", 3, "sequoia replicas in the cluster")
	fs.IntVar(&b.Chains, "chains", 1000, "chains in each W1 burst")
	fs.IntVar(&b.Steps, "steps", 2, "invocations per chain")
	fs.IntVar(&b.Limit, "limit", 50, "the emulated platform's concurrency limit, and SEQUOIA_MAX_CONCURRENCY")
	fs.DurationVar(&b.Exec, "exec", 40*time.Millisecond, "execution time of each invocation")
	fs.DurationVar(&b.Deadline, "deadline", time.Second, "each W1 chain's budget, told by headers and enforced by the client")
	fs.DurationVar(&b.LongDeadline, "long-deadline", 4*time.Second, "the second W1 burst's budget (0 skips it)")
	fs.Float64Var(&b.Rate, "rate", 400, "chains per second in the SIGKILL and NATS streams")
	fs.DurationVar(&b.Run, "run", 15*time.Second, "length of the SIGKILL and NATS streams")
	fs.DurationVar(&b.KillAfter, "kill-after", 3*time.Second, "when the replica or NATS is killed, into the stream")
	fs.DurationVar(&b.Outage, "outage", 2*time.Second, "how much longer than the lease TTL NATS stays away")
	fs.DurationVar(&b.LeaseTTL, "lease-ttl", 5*time.Second, "SEQUOIA_LEASE_TTL")
	fs.IntVar(&b.NATSNodes, "nats-nodes", 3, "NATS servers in the JetStream cluster (1 for a single server)")
	fs.IntVar(&b.NATSReplicas, "nats-replicas", 0, "SEQUOIA_NATS_REPLICAS (0: -nats-nodes, as the manifests keep a copy on each)")
	fs.StringVar(&b.Balancer, "balancer", "auto", "haproxy, builtin, or auto (haproxy when installed)")
	fs.StringVar(&b.IDs, "ids", "client", "chain ids: client (each chain chooses its own: one look-up per chain and replica) or assigned (sequoia's, with a ticket: no look-up)")
	fs.StringVar(&parts, "parts", "w1,kill,nats", "comma-separated parts to run")
	fs.StringVar(&b.HAProxy, "haproxy", "/usr/sbin/haproxy", "the haproxy binary")
	fs.StringVar(&b.Binary, "sequoia", "", "the sequoia binary the replicas run (default: this one)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, clusterUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench cluster", "unexpected argument %q", fs.Arg(0))
	}
	if b.Replicas < 2 || b.Chains <= 0 || b.Steps <= 0 || b.Limit < b.Replicas || b.Exec < 0 || b.Deadline <= 0 ||
		b.LongDeadline < 0 || b.Rate <= 0 || b.Run <= 0 || b.KillAfter <= 0 || b.KillAfter >= b.Run || b.Outage < 0 ||
		b.LeaseTTL <= 0 || b.NATSNodes < 1 || b.NATSReplicas < 0 || b.NATSReplicas > b.NATSNodes {
		return cli.Usagef("bench cluster", "-replicas must be 2 or more, -limit at least -replicas, -kill-after within -run, -nats-replicas at most -nats-nodes; the rest positive")
	}
	if b.NATSReplicas == 0 {
		b.NATSReplicas = b.NATSNodes
	}
	if b.IDs != "client" && b.IDs != "assigned" {
		return cli.Usagef("bench cluster", "-ids must be client or assigned")
	}
	for _, p := range strings.Split(parts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "w1", "kill", "nats":
			b.Parts = append(b.Parts, p)
		default:
			return cli.Usagef("bench cluster", "unknown part %q (want w1, kill, nats)", p)
		}
	}
	switch b.Balancer {
	case "auto":
		b.Balancer = "builtin"
		if _, err := exec.LookPath(b.HAProxy); err == nil {
			b.Balancer = "haproxy"
		}
	case "haproxy":
		if _, err := exec.LookPath(b.HAProxy); err != nil {
			return fmt.Errorf("bench cluster: haproxy is missing (%s not found; on Debian: apt-get install haproxy)", b.HAProxy)
		}
	case "builtin":
	default:
		return fmt.Errorf("bench cluster: -balancer must be haproxy, builtin or auto")
	}
	if b.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		b.Binary = exe
	}
	rep, err := benchCluster(ctx, b, progress)
	if err != nil {
		return err
	}
	return writeReport(out, asJSON, rep, func() { printCluster(out, rep) })
}

// clusterBench is one run's moving parts.
type clusterBench struct {
	spec     clusterSpec
	dir      string
	emu      *emulator.Emulator
	emuAddr  string
	nats     *natstest.Cluster
	progress io.Writer
}

func benchCluster(ctx context.Context, b clusterSpec, progress io.Writer) (clusterReport, error) {
	rep := clusterReport{Spec: b}
	dir, err := os.MkdirTemp("", "sequoia-bench-cluster")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(dir)
	emu, emuAddr, err := serve.StartLocalPlatform("bench cluster", emulator.Config{
		Limit: b.Limit, ExecTime: b.Exec, KeepAlive: time.Hour,
	})
	if err != nil {
		return rep, err
	}
	defer emu.Shutdown() //nolint:errcheck
	nc, err := natstest.NewCluster(filepath.Join(dir, "nats"), b.NATSNodes)
	if err != nil {
		return rep, err
	}
	defer nc.Stop()
	cb := &clusterBench{spec: b, dir: dir, emu: emu, emuAddr: emuAddr, nats: nc, progress: progress}
	has := func(p string) bool {
		for _, q := range b.Parts {
			if q == p {
				return true
			}
		}
		return false
	}
	if has("w1") {
		rows, err := cb.w1(ctx, &rep)
		rep.Rows = append(rep.Rows, rows...)
		if err != nil {
			return rep, err
		}
		if len(rows) >= 2 && rows[0].Completed > 0 {
			rep.Ratio = float64(rows[1].Completed) / float64(rows[0].Completed)
		}
	}
	if has("kill") {
		row, err := cb.stream(ctx, "SIGKILL")
		rep.Rows = append(rep.Rows, row)
		if err != nil {
			return rep, err
		}
	}
	if has("nats") {
		row, err := cb.stream(ctx, "NATS outage")
		rep.Rows = append(rep.Rows, row)
		if err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

// replica is one sequoia process.
type replica struct {
	cmd         *exec.Cmd
	data, admin string
	done        chan struct{}
}

func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startReplica starts `sequoia serve` with env over the bench's settings
// and waits until it is ready.
func (cb *clusterBench) startReplica(ctx context.Context, name string, env ...string) (*replica, error) {
	data, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	admin, err := freeLoopback()
	if err != nil {
		return nil, err
	}
	state := filepath.Join(cb.dir, "state-"+name)
	logf, err := os.Create(filepath.Join(cb.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	b := cb.spec
	cmd := exec.CommandContext(ctx, b.Binary, "serve")
	cmd.Env = append(os.Environ(),
		"SEQUOIA_LISTEN="+data, "SEQUOIA_ADMIN_LISTEN="+admin, "SEQUOIA_STATE_DIR="+state,
		"SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+cb.emuAddr,
		"SEQUOIA_MAX_CONCURRENCY="+strconv.Itoa(b.Limit),
		"SEQUOIA_QUEUE_CAPACITY="+strconv.Itoa(max(b.Chains*b.Steps, int(b.Rate*b.Run.Seconds())*b.Steps)),
		"SEQUOIA_QUEUE_TIMEOUT=5m", "SEQUOIA_LOG_LEVEL=info", "SEQUOIA_LOG_FORMAT=text",
		"SEQUOIA_LEASE_TTL="+b.LeaseTTL.String(), "SEQUOIA_CLUSTER=bench")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench cluster: start %s: %w", b.Binary, err)
	}
	r := &replica{cmd: cmd, data: data, admin: admin, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(r.done) }()
	for end := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return r, nil
			}
		}
		select {
		case <-r.done:
			// The bench's directory goes when it ends: say what the log said.
			return nil, fmt.Errorf("bench cluster: replica %s exited at start (%v): %s", name, cmd.ProcessState, lastLines(logf.Name(), 10))
		default:
		}
		if time.Now().After(end) {
			r.kill()
			return nil, fmt.Errorf("bench cluster: replica %s not ready within a minute", name)
		}
	}
}

func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		r.kill()
	}
}

// replicaStatus is what the bench reads of a replica's status.
type replicaStatus struct {
	Cluster struct {
		Connected bool `json:"connected"`
		Leases    *struct {
			Applied   int  `json:"applied"`
			Lease     int  `json:"lease"`
			Target    int  `json:"target"`
			Effective int  `json:"effective_budget"`
			Fallback  bool `json:"fallback"`
			Replicas  []struct {
				Name string `json:"name"`
			} `json:"replicas"`
		} `json:"leases"`
		Ops map[string]float64 `json:"nats_operations"`
	} `json:"cluster"`
	Adaptive struct {
		Enabled   bool  `json:"enabled"`
		Limit     int   `json:"limit"`
		SlowStart bool  `json:"slow_start"`
		Cuts      int64 `json:"queueing_cuts"`
		Throttles int64 `json:"throttles"`
	} `json:"adaptive"`
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

func (r *replica) status() (replicaStatus, error) {
	var st replicaStatus
	resp, err := statusClient.Get("http://" + r.admin + "/sequoia/v1/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	if err == nil && st.Cluster.Leases == nil {
		err = errors.New("no leases in the status")
	}
	return st, err
}

// ops sums the replicas' NATS operations on each path.
func ops(rs []*replica) (request, background float64) {
	for _, r := range rs {
		if st, err := r.status(); err == nil {
			request += st.Cluster.Ops["request"]
			background += st.Cluster.Ops["background"]
		}
	}
	return request, background
}

// applied sums the slots the replicas use and says whether any is on a
// safe share; ok is false if one did not answer.
func applied(rs []*replica) (sum int, fallback bool, ok bool) {
	for _, r := range rs {
		st, err := r.status()
		if err != nil {
			return 0, false, false
		}
		sum += st.Cluster.Leases.Applied
		fallback = fallback || st.Cluster.Leases.Fallback
	}
	return sum, fallback, true
}

// settled waits until the replicas are idle and their leases at their
// shares (an even split): a burst then meets the cluster as it is between
// bursts, not as the warm-up left it.
func settled(ctx context.Context, rs []*replica, budget int) {
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end) && ctx.Err() == nil; time.Sleep(50 * time.Millisecond) {
		sum, lo, hi := 0, budget, 0
		ok := true
		for _, r := range rs {
			st, err := r.status()
			if err != nil || st.Cluster.Leases.Applied != st.Cluster.Leases.Target {
				ok = false
				break
			}
			a := st.Cluster.Leases.Applied
			sum, lo, hi = sum+a, min(lo, a), max(hi, a)
		}
		if ok && sum == budget && hi-lo <= 1 {
			return
		}
	}
}

// startCluster starts n replicas on the bench's NATS (or one alone on the
// embedded server when n is 1) and the balancer in front of them, and
// waits until their leases hold the whole budget.
func (cb *clusterBench) startCluster(ctx context.Context, tag string, n int) ([]*replica, string, func(), error) {
	var rs []*replica
	stopAll := func() {
		for _, r := range rs {
			r.stop()
		}
	}
	for i := range n {
		var env []string
		if n > 1 {
			env = append(env, "SEQUOIA_NATS_URL="+cb.nats.URL(),
				"SEQUOIA_NATS_REPLICAS="+strconv.Itoa(cb.spec.NATSReplicas))
		}
		r, err := cb.startReplica(ctx, fmt.Sprintf("%s-%d", tag, i), env...)
		if err != nil {
			stopAll()
			return nil, "", nil, err
		}
		rs = append(rs, r)
	}
	for end := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if sum, fb, ok := applied(rs); ok && sum == cb.spec.Limit && !fb {
			break
		}
		if time.Now().After(end) {
			stopAll()
			return nil, "", nil, fmt.Errorf("bench cluster: the replicas' leases never held the budget")
		}
	}
	url, stopLB, err := cb.balance(ctx, rs)
	if err != nil {
		stopAll()
		return nil, "", nil, err
	}
	return rs, url, func() { stopLB(); stopAll() }, nil
}

// balance starts the round-robin balancer in front of rs.
func (cb *clusterBench) balance(ctx context.Context, rs []*replica) (string, func(), error) {
	if cb.spec.Balancer == "builtin" {
		var addrs []string
		for _, r := range rs {
			addrs = append(addrs, r.data)
		}
		lb, err := loadtest.StartBalancer(addrs)
		if err != nil {
			return "", nil, err
		}
		return "http://" + lb.Addr(), lb.Close, nil
	}
	addr, err := freeLoopback()
	if err != nil {
		return "", nil, err
	}
	var servers strings.Builder
	for i, r := range rs {
		_, port, _ := net.SplitHostPort(r.admin)
		fmt.Fprintf(&servers, "    server r%d %s check port %s inter 250ms fall 2 rise 1\n", i, r.data, port)
	}
	// maxconn: two descriptors a connection must fit the usual limit of
	// 20000.
	conf := fmt.Sprintf(`global
    maxconn 9000
defaults
    mode http
    option http-keep-alive
    option redispatch
    retries 3
    timeout connect 1s
    timeout client 5m
    timeout server 5m
    timeout queue 5m
frontend chains
    bind %s
    http-request set-header X-Request-Start t=%%[date(0,ms)]
    default_backend sequoia
backend sequoia
    balance roundrobin
    option httpchk GET /healthz
%s`, addr, servers.String())
	cfgPath := filepath.Join(cb.dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, cb.spec.HAProxy, "-db", "-f", cfgPath)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("bench cluster: start haproxy: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr, stop, nil
		}
		if i == 100 {
			stop()
			return "", nil, fmt.Errorf("bench cluster: haproxy did not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// warm sends a burst of one-step chains (a connection each, so that the
// measured burst pays no handshakes) and as many two-step chains as the
// platform runs at once, twice, so that the replicas have observed the
// functions.
func (cb *clusterBench) warm(ctx context.Context, url string, client *fasthttp.Client) {
	b := cb.spec
	loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Chains, Steps: 1, ExecMs: 1,
		Namespace: "warmup", AssignedIDs: b.IDs == "assigned"})
	for range 2 {
		loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Limit, Steps: b.Steps,
			AssignedIDs: b.IDs == "assigned"})
	}
}

// measure runs f and fills row with the platform's and the replicas'
// counts over it.
func (cb *clusterBench) measure(rs []*replica, row *clusterRow, f func() loadtest.Result) {
	cb.emu.Reset()
	req0, bg0 := ops(rs)
	res := f()
	time.Sleep(2 * cb.spec.Exec) // let abandoned invocations end at the platform
	st := cb.emu.Stats()
	req1, bg1 := ops(rs)
	setup, deadline := row.Setup, row.Deadline
	row.Summary = res.Summary()
	row.Setup, row.Deadline = setup, deadline
	row.PlatformInvocations = st.Invocations
	row.PlatformThrottles = st.Throttles
	row.PeakConcurrency = st.PeakConcurrency
	row.RequestOps, row.BackgroundOps = req1-req0, bg1-bg0
	fmt.Fprintf(cb.progress, "%-22s %d completed, %d refused, %d dropped, %d failed; platform: %d throttles, peak %d\n",
		row.Setup, row.Completed, row.Refused, row.Dropped, row.Failed, row.PlatformThrottles, row.PeakConcurrency)
	for i, r := range rs {
		if st, err := r.status(); err == nil {
			a := st.Adaptive
			fmt.Fprintf(cb.progress, "%-22s replica %d: lease %d, effective budget %d; adaptive limit %d (slow start %v, %d queueing cuts, %d throttles)\n",
				row.Setup, i, st.Cluster.Leases.Lease, st.Cluster.Leases.Effective, a.Limit, a.SlowStart, a.Cuts, a.Throttles)
		}
	}
	if st := chainCounts(rs); st != "" {
		fmt.Fprintf(cb.progress, "%-22s %s\n", row.Setup, st)
	}
	if row.Dropped+row.Failed > 0 {
		by := map[int]int{}
		for _, c := range res.Chains {
			if c.Outcome == loadtest.Dropped || c.Outcome == loadtest.Failed {
				by[c.Status]++
			}
		}
		fmt.Fprintf(cb.progress, "%-22s dropped or failed, by the status that ended them (0: the client's deadline or an error): %v\n", row.Setup, by)
	}
}

// w1 runs the W1 bursts against one replica and against the cluster.
func (cb *clusterBench) w1(ctx context.Context, rep *clusterReport) ([]clusterRow, error) {
	b := cb.spec
	var rows []clusterRow
	for _, n := range []int{1, b.Replicas} {
		setup := "one replica"
		if n > 1 {
			setup = fmt.Sprintf("cluster of %d", n)
		}
		rs, url, stop, err := cb.startCluster(ctx, fmt.Sprintf("w1-%d", n), n)
		if err != nil {
			return rows, err
		}
		client := loadtest.NewClient(b.Chains, 2*time.Minute)
		cb.warm(ctx, url, client)
		for _, d := range []time.Duration{b.Deadline, b.LongDeadline} {
			if d == 0 {
				continue
			}
			settled(ctx, rs, b.Limit)
			row := clusterRow{Setup: setup, Deadline: d}
			cb.measure(rs, &row, func() loadtest.Result {
				return loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: b.Chains,
					Steps: b.Steps, Deadline: d, EnforceDeadline: true, AssignedIDs: b.IDs == "assigned"})
			})
			rows = append(rows, row)
			time.Sleep(time.Second) // the leases settle after the burst
		}
		if n > 1 {
			settled(ctx, rs, b.Limit)
			rep.Shift = cb.shift(ctx, rs, client)
			fmt.Fprintf(cb.progress, "%-22s a busy replica holds all but the idle ones' slot each after %v\n", setup, rep.Shift.Round(time.Millisecond))
		}
		client.CloseIdleConnections()
		stop()
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	// The cluster's rows after one replica's: reorder as one replica at
	// -deadline, the cluster at -deadline, then the long deadline's.
	if len(rows) == 4 {
		rows[1], rows[2] = rows[2], rows[1]
	}
	return rows, nil
}

// shift sends a stream of chains straight to the first replica of an idle
// cluster (eight times what the platform runs at once, over a second,
// each step 200 ms: about three times the budget's worth of work) and
// returns how long until that replica holds every slot but one for each
// other replica; zero if not within 10 s.
func (cb *clusterBench) shift(ctx context.Context, rs []*replica, client *fasthttp.Client) time.Duration {
	b := cb.spec
	want := b.Limit - (len(rs) - 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: "http://" + rs[0].data, Client: client, Chains: 8 * b.Limit,
			Steps: b.Steps, Spread: time.Second, ExecMs: 200, AssignedIDs: true})
	}()
	defer func() { <-done }()
	start := time.Now()
	for time.Since(start) < 10*time.Second && ctx.Err() == nil {
		if st, err := rs[0].status(); err == nil && st.Cluster.Leases.Applied >= want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// stream runs a steady stream of chains through the cluster and kills a
// replica (what == "SIGKILL") or NATS into it.
func (cb *clusterBench) stream(ctx context.Context, what string) (clusterRow, error) {
	b := cb.spec
	row := clusterRow{Setup: what, Deadline: b.LongDeadline}
	if row.Deadline == 0 {
		row.Deadline = b.Deadline
	}
	rs, url, stop, err := cb.startCluster(ctx, strings.ToLower(strings.Fields(what)[0]), b.Replicas)
	if err != nil {
		return row, err
	}
	defer stop()
	client := loadtest.NewClient(int(b.Rate*row.Deadline.Seconds())+b.Chains, 2*time.Minute)
	defer client.CloseIdleConnections()
	cb.warm(ctx, url, client)
	settled(ctx, rs, b.Limit)
	chains := int(b.Rate * b.Run.Seconds())
	var survivorsOps [2]float64
	if what == "SIGKILL" {
		survivorsOps[0], survivorsOps[1] = ops(rs[:len(rs)-1])
	}
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.KillAfter):
		}
		if what == "SIGKILL" {
			victim := rs[len(rs)-1]
			victim.kill()
			killed := time.Now()
			fmt.Fprintf(cb.progress, "%-22s replica killed with SIGKILL\n", what)
			survivors := rs[:len(rs)-1]
			for time.Since(killed) < 3*b.LeaseTTL && ctx.Err() == nil {
				if sum, _, ok := applied(survivors); ok && sum == b.Limit {
					row.Reclaimed = time.Since(killed)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			return
		}
		cb.nats.Stop()
		fmt.Fprintf(cb.progress, "%-22s NATS stopped\n", what)
		away := time.Now()
		row.MinApplied = b.Limit
		for time.Since(away) < b.LeaseTTL+b.Outage && ctx.Err() == nil {
			if sum, fb, ok := applied(rs); ok {
				row.FallbackSeen = row.FallbackSeen || fb
				row.MinApplied = min(row.MinApplied, sum)
			}
			time.Sleep(50 * time.Millisecond)
		}
		back := time.Now() // the servers start again: NATS returns
		// The replicas are watched from the servers' start, not from
		// when JetStream's meta group has a leader again (Restart waits
		// for that): they may take their leases back before, through
		// each other's heartbeats on plain NATS.
		restarted := make(chan struct{})
		go func() {
			defer close(restarted)
			if err := cb.nats.Restart(); err != nil {
				fmt.Fprintf(cb.progress, "%-22s NATS did not come back: %v\n", what, err)
				return
			}
			fmt.Fprintf(cb.progress, "%-22s NATS back (JetStream ready after %v)\n", what, time.Since(back).Round(time.Millisecond))
		}()
		defer func() { <-restarted }()
		for time.Since(back) < time.Minute && ctx.Err() == nil {
			if sum, fb, ok := applied(rs); ok && sum == b.Limit && !fb {
				row.FullAgain = time.Since(back)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	cb.measure(rs, &row, func() loadtest.Result {
		return loadtest.RunChains(ctx, loadtest.ChainSpec{BaseURL: url, Client: client, Chains: chains, Steps: b.Steps,
			Deadline: row.Deadline, EnforceDeadline: true, Spread: b.Run, AssignedIDs: b.IDs == "assigned"})
	})
	watch.Wait()
	if what == "SIGKILL" {
		// The killed replica is gone: the survivors' figures only.
		req, bg := ops(rs[:len(rs)-1])
		row.RequestOps, row.BackgroundOps = req-survivorsOps[0], bg-survivorsOps[1]
	}
	return row, nil
}

func printCluster(out io.Writer, rep clusterReport) {
	s := rep.Spec
	fmt.Fprintf(out, "sequoia bench cluster: %d replicas behind %s (round-robin per request), NATS JetStream of %d node(s) keeping %d copies; %s chain ids\n",
		s.Replicas, s.Balancer, s.NATSNodes, s.NATSReplicas, s.IDs)
	fmt.Fprintf(out, "platform limit %d = SEQUOIA_MAX_CONCURRENCY (one replica: all of it; the cluster: shared), %v per invocation, lease TTL %v\n\n",
		s.Limit, s.Exec, s.LeaseTTL)
	ms := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "run\tdeadline\tchains\tcompleted\trefused\tdropped mid-chain\tfailed\tplatform throttles\tplatform peak\tp99\tNATS ops on requests\t\n")
	for _, r := range rep.Rows {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.0f\t\n", r.Setup, r.Deadline, r.Chains, r.Completed, r.Refused,
			r.Dropped, r.Failed, r.PlatformThrottles, r.PeakConcurrency, ms(r.P99), r.RequestOps)
	}
	tw.Flush()
	fmt.Fprintln(out)
	if rep.Ratio > 0 {
		fmt.Fprintf(out, "cluster / one replica, completed at %v: %.2f (goal >= 0.90)\n", s.Deadline, rep.Ratio)
	}
	if rep.Shift > 0 {
		fmt.Fprintf(out, "a stream at one replica of the idle cluster: it holds all slots but the others' one each after %s (goal <= 1 s)\n", ms(rep.Shift))
	}
	for _, r := range rep.Rows {
		switch r.Setup {
		case "SIGKILL":
			fmt.Fprintf(out, "SIGKILL %v into a %v stream of %.0f chains/s: the dead replica's slots back with the others after %s (lease TTL %v)\n",
				s.KillAfter, s.Run, s.Rate, ms(r.Reclaimed), s.LeaseTTL)
		case "NATS outage":
			fmt.Fprintf(out, "NATS stopped %v into a %v stream for the TTL + %v: safe shares seen %v (fewest slots in use together %d); whole budget again %s after NATS returned\n",
				s.KillAfter, s.Run, s.Outage, r.FallbackSeen, r.MinApplied, ms(r.FullAgain))
		}
	}
}

// lastLines returns the last n lines of the file at path, or what went
// wrong reading it.
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// chainCounts sums, over the replicas, how chains of other replicas were
// found, how client-chosen ids were registered, and the chains each
// replica counted dropped (by reason) or failed where it admitted them
// (so far: the warm-up's chains have no deadline), for the progress
// output: sequoia's own view beside what the clients saw.
func chainCounts(rs []*replica) string {
	sums := map[string]float64{}
	for _, r := range rs {
		resp, err := statusClient.Get("http://" + r.admin + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			for _, m := range []string{"sequoia_cluster_remote_chains_total", "sequoia_cluster_chain_registrations_total",
				"sequoia_chains_dropped_total", "sequoia_chains_failed_total"} {
				if strings.HasPrefix(line, m+"{") {
					name, v, _ := strings.Cut(line, " ")
					f, _ := strconv.ParseFloat(v, 64)
					if f > 0 {
						name = strings.TrimPrefix(strings.TrimPrefix(name, "sequoia_cluster_"), "sequoia_")
						sums[name] += f
					}
				}
			}
		}
	}
	var parts []string
	for k, v := range sums {
		parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
