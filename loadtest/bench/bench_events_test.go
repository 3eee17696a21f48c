package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// sequoiaBinary builds the sequoia command once per test binary: the kill
// scenarios SIGKILL real processes. TestMain removes it.
var sequoiaBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sequoia-bench-bin")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "sequoia")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/sequoia").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// binDir is where sequoiaBinary built the command, if it did.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestBenchEventsSmall runs `sequoia bench events --json` on a small
// workload, the short version of the goals: every accepted event is
// delivered despite three SIGKILLs of the embedded default and three of
// the accepting replica of two on an external NATS; each repeat is one of
// the events in flight at a kill, and sequoia counts it; an async DAG run
// SIGKILLed mid-run ends succeeded with no task run more than twice.
func TestBenchEventsSmall(t *testing.T) {
	bin, err := sequoiaBinary()
	if err != nil {
		t.Fatal(err)
	}
	const events, kills, limit = 300, 3, 10
	var out bytes.Buffer
	err = runBenchEvents(context.Background(), []string{
		"-events", fmt.Sprint(events), "-clients", "8", "-kills", fmt.Sprint(kills), "-limit", fmt.Sprint(limit),
		"-exec", "5ms", "-lease", "1s", "-dag-tasks", "4", "-dag-exec", "300ms",
		"-scenarios", "accept,kill,cluster,dag", "-bin", bin, "--json",
	}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var rep eventsReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out.String(), err)
	}
	if len(rep.Accept) != 3 {
		t.Fatalf("accept rows: %+v", rep.Accept)
	}
	for _, r := range rep.Accept {
		if r.Errors != 0 || r.Events != events || r.PerSecond <= 0 {
			t.Errorf("accept %s: %+v", r.Store, r)
		}
	}
	if len(rep.Kills) != 2 {
		t.Fatalf("kill rows: %+v", rep.Kills)
	}
	for _, r := range rep.Kills {
		t.Logf("%s: %d repeats at the platform, %v counted by sequoia", r.Mode, r.Repeats, r.Redelivered)
		if r.Accepted != events || r.Distinct != events || r.Lost != 0 {
			t.Errorf("%s: %d accepted, %d delivered, %d lost; want all %d delivered", r.Mode, r.Accepted, r.Distinct, r.Lost, events)
		}
		if r.Repeats > kills*limit {
			t.Errorf("%s: %d repeats, more than the %d events in flight at %d kills", r.Mode, r.Repeats, kills*limit, kills)
		}
		for _, exit := range r.SIGTERMExits {
			if exit != "0" {
				t.Errorf("%s: exit on SIGTERM with nothing in flight: %s, want 0", r.Mode, exit)
			}
		}
		if r.Redelivered < float64(r.Repeats) {
			t.Errorf("%s: sequoia counted %v redeliveries for %d repeats at the platform", r.Mode, r.Redelivered, r.Repeats)
		}
	}
	if len(rep.DAG) != 1 {
		t.Fatalf("dag rows: %+v", rep.DAG)
	}
	d := rep.DAG[0]
	if d.Status != "succeeded" || d.MaxRuns > 2 || d.PerTask["slow0"] != 1 || d.PerTask["slow3"] != 1 {
		t.Errorf("DAG run killed mid-run: %+v; want succeeded, tasks before and after the kill run once, none more than twice", d)
	}
	if !strings.Contains(rep.Kills[1].Mode, "cluster") {
		t.Errorf("second kill row is %q", rep.Kills[1].Mode)
	}
}
