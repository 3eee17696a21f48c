package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBenchClusterSmall runs `sequoia bench cluster --json` small: every
// part has its row, the platform never sees more than the budget nor a
// throttle, the killed replica's slots are taken back, the replicas were
// seen on safe shares while NATS was away and had the whole budget again
// after, and requests with assigned ids made no NATS operation. (Counts of
// completed chains depend on the machine's speed: the bench reports them,
// the test does not judge them.)
func TestBenchClusterSmall(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the replicas' binary")
	}
	bin := filepath.Join(t.TempDir(), "sequoia")
	if out, err := exec.Command(gobin, "build", "-o", bin, "../../cmd/sequoia").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	err = runBenchCluster(context.Background(), []string{
		"-replicas", "2", "-chains", "40", "-limit", "4", "-exec", "5ms", "-deadline", "2s", "-long-deadline", "0",
		"-rate", "20", "-run", "4s", "-kill-after", "1s", "-lease-ttl", "1s", "-outage", "500ms",
		"-nats-nodes", "1", "-balancer", "builtin", "-ids", "assigned", "-sequoia", bin, "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep clusterReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	setups := map[string]clusterRow{}
	for _, r := range rep.Rows {
		setups[r.Setup] = r
		if r.PlatformThrottles != 0 || r.PeakConcurrency > 4 {
			t.Errorf("%s: %d platform throttles, peak %d over a budget of 4", r.Setup, r.PlatformThrottles, r.PeakConcurrency)
		}
		if r.RequestOps != 0 {
			t.Errorf("%s: %v NATS operations on requests with assigned ids", r.Setup, r.RequestOps)
		}
		if r.Completed == 0 {
			t.Errorf("%s: nothing completed", r.Setup)
		}
	}
	for _, s := range []string{"one replica", "cluster of 2", "SIGKILL", "NATS outage"} {
		if _, ok := setups[s]; !ok {
			t.Errorf("no %q row in %v", s, rep.Rows)
		}
	}
	if rep.Shift <= 0 {
		t.Errorf("the busy replica never got the idle one's slots")
	}
	if r := setups["SIGKILL"]; r.Reclaimed <= 0 {
		t.Errorf("the killed replica's slots were never taken back: %+v", r)
	}
	if r := setups["NATS outage"]; !r.FallbackSeen || r.FullAgain <= 0 || r.MinApplied > 4 {
		t.Errorf("NATS outage: fallback seen %v, whole budget again after %v, fewest slots %d", r.FallbackSeen, r.FullAgain, r.MinApplied)
	}
}
