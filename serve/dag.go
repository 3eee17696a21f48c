package serve

import (
	"fmt"
	"net/url"
	"time"

	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/proxy"
)

// newDAGs wires DAG runs (package dag) into the server: runs are admitted
// by the scheduler, invoke through the proxy's platform client, and are
// served by the proxy under /sequoia/v1/; async runs are journaled on the
// engine (events.Runs), resumed by another replica or the next start if
// this process dies. DAGs in SEQUOIA_DAG_DIR are registered now.
func (s *Server) newDAGs() error {
	c := s.cfg.DAGs
	kind, _ := invocation.ParsePlatform(s.cfg.Backend.Kind)
	u, err := url.Parse(s.cfg.Backend.URL)
	if err != nil {
		return fmt.Errorf("SEQUOIA_BACKEND_URL: %w", err)
	}
	runs, err := events.OpenRuns(s.engine, events.RunsConfig{
		MaxBytes:  s.cfg.Events.RunJournalMaxBytes,
		Retention: c.RunRetention,
		Lease:     s.cfg.Events.DurableLease,
		Replicas:  s.cfg.Cluster.NatsReplicas,
		Log:       s.log,
	}, s.metrics.Registry())
	if err != nil {
		return err
	}
	s.runs = runs
	var svc *dag.Service
	ev := s.metrics.NewDAGs(func() int { return svc.Active() })
	svc = dag.New(dag.Config{
		Platform: kind,
		Host:     u.Host,
		Limits: dag.Limits{MaxNodes: c.DAGMaxNodes, MaxMapWidth: c.DAGMaxMapWidth,
			MaxNodeBytes: c.DAGMaxNodeBytes, MaxRunBytes: c.DAGMaxRunBytes},
		MaxDAGs:   c.MaxDAGs,
		MaxRuns:   c.MaxRuns,
		Retention: c.RunRetention,
		Events:    ev,
		Observer:  s.nodeObserver(), // per-function metrics, and the warm pool's chain pre-warm and warm estimate
		Decider:   s.decider,        // a policy's deny and scheduling fields hold for nodes too
		Journal:   runs,             // async runs outlive this process
		// A task names a function as the data port would parse it.
		CheckTask: func(fn, qualifier string) error { _, _, err := s.proxy.TaskTarget(fn, qualifier); return err },
		Log:       s.log,
	}, s.sched, s.proxy.Invoker())
	if c.DAGDir != "" {
		n, err := svc.LoadDir(c.DAGDir)
		if err != nil {
			return fmt.Errorf("SEQUOIA_DAG_DIR: %w", err)
		}
		s.log.Info("dags loaded", "dir", c.DAGDir, "count", n)
	}
	s.dags = svc
	s.proxy.ServeDAGs(svc)
	return nil
}

// nodeObserver is what DAG nodes report to: the warm pool, if on (nodes
// carry a policy decision, pre-warm hint included, as requests do), and
// the per-function request metrics, as the proxy records a request.
func (s *Server) nodeObserver() dag.Observer {
	return nodeObserver{m: s.metrics, warm: s.observer()}
}

type nodeObserver struct {
	m    *metrics.Metrics
	warm proxy.Observer // the warm pool and the objectives' tracker; nil: neither
}

func (o nodeObserver) Arrived(inv *invocation.Invocation) {
	if o.warm != nil {
		o.warm.Arrived(inv)
	}
}

func (o nodeObserver) Finished(inv *invocation.Invocation, atPlatform time.Duration, err error) {
	if o.warm != nil {
		o.warm.Finished(inv, atPlatform, err)
	}
	fn := o.m.FunctionNamed(inv.Function)
	if err != nil {
		fn.Count(metrics.OutcomeOf(err))
		return
	}
	fn.Observe(metrics.Forwarded, atPlatform)
	if inv.Resp != nil {
		o.m.PlatformStatus(inv.Resp.StatusCode())
	}
}
