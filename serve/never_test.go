package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestChainThatNeverFits: a chain whose deadline could never hold its
// steps, at the durations sequoia has observed, is told so with 422 and no
// Retry-After, while one refused for the work ahead of it gets 429 and a
// Retry-After.
func TestChainThatNeverFits(t *testing.T) {
	_, addr := startEmulator(t, emulator.Config{Limit: 4, ExecTime: 200 * time.Millisecond, ColdStart: 0})
	s := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+addr, "SEQUOIA_MAX_CONCURRENCY=1")
	url := "http://" + s.DataAddr() + "/api/v1/namespaces/guest/actions/slow?blocking=true&result=true"
	post := func(headers ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", url, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// One invocation observed: a step takes 200ms or more.
	if resp := post(); resp.StatusCode != 200 {
		t.Fatalf("first call: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}

	resp := post("X-Sequoia-Deadline-Ms", "50", "X-Sequoia-Chain-Steps", "3")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct{ Error, Code string }
	_ = json.Unmarshal(body, &answer)
	if resp.StatusCode != http.StatusUnprocessableEntity || answer.Code != "deadline_too_short" || resp.Header.Get("Retry-After") != "" ||
		!strings.Contains(answer.Error, "can never finish within its deadline") {
		t.Errorf("a 50ms deadline for three 200ms steps: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	// A chain that fits alone (three steps in a 5s deadline) but not
	// behind a long one is refused with a Retry-After: the long chain's
	// 100 steps hold the only slot's timeline for 20s or more.
	long := post("X-Sequoia-Deadline-Ms", "600000", "X-Sequoia-Chain-Steps", "100", "X-Sequoia-Chain-Id", "long")
	long.Body.Close()
	resp = post("X-Sequoia-Deadline-Ms", "5000", "X-Sequoia-Chain-Steps", "3")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "chain_refused") {
		t.Errorf("a chain behind 100 booked steps: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}
