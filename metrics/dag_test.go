package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/dag"
)

func TestDAGMetrics(t *testing.T) {
	m := New(10)
	d := m.NewDAGs(func() int { return 3 })
	d.RunStarted()
	d.RunStarted()
	d.RunRefused()
	d.RunEnded(string(dag.Succeeded), 50*time.Millisecond)
	d.RunEnded(string(dag.TimedOut), time.Second)
	d.RunEnded("bogus", time.Second) // unknown status: ignored, no panic
	d.NodeInvoked(true)
	d.NodeInvoked(true)
	d.NodeInvoked(false)
	d.NodeDenied("f")
	got := scrape(t, m)
	for _, want := range []string{
		"sequoia_dag_runs_started_total 2",
		"sequoia_dag_runs_refused_total 1",
		`sequoia_dag_runs_ended_total{status="succeeded"} 1`,
		`sequoia_dag_runs_ended_total{status="deadline_exceeded"} 1`,
		`sequoia_dag_runs_ended_total{status="failed"} 0`,
		`sequoia_dag_run_duration_seconds_count{status="succeeded"} 1`,
		`sequoia_dag_task_invocations_total{outcome="ok"} 2`,
		`sequoia_dag_task_invocations_total{outcome="failed"} 1`,
		// A denied node is its own outcome, and counts in its function's
		// request series as a denied request does.
		`sequoia_dag_task_invocations_total{outcome="denied"} 1`,
		`sequoia_requests_total{function="f",outcome="policy_denied"} 1`,
		"sequoia_dag_runs_active 3",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(got, "bogus") {
		t.Error("an unknown status got a series")
	}
}
