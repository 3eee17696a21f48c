package bench

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
)

// TestBenchChaosSmall runs `sequoia bench chaos --json` small and checks
// what cannot depend on the machine's speed: every refusal carries
// Retry-After, every client sequoia accepted got an answer (the shutdown's
// too, with the exit status that says work was given up), no bad request
// reached the platform or got a 2xx, a platform outage logs a bounded
// number of lines, and calls whose clients left are shown as held.
func TestBenchChaosSmall(t *testing.T) {
	var out strings.Builder
	err := runBenchChaos(context.Background(), []string{"--json", "-overload", "2s", "-outage", "1s", "-slow-conns", "100"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep chaosReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	rows := map[string]chaosRow{}
	for _, r := range rep.Rows {
		rows[r.Scenario] = r
		if r.NoRetry != 0 {
			t.Errorf("%s: %d refusals without Retry-After", r.Scenario, r.NoRetry)
		}
		if r.Unanswer != 0 {
			t.Errorf("%s: %d requests without an answer", r.Scenario, r.Unanswer)
		}
		if len(r.Problems) > 0 {
			t.Errorf("%s: %v", r.Scenario, r.Problems)
		}
	}
	if len(rows) != 8 {
		t.Fatalf("%d scenarios, want 8: %v", len(rows), rep.Rows)
	}
	if n := rows["bad requests"].Extra["reached_platform"]; n != float64(0) {
		t.Errorf("bad requests that reached the platform: %v", n)
	}
	for code, n := range rows["bad requests"].Statuses {
		if code >= 200 && code < 300 {
			t.Errorf("%d bad requests answered %d", n, code)
		}
	}
	if n, _ := rows["platform down"].Extra["log_lines_during_outage"].(float64); n > 100 {
		t.Errorf("%v log lines during the outage, want at most 100", n)
	}
	if n, _ := rows["hung calls"].Extra["held_client_gone"].(float64); n <= 0 {
		t.Errorf("status never showed a held call whose client left")
	}
	st := rows["SIGTERM"]
	if st.Extra["exit_code"] != float64(3) {
		t.Errorf("shutdown under load: exit code %v, want 3 (work given up)", st.Extra["exit_code"])
	}
	if st.Requests != 300 {
		t.Errorf("shutdown under load: %d answers for 300 requests", st.Requests)
	}
}
