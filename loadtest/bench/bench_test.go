package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/loadtest"
)

// TestBenchChainsSmall runs `sequoia bench chains --json` on a small
// workload: every target has a row, sequoia's admitted chains all complete
// and its refused ones never reach the platform.
func TestBenchChainsSmall(t *testing.T) {
	var out bytes.Buffer
	err := runBenchChains(context.Background(), []string{
		"-chains", "40", "-limit", "4", "-exec", "10ms", "-deadline", "1s",
		"-haproxy", "/nonexistent/haproxy", "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(rep.Rows) != 3 || rep.Bound != 200 {
		t.Fatalf("rows %d, bound %d; want 3 rows and a bound of 200 (4 × 1s ÷ 20ms)", len(rep.Rows), rep.Bound)
	}
	byTarget := map[string]benchRow{}
	for _, r := range rep.Rows {
		byTarget[r.Target] = r
	}
	if h := byTarget["haproxy"]; !strings.Contains(h.Skipped, "missing") {
		t.Errorf("haproxy row = %+v, want skipped as missing", h)
	}
	s := byTarget["sequoia"]
	if s.Dropped != 0 || s.Completed == 0 || s.Completed+s.Refused+s.Failed != 40 {
		t.Errorf("sequoia row = %+v: want no drop and some completed", s)
	}
	if s.PlatformThrottles != 0 || s.PlatformInvocations != int64(s.Completed*2) {
		t.Errorf("sequoia: platform ran %d invocations (%d throttled) for %d completed chains: want exactly 2 each, none throttled",
			s.PlatformInvocations, s.PlatformThrottles, s.Completed)
	}
	if d := byTarget["direct"]; d.PlatformThrottles == 0 {
		t.Errorf("direct row = %+v: a 40-chain burst at a limit of 4 should be throttled", d)
	}
}

// TestBenchChainsHeadroom: -headroom reaches sequoia's admission, and a
// bad value is refused before anything runs. (What a headroom does to
// admission is qos's scenario testdata/headroom.txt, on a clock of its
// own: a burst's completed count depends on the machine's speed.)
func TestBenchChainsHeadroom(t *testing.T) {
	var out bytes.Buffer
	err := runBenchChains(context.Background(), []string{
		"-chains", "20", "-limit", "4", "-exec", "1ms", "-deadline", "0",
		"-targets", "sequoia", "-headroom", "0.5", "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || len(rep.Rows) != 1 || rep.Spec.Headroom != "0.5" {
		t.Fatalf("--json output %q: %v; want one row and the headroom in the spec", out.String(), err)
	}
	if h := rep.Rows[0].AdmissionHeadroom; h == nil || *h != 0.5 {
		t.Errorf("sequoia ran with headroom %v, want 0.5", h)
	}
	err = runBenchChains(context.Background(), []string{"-headroom", "1.5"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SEQUOIA_ADMISSION_HEADROOM") {
		t.Errorf("-headroom 1.5: err = %v, want one naming SEQUOIA_ADMISSION_HEADROOM", err)
	}
}

// TestBenchChainsClientsAndScenarios runs every client and scenario on a
// small workload without deadlines (so that every chain completes, however
// slow the machine): a row per measured burst, every chain accounted for
// by the client and by sequoia's own counters, the untold scenario's
// chains all ended once their callers went quiet, and k6 skipped with a
// note when it is missing (run when it is installed).
func TestBenchChainsClientsAndScenarios(t *testing.T) {
	clients, k6 := "fasthttp,nethttp,k6", "/nonexistent/k6"
	if bin, err := loadtest.FindK6(""); err == nil {
		k6 = bin
	}
	var out bytes.Buffer
	err := runBenchChains(context.Background(), []string{
		"-chains", "20", "-limit", "4", "-exec", "5ms", "-deadline", "0", "-targets", "sequoia",
		"-clients", clients, "-scenarios", "burst,untold,bursts", "-bursts", "2", "-untold", "10",
		"-k6", k6, "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	type key struct {
		scenario, client string
	}
	bursts := map[key]int{}
	for _, r := range rep.Rows {
		k := key{r.Scenario, r.Client}
		if r.Client == "k6" && k6 == "/nonexistent/k6" {
			if !strings.Contains(r.Skipped, "k6 is missing") {
				t.Errorf("%v: %+v, want skipped as missing", k, r)
			}
			bursts[k]++
			continue
		}
		if r.Skipped != "" {
			t.Errorf("%v burst %d skipped: %s", k, r.Burst, r.Skipped)
			continue
		}
		bursts[k]++
		if r.Completed != 20 || r.Dropped != 0 || r.Refused != 0 || r.Failed != 0 {
			t.Errorf("%v burst %d: %+v; want all 20 completed without a deadline", k, r.Burst, r.Summary)
		}
		if r.Queue == nil || r.Queue.Answered.Requests != 40 || r.Queue.All.Requests != 40 {
			t.Errorf("%v burst %d: queueing %+v, want 40 answered requests", k, r.Burst, r.Queue)
		}
		if c := r.Sequoia; c == nil || c.Completed != 20 || c.Refused != 0 || c.Failed != 0 || c.Dropped["late"]+c.Dropped["client_gone"]+c.Dropped["deadline"] != 0 {
			t.Errorf("%v burst %d: sequoia counted %+v, want 20 completed and nothing else", k, r.Burst, r.Sequoia)
		}
		if r.Scenario == "untold" && r.ActiveAfter != 0 {
			t.Errorf("%v: %d chains still active after the untold ones' callers went quiet, want 0", k, r.ActiveAfter)
		}
	}
	for _, c := range strings.Split(clients, ",") {
		for s, n := range map[string]int{"burst": 1, "untold": 1, "bursts": 2} {
			if c == "k6" && k6 == "/nonexistent/k6" {
				n = 1 // one skipped row
			}
			if got := bursts[key{s, c}]; got != n {
				t.Errorf("%s %s: %d rows, want %d", s, c, got, n)
			}
		}
	}
	err = runBenchChains(context.Background(), []string{"-clients", "curl"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown client "curl"`) {
		t.Errorf("-clients curl: err = %v, want it named", err)
	}
}
