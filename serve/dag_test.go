package serve

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) do(method, path, body string, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c apiClient) want(status int, method, path, body string, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	resp, b := c.do(method, path, body, hdr...)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, status)
	}
	return resp, b
}

// apiTokens writes a SEQUOIA_API_TOKEN_FILE with the callers ops and
// shop, and returns its variable.
func apiTokens(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte("# name token\nops "+opsToken+"\nshop "+shopToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "SEQUOIA_API_TOKEN_FILE=" + f
}

const (
	opsToken  = "ops-0123456789abcdef"
	shopToken = "shop-0123456789abcdef"
)

// asOps is the Authorization of the caller ops.
var asOps = []string{"Authorization", "Bearer " + opsToken}

const threeNodeDAG = `{"start":"a","nodes":{
	"a":{"kind":"task","function":"a","next":"p"},
	"p":{"kind":"parallel","branches":["b","c"]},
	"b":{"kind":"task","function":"b","input":"/input"},
	"c":{"kind":"task","function":"c","input":"/input"}}}`

func TestDAGAPI(t *testing.T) {
	emu, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 50})
	defer g.openAll()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "fromdir.json"), []byte(`{"start":"x","nodes":{"x":{"kind":"task","function":"x"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_MAX_CONCURRENCY=10", "SEQUOIA_DAG_DIR="+dir, "SEQUOIA_DAG_MAX_NODE_BYTES=1000", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}

	c.want(201, "PUT", "/sequoia/v1/dags/three", threeNodeDAG, asOps...)
	c.want(200, "PUT", "/sequoia/v1/dags/three", threeNodeDAG, asOps...)
	if _, b := c.want(200, "GET", "/sequoia/v1/dags/three", ""); b != threeNodeDAG {
		t.Errorf("GET returned %s", b)
	}
	c.want(200, "GET", "/sequoia/v1/dags/fromdir", "")
	if _, b := c.want(200, "GET", "/sequoia/v1/dags", ""); b != `{"dags":["fromdir","three"]}` {
		t.Errorf("GET /sequoia/v1/dags = %s", b)
	}

	// Synchronous: the output of the last node, here the parallel's array.
	resp, b := c.want(200, "POST", "/sequoia/v1/dags/three/runs", `{"input":{"k":7}}`)
	var out []struct {
		Function string          `json:"function"`
		Input    json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal([]byte(b), &out); err != nil || len(out) != 2 || out[0].Function != "b" || out[1].Function != "c" || string(out[1].Input) != `{"k":7}` {
		t.Errorf("sync run answered %s (%v)", b, err)
	}
	if resp.Header.Get("Location") == "" || resp.Header.Get("X-Sequoia-Run-Id") == "" {
		t.Errorf("sync run headers: %v", resp.Header)
	}

	// Asynchronous: 202, then the run's state at its Location.
	resp, _ = c.want(202, "POST", "/sequoia/v1/dags/three/runs", `{"input":{"k":8}}`, "Prefer", "respond-async")
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/sequoia/v1/runs/run-") {
		t.Fatalf("Location %q", loc)
	}
	var snap struct {
		Status string                     `json:"status"`
		Output json.RawMessage            `json:"output"`
		Nodes  map[string]json.RawMessage `json:"nodes"`
	}
	for snap.Status == "" || snap.Status == "running" {
		_, b = c.want(200, "GET", loc, "")
		if err := json.Unmarshal([]byte(b), &snap); err != nil {
			t.Fatal(err)
		}
	}
	if snap.Status != "succeeded" || len(snap.Nodes) != 4 || !strings.Contains(string(snap.Output), `"input":{"k":8}`) {
		t.Errorf("async run: %s", b)
	}
	c.want(409, "DELETE", loc, "", asOps...) // already ended

	// A failing node: 502 naming it.
	_, b = c.want(502, "POST", "/sequoia/v1/dags/three/runs", `{"input":{"fail":true}}`)
	if !strings.Contains(b, `"node":"a"`) {
		t.Errorf("failed run answered %s", b)
	}

	// Cancel an asynchronous run while its first node runs: the gate
	// holds node a's call, so the run is still going when the DELETE
	// comes, and its call outlasts the DELETE's wait (202, still
	// running); once the call ends, the run ends canceled and nothing more
	// runs.
	ranB, ranC := emu.Stats().Functions["b"].Invocations, emu.Stats().Functions["c"].Invocations
	resp, _ = c.want(202, "POST", "/sequoia/v1/dags/three/runs", `{"input":{"label":"cancel-a","hold":true}}`, "Prefer", "respond-async")
	loc = resp.Header.Get("Location")
	eventually(t, "node a's call held at the platform", func() bool { return g.held() == 1 })
	if _, b = c.want(202, "DELETE", loc, "", asOps...); !strings.Contains(b, `"status":"running"`) {
		t.Errorf("cancel with the call in flight answered %s", b)
	}
	g.release(t, "cancel-a")
	eventually(t, "the canceled run to end", func() bool {
		_, b = c.want(200, "GET", loc, "")
		return !strings.Contains(b, `"status":"running"`)
	})
	if !strings.Contains(b, `"status":"canceled"`) {
		t.Errorf("canceled run ended as %s", b)
	}
	if st := emu.Stats().Functions; st["b"].Invocations != ranB || st["c"].Invocations != ranC {
		t.Errorf("nodes after a canceled one ran: b %d, c %d times", st["b"].Invocations-ranB, st["c"].Invocations-ranC)
	}
	c.want(409, "DELETE", loc, "", asOps...) // already ended

	// Bad input.
	before := emu.Stats().Invocations
	_, b = c.want(400, "PUT", "/sequoia/v1/dags/bad", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"b"},"b":{"kind":"task","function":"f","next":"a"}}}`, asOps...)
	if !strings.Contains(b, "cycle") || !strings.Contains(b, `node \"a\"`) {
		t.Errorf("cycle answered %s", b)
	}
	_, b = c.want(400, "PUT", "/sequoia/v1/dags/bad", `{"start":"a","nodes":{"a":{"kind":"fork"}}}`, asOps...)
	if !strings.Contains(b, `unknown kind`) {
		t.Errorf("unknown kind answered %s", b)
	}
	c.want(404, "POST", "/sequoia/v1/dags/nosuch/runs", `{}`)
	c.want(404, "GET", "/sequoia/v1/runs/run-nosuch", "")
	c.want(413, "POST", "/sequoia/v1/dags/three/runs", `{"input":"`+strings.Repeat("x", 1000)+`"}`)
	c.want(400, "POST", "/sequoia/v1/dags/three/runs", `{"inptu":1}`)
	c.want(405, "PATCH", "/sequoia/v1/dags/three", "")
	c.want(404, "GET", "/sequoia/v1/other", "")

	// A deadline the critical path could never meet, even alone: refused
	// for good (422, no Retry-After), nothing runs.
	resp, b = c.want(422, "POST", "/sequoia/v1/dags/three/runs", `{"input":{},"deadline_ms":1}`)
	if resp.Header.Get("Retry-After") != "" || !strings.Contains(b, "deadline_too_short") {
		t.Errorf("a hopeless run: Retry-After %q, %s", resp.Header.Get("Retry-After"), b)
	}
	if got := emu.Stats().Invocations; got != before {
		t.Errorf("bad inputs and a refused run made %d invocations", got-before)
	}

	c.want(204, "DELETE", "/sequoia/v1/dags/three", "", asOps...)
	c.want(404, "GET", "/sequoia/v1/dags/three", "")
}

// TestBadDAGDirStopsStartUp: an invalid DAG in SEQUOIA_DAG_DIR stops
// start-up with an error naming the file, the node and the problem.
func TestBadDAGDirStopsStartUp(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"gone"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFrom([]string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(), "SEQUOIA_DAG_DIR=" + dir})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Close()
		t.Fatal("newServer accepted a broken DAG")
	}
	for _, want := range []string{"SEQUOIA_DAG_DIR", "broken.json", `node "a"`, `missing node "gone"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestDAGNodesFollowPolicy: in `sequoia serve`, a function the policy
// denies stays denied when a DAG run invokes it: the run fails at that node
// with 502 node_failed carrying status 403 and the policy's reason, and the
// platform never runs it; the node before it ran. Both are counted in the
// per-function request metrics as requests would be (the denied one as
// policy_denied), and the denied node is a "denied" task invocation.
func TestDAGNodesFollowPolicy(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 50})
	dir := copyShipped(t, edit(t, "deny.rego", "deny_functions := {}", `deny_functions := {"c": "under audit"}`))
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_MAX_CONCURRENCY=10", "SEQUOIA_POLICY_DIR="+dir, "SEQUOIA_POLICY_TIMEOUT=1m", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	c.want(201, "PUT", "/sequoia/v1/dags/three", threeNodeDAG, asOps...)
	_, b := c.want(502, "POST", "/sequoia/v1/dags/three/runs", `{"input":{"k":1}}`)
	var f struct {
		Node   string `json:"node"`
		Status int    `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal([]byte(b), &f); err != nil || f.Node != "c" || f.Status != 403 || !strings.Contains(f.Error, "under audit") {
		t.Errorf("run answered %s; want node c failed with 403 and the policy's reason", b)
	}
	st := emu.Stats().Functions
	if st["a"].Invocations != 1 || st["c"].Invocations != 0 {
		t.Errorf("platform ran a %d, c %d times; want 1, 0", st["a"].Invocations, st["c"].Invocations)
	}
	_, m := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, want := range []string{
		`sequoia_requests_total{function="a",outcome="forwarded"} 1`,
		`sequoia_invocation_duration_seconds_count{function="a"} 1`,
		`sequoia_requests_total{function="c",outcome="policy_denied"} 1`,
		`sequoia_dag_task_invocations_total{outcome="denied"} 1`,
	} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestDAGWritesNeedAuthorization replays the attack that left the DAG API
// open: a caller without credentials replaced another tenant's DAG with one
// whose task is "steal", and the victim's next run sent its body and
// Authorization there. Every unauthenticated write is refused with 401 and
// changes nothing; a caller with a token may not replace or delete another
// caller's DAG (the shipped dags.rego); task names the platform's invoke
// API would not route as one function are refused; a run is cancelled
// only by a token or the Authorization it was started with.
func TestDAGWritesNeedAuthorization(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 50})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_HTTP_ROUTE=path",
		"SEQUOIA_MAX_CONCURRENCY=10", apiTokens(t))
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	asShop := []string{"Authorization", "Bearer " + shopToken}
	const checkout = `{"start":"pay","nodes":{"pay":{"kind":"task","function":"pay"}}}`
	const steal = `{"start":"x","nodes":{"x":{"kind":"task","function":"steal"}}}`
	c.want(201, "PUT", "/sequoia/v1/dags/checkout", checkout, asShop...)

	for _, hdr := range [][]string{
		nil,
		{"Authorization", "Bearer wrong-token-0123456789"},
		{"Authorization", "Bearer " + shopToken + "x"},
		{"Authorization", "Basic " + shopToken},
		{"Authorization", shopToken},
		{"X-Api-Key", shopToken},
	} {
		for _, m := range []string{"PUT", "DELETE"} {
			resp, b := c.want(401, m, "/sequoia/v1/dags/checkout", steal, hdr...)
			if resp.Header.Get("WWW-Authenticate") == "" || !strings.Contains(b, "unauthorized") {
				t.Errorf("%s with %v: %v %s, want a Bearer challenge", m, hdr, resp.Header, b)
			}
		}
		c.want(401, "PUT", "/sequoia/v1/dags/new", steal, hdr...)
	}
	c.want(404, "GET", "/sequoia/v1/dags/new", "")

	// Another caller with a token: the policy keeps the DAG its owner's.
	_, b := c.want(403, "PUT", "/sequoia/v1/dags/checkout", steal, asOps...)
	if !strings.Contains(b, `belongs to \"shop\"`) {
		t.Errorf("replace by another caller answered %s", b)
	}
	c.want(403, "DELETE", "/sequoia/v1/dags/checkout", "", asOps...)
	if _, b := c.want(200, "GET", "/sequoia/v1/dags/checkout", ""); b != checkout {
		t.Fatalf("the DAG changed: %s", b)
	}
	c.want(200, "POST", "/sequoia/v1/dags/checkout/runs", `{"input":{}}`, "Authorization", "Bearer victim")
	if st := emu.Stats().Functions; st["steal"].Invocations != 0 || st["pay"].Invocations != 1 {
		t.Errorf("platform ran steal %d and pay %d times, want 0 and 1", st["steal"].Invocations, st["pay"].Invocations)
	}

	// Task names: one function of the platform's invoke API, no more.
	for _, fn := range []string{"_stats", "a/b", ".well-known", "a%2fb"} {
		_, b := c.want(400, "PUT", "/sequoia/v1/dags/odd", `{"start":"x","nodes":{"x":{"kind":"task","function":"`+fn+`"}}}`, asShop...)
		if !strings.Contains(b, `node \"x\"`) {
			t.Errorf("function %q answered %s", fn, b)
		}
	}

	// Cancelling a run: its starter or a token.
	resp, _ := c.want(202, "POST", "/sequoia/v1/dags/checkout/runs", `{"input":{"exec_ms":500}}`,
		"Prefer", "respond-async", "Authorization", "Bearer victim")
	loc := resp.Header.Get("Location")
	c.want(401, "DELETE", loc, "")
	c.want(401, "DELETE", loc, "", "Authorization", "Bearer other")
	// 200 once the call in flight ended, 202 if it took longer than the
	// cancel waits: either way, cancelled.
	if resp, b := c.do("DELETE", loc, "", "Authorization", "Bearer victim"); resp.StatusCode/100 != 2 {
		t.Errorf("cancel by its starter answered %d %s", resp.StatusCode, b)
	}

	c.want(204, "DELETE", "/sequoia/v1/dags/checkout", "", asShop...)
	_, m := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	if !strings.Contains(m, `sequoia_rejected_requests_total{reason="unauthorized"} 20`+"\n") {
		t.Errorf("/metrics does not count the 20 unauthenticated writes:\n%s", grepLines(m, "rejected"))
	}
}

// TestDAGWritesOffWithoutTokens: with no SEQUOIA_API_TOKEN_FILE, DAG writes
// are refused, whatever the caller sends; DAGs come from SEQUOIA_DAG_DIR.
func TestDAGWritesOffWithoutTokens(t *testing.T) {
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr)
	c := apiClient{t, "http://" + s.dataLn.Addr().String()}
	for _, m := range []string{"PUT", "DELETE"} {
		if _, b := c.want(403, m, "/sequoia/v1/dags/d", threeNodeDAG, asOps...); !strings.Contains(b, "SEQUOIA_API_TOKEN_FILE") {
			t.Errorf("%s answered %s", m, b)
		}
	}
	if _, b := c.want(200, "GET", "/sequoia/v1/dags", ""); b != `{"dags":[]}` {
		t.Errorf("dags = %s", b)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
