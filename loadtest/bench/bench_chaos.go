package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/serve"
)

const chaosUsage = `usage: sequoia bench chaos [flags]

The reliability suite: sequoia (in this process) in front of a small
faulty platform, through each failure in turn: 10x overload, the platform
killed and restarted, 10% 503 answers, connections closed mid-answer, hung
calls, slow connections that never finish their headers, a corpus of bad
requests, and a shutdown under load whose timeout runs out. Prints one row
per scenario: requests, what clients got, refusals without Retry-After,
requests left without an answer, log lines, goroutines after, and the
admin probe's p99 against its p99 before the run. --json prints the
report as JSON.
`

// chaosSpec is the suite's workload.
type chaosSpec struct {
	Limit     int           `json:"platform_limit"`
	Exec      time.Duration `json:"exec_ns"`
	Overload  time.Duration `json:"overload_ns"`
	Outage    time.Duration `json:"outage_ns"`
	SlowConns int           `json:"slow_conns"`
	Clients   int           `json:"clients"`
}

// chaosRow is one scenario's outcome.
type chaosRow struct {
	Scenario  string         `json:"scenario"`
	Requests  int64          `json:"requests"`
	Statuses  map[int]int64  `json:"statuses"` // 0: no answer (connection error)
	NoRetry   int64          `json:"refusals_without_retry_after"`
	Unanswer  int64          `json:"unanswered"`
	LogLines  int64          `json:"log_lines"`
	Goroutine int            `json:"goroutines_after"`
	RSSMiB    float64        `json:"max_rss_mib"`
	ProbeP99  time.Duration  `json:"probe_p99_ns"`
	Extra     map[string]any `json:"extra,omitempty"`
	Problems  []string       `json:"problems,omitempty"`
}

type chaosReport struct {
	Spec         chaosSpec     `json:"spec"`
	ProbeP99Idle time.Duration `json:"probe_p99_idle_ns"`
	Rows         []chaosRow    `json:"rows"`
}

func runBenchChaos(ctx context.Context, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("bench chaos", flag.ContinueOnError)
	var b chaosSpec
	var asJSON bool
	fs.IntVar(&b.Limit, "limit", 8, "SEQUOIA_MAX_CONCURRENCY, the platform's concurrency")
	fs.DurationVar(&b.Exec, "exec", 20*time.Millisecond, "the platform's time per call")
	fs.DurationVar(&b.Overload, "overload", time.Minute, "length of the 10x overload")
	fs.DurationVar(&b.Outage, "outage", 5*time.Second, "how long the platform stays down")
	fs.IntVar(&b.SlowConns, "slow-conns", 9000, "connections that never finish their headers (this process holds both ends: at most half the file-descriptor limit)")
	fs.IntVar(&b.Clients, "clients", 0, "concurrent clients of the overload (default 10x what the platform runs in its exec time)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := cli.Parse(fs, chaosUsage, args, out); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("bench chaos", "unexpected argument %q", fs.Arg(0))
	}
	if b.Limit <= 0 || b.Exec <= 0 || b.Overload <= 0 || b.Outage <= 0 || b.SlowConns < 0 || b.Clients < 0 {
		return cli.Usagef("bench chaos", "-limit, -exec, -overload and -outage must be positive, -slow-conns and -clients not negative")
	}
	if b.Clients == 0 {
		b.Clients = 10 * b.Limit
	}
	rep, err := chaosRun(ctx, b, progress)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printChaosReport(out, rep)
	return nil
}

// faultyPlatform is a small HTTP platform whose faults a scenario sets.
type faultyPlatform struct {
	addr  string
	exec  time.Duration
	fail  atomic.Uint32 // per mille answered 503
	cut   atomic.Uint32 // per mille closed mid-answer
	hang  atomic.Uint32 // per mille that never answer (until release)
	mu    sync.Mutex
	srv   *fasthttp.Server // REQUIRES: mu
	hung  chan struct{}    // closed by release; REQUIRES: mu
	calls atomic.Int64
}

func startFaultyPlatform(exec time.Duration) (*faultyPlatform, error) {
	p := &faultyPlatform{exec: exec, hung: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	return p, nil
}

func (p *faultyPlatform) serve(ln net.Listener) {
	srv := &fasthttp.Server{Handler: p.handle, Logger: silentLogger{}}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	go srv.Serve(ln) //nolint:errcheck
}

type silentLogger struct{}

func (silentLogger) Printf(string, ...any) {}

func (p *faultyPlatform) handle(ctx *fasthttp.RequestCtx) {
	p.calls.Add(1)
	r := uint32(rand.IntN(1000))
	switch {
	case r < p.hang.Load():
		p.mu.Lock()
		hung := p.hung
		p.mu.Unlock()
		<-hung
	case r < p.hang.Load()+p.fail.Load():
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
		return
	case r < p.hang.Load()+p.fail.Load()+p.cut.Load():
		time.Sleep(p.exec)
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
		})
		return
	}
	time.Sleep(p.exec)
	ctx.SetBodyString(`{"ok":true}`)
}

// kill closes the listener and every connection.
func (p *faultyPlatform) kill() {
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	_ = srv.Shutdown()
}

// restart listens again on the same address.
func (p *faultyPlatform) restart() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			p.serve(ln)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// release ends every hung call.
func (p *faultyPlatform) release() {
	p.mu.Lock()
	close(p.hung)
	p.hung = make(chan struct{})
	p.mu.Unlock()
}

// lineCounter counts the lines sequoia logs.
type lineCounter struct{ n atomic.Int64 }

func (l *lineCounter) Write(b []byte) (int, error) {
	l.n.Add(int64(bytes.Count(b, []byte{'\n'})))
	return len(b), nil
}

// chaosTarget is one sequoia started for a scenario.
type chaosTarget struct {
	srv   *serve.Server
	stop  func()
	lines *lineCounter
	base  string
}

func startChaosTarget(ctx context.Context, b chaosSpec, plat string, env ...string) (*chaosTarget, error) {
	lines := &lineCounter{}
	log := serve.NewLogger(config.Serving{LogLevel: "info", LogFormat: "json"}, lines)
	srv, stop, err := serve.StartLocal(ctx, plat, log, append([]string{"SEQUOIA_BACKEND=http", "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_MAX_CONCURRENCY=" + strconv.Itoa(b.Limit), "SEQUOIA_QUEUE_CAPACITY=" + strconv.Itoa(4*b.Limit),
		"SEQUOIA_QUEUE_TIMEOUT=2s", "SEQUOIA_ADAPTIVE_INITIAL=" + strconv.Itoa(b.Limit)}, env...)...)
	if err != nil {
		return nil, err
	}
	return &chaosTarget{srv: srv, stop: stop, lines: lines, base: "http://" + srv.DataAddr()}, nil
}

// tally counts what clients got.
type tally struct {
	mu       sync.Mutex
	statuses map[int]int64
	noRetry  int64
	n        int64
}

func (t *tally) add(code int, retryAfter bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.statuses == nil {
		t.statuses = map[int]int64{}
	}
	t.statuses[code]++
	t.n++
	if (code == 429 || code == 503) && !retryAfter {
		t.noRetry++
	}
}

// load sends requests from n clients until ctx ends (or each has sent
// max, if positive), counting the answers in t; it returns how long each
// 2xx answer took.
func load(ctx context.Context, c *fasthttp.Client, url string, n, max int, t *tally) []time.Duration {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		lat []time.Duration
	)
	for range n {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := 0; ctx.Err() == nil && (max <= 0 || i < max); i++ {
				req.SetRequestURI(url)
				req.Header.SetMethod("POST")
				req.SetBodyString("{}")
				start := time.Now()
				code := 0
				if err := c.DoTimeout(req, resp, 30*time.Second); err == nil {
					code = resp.StatusCode()
				}
				t.add(code, len(resp.Header.Peek("Retry-After")) > 0)
				switch {
				case code >= 200 && code < 300:
					d := time.Since(start)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				case code == 429 || code == 503:
					time.Sleep(5 * time.Millisecond) // a client that backs off a little
				}
			}
		})
	}
	wg.Wait()
	return lat
}

// p99 is the 99th percentile of lat (sorted in place); 0 when empty.
func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, len(lat)*99/100)]
}

// probe measures the admin port's /healthz until ctx ends, returning the
// p99.
func probe(ctx context.Context, admin string) time.Duration {
	var lat []time.Duration
	for ctx.Err() == nil {
		start := time.Now()
		code, _, err := fasthttp.GetTimeout(nil, "http://"+admin+"/healthz", 10*time.Second)
		if err == nil && code == 200 {
			lat = append(lat, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p99(lat)
}

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func chaosRun(ctx context.Context, b chaosSpec, progress io.Writer) (chaosReport, error) {
	rep := chaosReport{Spec: b}
	plat, err := startFaultyPlatform(b.Exec)
	if err != nil {
		return rep, err
	}
	defer plat.kill()
	client := &fasthttp.Client{MaxConnsPerHost: 4 * b.Clients, ReadTimeout: time.Minute}
	scenario := func(name string, env []string, run func(t *chaosTarget, row *chaosRow, tl *tally) error) error {
		fmt.Fprintf(progress, "%-14s ...\n", name)
		t, err := startChaosTarget(ctx, b, plat.addr, env...)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		row := chaosRow{Scenario: name, Extra: map[string]any{}}
		tl := &tally{}
		pctx, pcancel := context.WithCancel(ctx)
		p99 := make(chan time.Duration, 1)
		go func() { p99 <- probe(pctx, t.srv.AdminAddr()) }()
		err = run(t, &row, tl)
		pcancel()
		row.ProbeP99 = <-p99
		if row.Scenario != "SIGTERM" {
			t.stop()
		}
		client.CloseIdleConnections()
		row.Requests, row.Statuses, row.NoRetry = tl.n, tl.statuses, tl.noRetry
		row.Unanswer += tl.statuses[0]
		row.LogLines = t.lines.n.Load()
		time.Sleep(200 * time.Millisecond)
		row.Goroutine = runtime.NumGoroutine()
		row.RSSMiB = rssMiB()
		rep.Rows = append(rep.Rows, row)
		return err
	}
	// The admin probe with nothing going on.
	{
		t, err := startChaosTarget(ctx, b, plat.addr)
		if err != nil {
			return rep, err
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		rep.ProbeP99Idle = probe(pctx, t.srv.AdminAddr())
		cancel()
		t.stop()
	}
	// loadFor runs n clients for d; steady, one per platform slot.
	loadFor := func(t *chaosTarget, d time.Duration, n int, tl *tally) {
		lctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		load(lctx, client, t.base+"/fn", n, 0, tl)
	}
	steady := func(t *chaosTarget, d time.Duration, tl *tally) { loadFor(t, d, b.Limit, tl) }
	err = errors.Join(
		scenario("overload 10x", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			loadFor(t, b.Overload, b.Clients, tl)
			return nil
		}),
		scenario("platform down", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			done := make(chan struct{})
			go func() { defer close(done); steady(t, b.Outage+3*time.Second, tl) }()
			time.Sleep(time.Second)
			before := t.lines.n.Load()
			plat.kill()
			time.Sleep(b.Outage)
			row.Extra["log_lines_during_outage"] = t.lines.n.Load() - before
			err := plat.restart()
			<-done
			return err
		}),
		scenario("10% 503", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			plat.fail.Store(100)
			defer plat.fail.Store(0)
			steady(t, 5*time.Second, tl)
			return nil
		}),
		scenario("mid-answer cut", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			plat.cut.Store(100)
			defer plat.cut.Store(0)
			steady(t, 5*time.Second, tl)
			return nil
		}),
		scenario("hung calls", []string{"SEQUOIA_BACKEND_TIMEOUT=20s"}, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			plat.hang.Store(100)
			hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			short := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: 500 * time.Millisecond}
			load(hctx, short, t.base+"/fn", b.Limit, 0, tl)
			cancel()
			held := 0
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && held == 0 {
				if code, body, err := fasthttp.Get(nil, "http://"+t.srv.AdminAddr()+"/sequoia/v1/status"); err == nil && code == 200 {
					var st struct {
						Held struct {
							ClientGone int `json:"client_gone"`
						} `json:"held"`
					}
					_ = json.Unmarshal(body, &st)
					held = st.Held.ClientGone
				}
				time.Sleep(100 * time.Millisecond)
			}
			row.Extra["held_client_gone"] = held
			// The hung calls' clients gave up: those are not sequoia's
			// unanswered requests.
			row.Extra["client_timeouts"] = tl.statuses[0]
			tl.mu.Lock()
			delete(tl.statuses, 0)
			tl.mu.Unlock()
			plat.hang.Store(0)
			plat.release()
			return nil
		}),
		scenario("slow conns", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			if p := othersP99(ctx, client, t.base+"/fn", b.Limit, &tally{}); p > 0 {
				row.Extra["others_p99_ms_before"] = float64(p) / 1e6
			}
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range b.SlowConns {
				c, err := net.Dial("tcp", t.srv.DataAddr())
				if err != nil {
					row.Problems = append(row.Problems, fmt.Sprintf("opened %d slow connections: %v", len(conns), err))
					break
				}
				_, _ = io.WriteString(c, "POST /fn HTTP/1.1\r\nHost: x\r\n")
				conns = append(conns, c)
			}
			row.Extra["slow_conns_open"] = len(conns)
			if p := othersP99(ctx, client, t.base+"/fn", b.Limit, tl); p > 0 {
				row.Extra["others_p99_ms"] = float64(p) / 1e6
			}
			return nil
		}),
		scenario("bad requests", nil, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			before := plat.calls.Load()
			for _, raw := range badRequests {
				c, err := net.Dial("tcp", t.srv.DataAddr())
				if err != nil {
					return err
				}
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				_, _ = io.WriteString(c, raw)
				_ = c.(*net.TCPConn).CloseWrite()
				resp := fasthttp.AcquireResponse()
				code := -1 // closed without an answer: allowed for framing it cannot read
				if err := resp.Read(bufio.NewReader(c)); err == nil {
					code = resp.StatusCode()
				}
				fasthttp.ReleaseResponse(resp)
				c.Close()
				if code >= 200 && code < 300 {
					row.Problems = append(row.Problems, fmt.Sprintf("%q answered %d", raw, code))
				}
				tl.add(code, false)
			}
			row.Extra["reached_platform"] = plat.calls.Load() - before
			return nil
		}),
		scenario("SIGTERM", []string{"SEQUOIA_SHUTDOWN_TIMEOUT=300ms"}, func(t *chaosTarget, row *chaosRow, tl *tally) error {
			plat.hang.Store(1000)
			defer plat.release()
			defer plat.hang.Store(0)
			done := make(chan struct{})
			go func() { defer close(done); load(ctx, client, t.base+"/fn", 300, 1, tl) }()
			time.Sleep(time.Second)
			t.stop()
			<-done
			row.Extra["exit_code"] = serve.ExitCode(t.srv.LocalError())
			if err := t.srv.LocalError(); err != nil {
				row.Extra["shutdown"] = err.Error()
			}
			return nil
		}),
	)
	return rep, err
}

// othersP99 runs n clients for 5 s and returns the p99 of their
// successful calls.
func othersP99(ctx context.Context, client *fasthttp.Client, url string, n int, tl *tally) time.Duration {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p99(load(lctx, client, url, n, 0, tl))
}

// badRequests is the corpus the bad-request scenario sends, one a
// connection: none may reach the platform as anything but a plain path.
var badRequests = []string{
	"GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n",
	"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
	"POST /fn HTTP/1.1\r\nHost: x\r\nX-A: 1\nInjected: 1\r\nContent-Length: 2\r\n\r\nhi",
	"GET /fn HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n Authorization: b\r\n\r\n",
	"GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /%2e%2e/admin HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a%2fb HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /fn HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
	"GET /fn HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n",
	"POST /fn HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
	"POST /fn HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
	"PUT /sequoia/v1/dags/steal HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n{\"start\":\"a\",\"nodes\":{\"a\":{\"kind\":\"task\",\"function\":\"f\"}}}",
	"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
	"GET /fn HTTP/9.9\r\nHost: x\r\n\r\n",
}

func printChaosReport(out io.Writer, rep chaosReport) {
	b := rep.Spec
	fmt.Fprintf(out, "sequoia bench chaos: platform limit %d, %v per call; overload %v with %d clients; outage %v; %d slow connections\n",
		b.Limit, b.Exec, b.Overload, b.Clients, b.Outage, b.SlowConns)
	fmt.Fprintf(out, "admin probe p99 before: %.2f ms\n\n", float64(rep.ProbeP99Idle)/1e6)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trequests\t2xx\t429/503\tother\tno Retry-After\tunanswered\tlog lines\tgoroutines\tmax RSS MiB\tprobe p99 ms\t")
	for _, r := range rep.Rows {
		var ok, refused, other int64
		for code, n := range r.Statuses {
			switch {
			case code >= 200 && code < 300:
				ok += n
			case code == 429 || code == 503:
				refused += n
			case code != 0:
				other += n
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.0f\t%.2f\t\n", r.Scenario, r.Requests, ok, refused, other,
			r.NoRetry, r.Unanswer, r.LogLines, r.Goroutine, r.RSSMiB, float64(r.ProbeP99)/1e6)
	}
	tw.Flush()
	fmt.Fprintln(out)
	for _, r := range rep.Rows {
		if len(r.Extra) > 0 {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
				parts = append(parts, fmt.Sprintf("%s %v", k, r.Extra[k]))
			}
			fmt.Fprintf(out, "%s: %s\n", r.Scenario, strings.Join(parts, ", "))
		}
		for _, p := range r.Problems {
			fmt.Fprintf(out, "%s: PROBLEM %s\n", r.Scenario, p)
		}
	}
	fmt.Fprintln(out, "sequoia runs in this process: a panic or an exit would have ended the suite before this line")
}
