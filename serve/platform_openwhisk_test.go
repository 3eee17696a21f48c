package serve

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// owClientDir holds the official OpenWhisk JavaScript client, installed by
// `npm ci --prefix loadtest/owclient`.
var owClientDir = filepath.Join("..", "loadtest", "owclient")

// needOWClient skips the test when node or the client is missing; tests
// call it before starting anything.
func needOWClient(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the OpenWhisk JavaScript client tests need Node.js")
	}
	if _, err := os.Stat(filepath.Join(owClientDir, "node_modules", "openwhisk")); err != nil {
		t.Skip("the OpenWhisk JavaScript client is not installed: run `npm ci --prefix loadtest/owclient`")
	}
	return node
}

// owClient runs loadtest/owclient/invoke.js in mode against apihost and
// decodes what it prints.
func owClient(t *testing.T, apihost, action, mode string, env ...string) map[string]any {
	t.Helper()
	node := needOWClient(t)
	cmd := exec.Command(node, "invoke.js", mode)
	cmd.Dir = owClientDir
	cmd.Env = append(os.Environ(), "OW_APIHOST=http://"+apihost,
		"OW_AUTH=23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP",
		"OW_NAMESPACE=guest", "OW_ACTION="+action)
	cmd.Env = append(cmd.Env, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var got map[string]any
	if jerr := json.Unmarshal(out, &got); jerr != nil {
		t.Fatalf("invoke.js %s: %v: %s %s", mode, err, out, stderr.String())
	}
	if err != nil {
		t.Fatalf("invoke.js %s: %v: %v", mode, err, got)
	}
	return got
}

// TestOpenWhiskJSClient: the official client, only its apihost changed,
// invokes blocking and non-blocking through sequoia.
func TestOpenWhiskJSClient(t *testing.T) {
	needOWClient(t)
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 8, ExecTime: 5 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=8", "SEQUOIA_BACKGROUND_ESTIMATE=50ms")
	addr := s.dataLn.Addr().String()

	got := owClient(t, addr, "hello", "blocking")
	if r, _ := got["result"].(map[string]any); r["function"] != "guest/hello" {
		t.Errorf("blocking result: %v", got)
	}
	got = owClient(t, addr, "tools/hello", "activation")
	if a, _ := got["activation"].(map[string]any); a["activationId"] == "" || a["namespace"] != "guest/tools" {
		t.Errorf("blocking activation: %v", got)
	}
	got = owClient(t, addr, "later", "nonblocking")
	if a, _ := got["activation"].(map[string]any); a["activationId"] == nil || a["activationId"] == "" {
		t.Errorf("non-blocking: %v", got)
	}
	waitFor(func() bool { return emu.Stats().Functions["guest/later"].Completed == 1 })
	// The 202 held a slot for SEQUOIA_BACKGROUND_ESTIMATE, then gave it back.
	waitFor(func() bool { return s.plat.limit.Held() == 0 })
	if n := s.sched.Limit(); n != 8 {
		t.Errorf("scheduler limit %d after the background hold, want 8", n)
	}
}

// TestOpenWhiskJSClientBurst: a burst of blocking invocations far over the
// platform's limit, through a sequoia whose ceiling is above it: no call
// fails.
func TestOpenWhiskJSClientBurst(t *testing.T) {
	needOWClient(t)
	const limit, burst = 8, 150
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: limit, ExecTime: 15 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=12")
	got := owClient(t, s.dataLn.Addr().String(), "burst", "burst", "OW_BURST="+itoa(burst))
	if ok, _ := got["ok"].(float64); int(ok) != burst {
		t.Errorf("%v of %d calls succeeded; errors: %v", got["ok"], burst, got["errors"])
	}
	st := emu.Stats()
	if st.PeakConcurrency > limit {
		t.Errorf("peak %d over the platform's limit %d", st.PeakConcurrency, limit)
	}
	t.Logf("platform throttles absorbed: %d, adaptive limit now %d", st.Throttles, s.plat.limit.Limit())
}

// TestOpenWhiskJSClientDecodesSequoiaErrors: sequoia's own 429 reaches the
// client as an OpenWhisk error with sequoia's message.
func TestOpenWhiskJSClientDecodesSequoiaErrors(t *testing.T) {
	needOWClient(t)
	// The gate holds the slow call, and with it the only slot, while node
	// starts and the client is refused.
	_, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 5})
	defer g.openAll()
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_CAPACITY=0")
	addr := s.dataLn.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw := `{"label":"slow","hold":true}`
		send(t, addr, "POST /api/v1/namespaces/guest/actions/slow?blocking=true HTTP/1.1\r\nHost: x\r\n"+
			"Content-Type: application/json\r\nContent-Length: "+itoa(len(raw))+"\r\n\r\n"+raw)
	}()
	eventually(t, "the slow call held at the platform", func() bool { return g.held() == 1 })
	got := owClient(t, addr, "other", "error")
	e, _ := got["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error: %v", got)
	}
	if code, _ := e["statusCode"].(float64); code != 429 || !strings.Contains(e["message"].(string), "queue is full") {
		t.Errorf("error %v, want 429 with sequoia's message", e)
	}
	if body, _ := e["body"].(map[string]any); body["code"] != "queue_full" {
		t.Errorf("error body %v, want OpenWhisk's {error, code}", e["body"])
	}
	g.openAll()
	<-done
}
