package serve

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/policies"
)

type statusDoc struct {
	Policy struct {
		Version   string   `json:"version"`
		Source    string   `json:"source"`
		Files     []string `json:"files"`
		LastError string   `json:"last_error"`
	} `json:"policy"`
}

func policyStatus(t *testing.T, s *Server) statusDoc {
	t.Helper()
	code, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	if code != 200 {
		t.Fatalf("status: %d", code)
	}
	var st statusDoc
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestPolicyDenyEndToEnd runs `sequoia serve` on a copy of the shipped
// policies whose deny policy names one function: that function is
// answered 403 with the policy's reason and never reaches the platform;
// the others are served. The deny list is then edited while serving (hot
// reload), and a broken edit is refused without touching the running
// policy.
func TestPolicyDenyEndToEnd(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 10, ExecTime: time.Millisecond})
	deny := func(fns string) func(name, src string) string {
		return func(name, src string) string {
			if name == "deny.rego" {
				return strings.Replace(src, "deny_functions := {}", "deny_functions := "+fns, 1)
			}
			return src
		}
	}
	dir := copyShipped(t, deny(`{"blocked": "under investigation"}`))
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_POLICY_DIR="+dir,
		"SEQUOIA_POLICY_TIMEOUT=1m") // a timeout would allow: not what this test is about
	invoke := func(fn string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+s.dataLn.Addr().String()+"/"+fn+"/", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Error, Code string
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Code + ": " + body.Error
	}

	code, body := invoke("blocked")
	if code != 403 || body != `policy_denied: sequoia: function "blocked" is denied: under investigation` {
		t.Errorf("blocked: %d %q", code, body)
	}
	if code, body := invoke("allowed"); code != 200 {
		t.Errorf("allowed: %d %q", code, body)
	}
	st := emu.Stats()
	if _, ok := st.Functions["blocked"]; ok || st.Invocations != 1 {
		t.Errorf("platform saw %d invocations (%v), want only the allowed one", st.Invocations, st.Functions)
	}
	first := policyStatus(t, s)
	if first.Policy.Source != dir || first.Policy.Version == "" || first.Policy.LastError != "" {
		t.Errorf("status: %+v", first.Policy)
	}

	// A broken edit: refused, the running policy still denies.
	rego := filepath.Join(dir, "deny.rego")
	src, _ := os.ReadFile(rego)
	if err := os.WriteFile(rego, []byte(strings.Replace(string(src), "deny_tenants := {}", "deny_tenants := {", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var st2 statusDoc
	for st2 = policyStatus(t, s); st2.Policy.LastError == ""; st2 = policyStatus(t, s) {
		time.Sleep(20 * time.Millisecond)
	}
	if st2.Policy.Version != first.Policy.Version || !strings.HasPrefix(st2.Policy.LastError, "deny.rego:") {
		t.Errorf("after a broken edit: %+v", st2.Policy)
	}
	if code, _ := invoke("blocked"); code != 403 {
		t.Errorf("blocked after a broken edit: %d", code)
	}

	// A good edit: the new list goes live.
	if err := os.WriteFile(rego, []byte(strings.Replace(string(src), `{"blocked": "under investigation"}`, `{"allowed": "retired"}`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for policyStatus(t, s).Policy.Version == first.Policy.Version {
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := invoke("blocked"); code != 200 {
		t.Errorf("blocked after the edit: %d, want 200", code)
	}
	if code, body := invoke("allowed"); code != 403 || !strings.Contains(body, "retired") {
		t.Errorf("allowed after the edit: %d %q, want 403", code, body)
	}
}

func TestPolicyBadDirStopsStartup(t *testing.T) {
	dir := copyShipped(t, func(name, src string) string {
		if name == "caps.rego" {
			return src + "\ncontribution.caps_gold := {\"class\": \"gold\"}\n"
		}
		return src
	})
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 1})
	cfgErr := func() error {
		s, err := newServerFromEnv(t, "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_POLICY_DIR="+dir)
		if s != nil {
			s.Close()
		}
		return err
	}()
	if cfgErr == nil || !strings.Contains(cfgErr.Error(), `SEQUOIA_POLICY_DIR`) || !strings.Contains(cfgErr.Error(), `"gold" is not a class`) {
		t.Errorf("err = %v", cfgErr)
	}
}

// newServerFromEnv builds (but does not run) a server from env on top of
// loopback listeners.
func newServerFromEnv(t *testing.T, env ...string) (*Server, error) {
	t.Helper()
	cfg, err := config.LoadFrom(append([]string{
		"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
	}, env...))
	if err != nil {
		return nil, err
	}
	return New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestPolicyChainDeadlineEndToEnd: the shipped functions policy gives a
// headerless chain of one function a deadline it cannot meet (its table
// says 5ms; an invocation is estimated at 100ms), so the scheduler's
// deadline-aware admission refuses it at entry (429) and it never reaches
// the platform; a chain of another function, with no table entry and no
// deadline, is served. The decision reaches the scheduler through
// Invocation.Budget.
func TestPolicyChainDeadlineEndToEnd(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 10, ExecTime: time.Millisecond})
	dir := copyShipped(t, func(name, src string) string {
		if name == "functions.rego" {
			return strings.Replace(src, "functions_table := {}", `functions_table := {"tight": {"chain_deadline_ms": 5, "chain_steps": 3}}`, 1)
		}
		return src
	})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_POLICY_DIR="+dir, "SEQUOIA_POLICY_TIMEOUT=1m",
		"SEQUOIA_DEFAULT_ESTIMATE=100ms")
	post := func(fn string) (int, string) {
		t.Helper()
		resp, err := http.Post("http://"+s.dataLn.Addr().String()+"/"+fn+"/", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Code
	}
	if code, what := post("tight"); code != 429 || what != "chain_refused" {
		t.Errorf("tight: %d %s, want 429 chain_refused", code, what)
	}
	if code, what := post("loose"); code != 200 {
		t.Errorf("loose: %d %s, want 200", code, what)
	}
	st := emu.Stats()
	if _, ok := st.Functions["tight"]; ok || st.Invocations != 1 {
		t.Errorf("platform saw %d invocations (%v), want only loose's", st.Invocations, st.Functions)
	}
}

// TestPolicyShedEndToEnd: with the shed policy on, new batch work is
// refused (403, the policy's reason) while interactive callers queue
// longer than the threshold, as the live snapshot (refreshed from the
// metrics every 100ms) shows; before the interactive flood, batch work is
// served. Refused batch requests never reach the platform.
func TestPolicyShedEndToEnd(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 10, ExecTime: 60 * time.Millisecond})
	dir := copyShipped(t, func(name, src string) string {
		if name == "shed.rego" {
			src = strings.Replace(src, "shed_enabled := false", "shed_enabled := true", 1)
			src = strings.Replace(src, "shed_threshold_ms := 200", "shed_threshold_ms := 30", 1)
		}
		return src
	})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_POLICY_DIR="+dir, "SEQUOIA_POLICY_TIMEOUT=1m",
		"SEQUOIA_POLICY_REFRESH=100ms", "SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_TIMEOUT=1m")
	post := func(fn, class string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+s.dataLn.Addr().String()+"/"+fn+"/", strings.NewReader("{}"))
		req.Header.Set("X-Sequoia-Priority", class)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	if code, msg := post("report", "batch"); code != 200 {
		t.Fatalf("batch before the flood: %d %s", code, msg)
	}

	// The flood: 30 interactive requests through one slot, 60ms each.
	var flood sync.WaitGroup
	for range 30 {
		flood.Go(func() {
			if code, msg := post("checkout", "interactive"); code != 200 {
				t.Errorf("interactive: %d %s", code, msg)
			}
		})
	}
	floodDone := make(chan struct{})
	go func() { flood.Wait(); close(floodDone) }()
	served, shed := 1, 0
	var mu sync.Mutex
	var batch sync.WaitGroup
	for done := false; !done; {
		select {
		case <-floodDone:
			done = true
		case <-time.After(50 * time.Millisecond):
			batch.Go(func() {
				code, msg := post("report", "batch")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case code == 200:
					served++
				case code == 403 && strings.Contains(msg, "batch work is shed while the interactive queue wait p99"):
					shed++
				default:
					t.Errorf("batch during the flood: %d %s", code, msg)
				}
			})
		}
	}
	batch.Wait()
	if shed == 0 {
		t.Errorf("no batch request was shed during the interactive flood (%d served)", served)
	}
	if got := emu.Stats().Functions["report"].Invocations; got != int64(served) {
		t.Errorf("the platform ran report %d times, want the %d served (none of the %d shed)", got, served, shed)
	}
	t.Logf("batch during the flood: %d shed, %d served", shed, served-1)
}

// copyShipped writes the shipped policies into a new directory, with
// edit applied to each file's source.
func copyShipped(t *testing.T, edit func(name, src string) string) string {
	t.Helper()
	dir := t.TempDir()
	if err := policies.CopyTo(dir, edit); err != nil {
		t.Fatal(err)
	}
	return dir
}
