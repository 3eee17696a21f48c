package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sequoia-qos/sequoia/config"
)

// The files whose metric names must exist in the binary.
var metricUsers = []string{
	"grafana/sequoia.json",
	chartDir + "/files/sequoia-rules.yaml",
	"kustomize/overlays/gateway/prometheusrule.yaml",
}

// metricName finds sequoia's metric names in PromQL, descriptions and
// legends alike: every mention must be a real metric.
var metricName = regexp.MustCompile(`\bsequoia_[a-zA-Z0-9_]+`)

// optional are variables that turn on parts of sequoia that register
// metrics of their own; each is set when the configuration has it.
var optional = map[string]func() string{
	"SEQUOIA_ADAPTIVE":   func() string { return "true" },
	"SEQUOIA_PREWARM":    func() string { return "true" },
	"SEQUOIA_POLICY_DIR": func() string { p, _ := filepath.Abs("kustomize/base/policies"); return p },
	"SEQUOIA_SLO_FILE":   func() string { p, _ := filepath.Abs("slo/objectives.json"); return p },
}

// scrapeBinary builds sequoia from the main module, starts `sequoia
// emulate` and `sequoia serve` in front of it on loopback (with the
// optional parts on), sends one invocation through (a cold start at the
// emulator), and returns the
// sample names /metrics exposes (a histogram's _bucket, _sum and _count
// included) and the exposition text. Series of a labelled metric appear
// once bound, so a metric the dashboard or the rules use must be bound at
// start-up or by a first invocation.
func scrapeBinary(t *testing.T) (map[string]bool, string) {
	t.Helper()
	bin := sequoiaBinary(t)

	emu := start(t, exec.Command(bin, "emulate", "--listen", "127.0.0.1:0", "--exec", "1ms", "--cold-start", "0s"), false)
	platform := emu.waitFor(t, regexp.MustCompile(`listening on (http://[0-9.:]+)`))[1]

	known := map[string]bool{}
	for _, v := range config.Variables() {
		known[v.Name] = true
	}
	env := []string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(), "SEQUOIA_BACKEND=openwhisk",
		"SEQUOIA_BACKEND_URL=" + platform, "SEQUOIA_SHUTDOWN_TIMEOUT=1s", "SEQUOIA_LOG_FORMAT=json"}
	for name, v := range optional {
		if known[name] {
			env = append(env, name+"="+v())
		} else {
			t.Logf("%s is not a variable yet: the part it turns on is not scraped", name)
		}
	}
	serve := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.Prefix) {
			serve.Env = append(serve.Env, kv)
		}
	}
	serve.Env = append(serve.Env, env...)
	srv := start(t, serve, true)
	line := srv.waitFor(t, regexp.MustCompile(`"msg":"sequoia serving".*`))[0]
	addrs := regexp.MustCompile(`"(listen|admin)":"([^"]+)"`).FindAllStringSubmatch(line, -1)
	addr := map[string]string{}
	for _, a := range addrs {
		addr[a[1]] = a[2]
	}
	if addr["listen"] == "" || addr["admin"] == "" {
		t.Fatalf("no listen and admin addresses in %s", line)
	}

	res, err := http.Post("http://"+addr["listen"]+"/api/v1/namespaces/guest/actions/hello?blocking=true&result=true",
		"application/json", strings.NewReader(`{"exec_ms": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("invocation through sequoia: %d %s", res.StatusCode, body)
	}
	res, err = http.Get("http://" + addr["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	exposed := map[string]bool{}
	for line := range strings.SplitSeq(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			exposed[line[:i]] = true
		}
	}
	return exposed, string(text)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// sequoiaBinary builds sequoia from the main module once per test run.
func sequoiaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		gobin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("the go command is needed to build sequoia: %w", err)
			return
		}
		root, err := filepath.Abs("..")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(tmpDir, "sequoia")
		build := exec.Command(gobin, "build", "-o", binPath, "./cmd/sequoia")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sequoia: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a started child process whose output is read line by line.
type proc struct {
	lines chan string
}

// start starts cmd, stopping it (SIGTERM, then wait) when the test ends.
func start(t *testing.T, cmd *exec.Cmd, stderr bool) *proc {
	t.Helper()
	var out io.ReadCloser
	var err error
	if stderr {
		out, err = cmd.StderrPipe()
	} else {
		out, err = cmd.StdoutPipe()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{lines: make(chan string, 64)}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits any more: drop
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return p
}

// waitFor reads output until a line matches re; the process ending first
// fails the test.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var seen []string
	for line := range p.lines {
		if m := re.FindStringSubmatch(line); m != nil {
			return m
		}
		seen = append(seen, line)
	}
	t.Fatalf("the process ended before printing %q; it printed:\n%s", re, strings.Join(seen, "\n"))
	return nil
}

func TestDashboardAndRulesUseRegisteredMetrics(t *testing.T) {
	exposed, text := scrapeBinary(t)
	for _, name := range []string{"sequoia_in_flight", "sequoia_requests_total", "sequoia_queue_wait_seconds_bucket", "go_goroutines"} {
		if !exposed[name] {
			t.Errorf("the scrape lacks %s: the scrape itself is broken", name)
		}
	}
	// The policies the manifests ship load in the real engine.
	if m := regexp.MustCompile(`(?m)^sequoia_policy_reloads_total\{result="failed"\} (\S+)$`).FindStringSubmatch(text); m != nil && m[1] != "0" {
		t.Errorf("sequoia failed to load kustomize/base/policies: sequoia_policy_reloads_total{result=\"failed\"} %s", m[1])
	}
	total := 0
	for _, f := range metricUsers {
		used := metricName.FindAllString(string(readFile(t, f)), -1)
		if len(used) == 0 {
			t.Errorf("%s uses no sequoia metric", f)
		}
		total += len(used)
		for _, name := range slices.Compact(slices.Sorted(slices.Values(used))) {
			// A histogram's own name, as prose names it, has no samples.
			if !exposed[name] && !exposed[name+"_bucket"] {
				t.Errorf("%s uses %s, which sequoia does not expose", f, name)
			}
		}
	}
	if total == 0 {
		t.Fatal("no metric uses found")
	}
}

// The dashboard is a Grafana dashboard: every panel has a unique id, a
// position and, unless it is a row, queries on the data source variable.
func TestDashboard(t *testing.T) {
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID         int                 `json:"id"`
			Type       string              `json:"type"`
			Title      string              `json:"title"`
			GridPos    *struct{ W, H int } `json:"gridPos"`
			Datasource json.RawMessage     `json:"datasource"`
			Targets    []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, "grafana/sequoia.json"), &dash); err != nil {
		t.Fatalf("grafana/sequoia.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard needs a title, a uid and panels")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no position", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if !strings.Contains(string(p.Datasource), "${datasource}") || len(p.Targets) == 0 {
			t.Errorf("panel %q: want targets on the ${datasource} variable", p.Title)
		}
		for _, q := range p.Targets {
			if !metricName.MatchString(q.Expr) || strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") ||
				strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") {
				t.Errorf("panel %q query %s: %q is not a query on a sequoia metric with balanced brackets", p.Title, q.RefID, q.Expr)
			}
		}
	}
}
