package bench

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMeasureDAGOverhead is the measurement of issue 8 (also `sequoia
// bench dags`): orchestration overhead (a run's wall time at its client
// minus the function time on its critical path) of a 10-step sequence and
// an 80-way map, and bursts of 500 concurrent runs of a 3-node DAG, with
// no deadline and with one some runs cannot meet. It fails only if an
// admitted run did not complete. Run with
//
//	SEQUOIA_MEASURE=1 go test -run TestMeasureDAGOverhead -v ./cmd/sequoia/
func TestMeasureDAGOverhead(t *testing.T) {
	if os.Getenv("SEQUOIA_MEASURE") == "" {
		t.Skip("a measurement: set SEQUOIA_MEASURE=1 to run it")
	}
	var progress strings.Builder
	rep, err := benchDags(context.Background(), defaultDagBench(), &progress)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	printDagReport(&out, rep)
	t.Log("\n" + out.String())
	for _, b := range rep.Bursts {
		if b.Dropped != 0 {
			t.Errorf("burst with deadline %v: %d admitted runs did not complete", b.Deadline, b.Dropped)
		}
	}
}

// TestBenchDags runs `sequoia bench dags --json` small and checks that its
// figures hold together.
func TestBenchDags(t *testing.T) {
	var out, progress strings.Builder
	err := runBenchDags(context.Background(), []string{"--json", "--exec=2ms", "--steps=3", "--width=6", "--rounds=2",
		"--limit=8", "--burst=30", "--burst-limit=4", "--deadline=10s"}, &out, &progress)
	if err != nil {
		t.Fatal(err)
	}
	var rep dagBenchReport
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if len(rep.Overhead) != 2 || rep.Overhead[0].DAG != "sequence3" || rep.Overhead[0].Critical != 6*time.Millisecond ||
		rep.Overhead[1].DAG != "map6" || rep.Overhead[1].Critical != 2*time.Millisecond {
		t.Errorf("overhead rows %+v", rep.Overhead)
	}
	for _, r := range rep.Overhead {
		if r.Min > r.P50 || r.P50 > r.P90 {
			t.Errorf("%s: min %v, p50 %v, p90 %v out of order", r.DAG, r.Min, r.P50, r.P90)
		}
	}
	if len(rep.ASL) != 4 || rep.ASL[0].Machine != "asl-task3" || rep.ASL[1].Machine != "asl-map6" || rep.ASL[1].States != 7 {
		t.Errorf("state machine rows %+v", rep.ASL)
	}
	for _, r := range rep.ASL {
		if r.RunP50 <= 0 || r.DirectP50 <= 0 || r.Overhead != r.RunP50-r.DirectP50 {
			t.Errorf("state machine row %+v", r)
		}
	}
	if len(rep.Bursts) != 2 {
		t.Fatalf("bursts %+v", rep.Bursts)
	}
	for _, b := range rep.Bursts {
		if b.Runs != 30 || b.Admitted+b.Refused != 30 || b.Completed != b.Admitted || b.Dropped != 0 {
			t.Errorf("burst %+v", b)
		}
		// Each completed run made three invocations; refused ones none.
		if b.PlatformInvocations != int64(3*b.Completed) || b.PlatformThrottles != 0 || b.PeakConcurrency > 4 {
			t.Errorf("burst %+v: want 3 platform calls per run, no throttle, at most 4 at once", b)
		}
	}
}
