package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
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
