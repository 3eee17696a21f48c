package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
)

// TestBenchColdstartSmall runs `sequoia bench coldstart --json` on a small,
// fast workload: without the pool every invocation of the burst after the
// idle period pays a cold start; with it fewer do, warm-ups are sent, and
// the steady run reports its cost.
func TestBenchColdstartSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	var out bytes.Buffer
	err := runBenchColdstart(context.Background(), []string{
		"-chains", "4", "-limit", "10", "-exec", "10ms", "-cold-start", "100ms", "-keepalive", "400ms",
		"-steady", "2s", "-burst-every", "1s", "-rate", "4", "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep coldReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].WarmPool || !rep.Rows[1].WarmPool {
		t.Fatalf("rows = %+v, want without then with the pool", rep.Rows)
	}
	without, with := rep.Rows[0], rep.Rows[1]
	if without.Completed != 4 || with.Completed != 4 {
		t.Errorf("completed %d and %d chains, want 4 each", without.Completed, with.Completed)
	}
	if without.ColdStarts != 8 || without.Warmups != 0 {
		t.Errorf("without the pool: %d cold starts, %d warm-ups; want 8 (every instance expired) and 0", without.ColdStarts, without.Warmups)
	}
	if with.ColdStarts >= without.ColdStarts || with.Warmups == 0 {
		t.Errorf("with the pool: %d cold starts, %d warm-ups; want fewer than %d and some warm-ups", with.ColdStarts, with.Warmups, without.ColdStarts)
	}
	if rep.Steady == nil || rep.Steady.Invocations == 0 || rep.Steady.Warmups == 0 {
		t.Errorf("steady row = %+v, want invocations and warm-ups", rep.Steady)
	}
}
