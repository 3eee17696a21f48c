package main

import (
	"fmt"
	"net/url"

	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/invocation"
)

// newDAGs wires DAG runs (package dag) into the server: runs are admitted
// by the scheduler, invoke through the proxy's platform client, and are
// served by the proxy under /sequoia/v1/. DAGs in SEQUOIA_DAG_DIR are
// registered now.
func (s *server) newDAGs() error {
	c := s.cfg.DAGs
	platform, _ := invocation.ParsePlatform(s.cfg.Backend.Kind)
	u, err := url.Parse(s.cfg.Backend.URL)
	if err != nil {
		return fmt.Errorf("SEQUOIA_BACKEND_URL: %w", err)
	}
	var svc *dag.Service
	ev := s.metrics.NewDAGs(func() int { return svc.Active() })
	svc = dag.New(dag.Config{
		Platform: platform,
		Host:     u.Host,
		Limits: dag.Limits{MaxNodes: c.DAGMaxNodes, MaxMapWidth: c.DAGMaxMapWidth,
			MaxNodeBytes: c.DAGMaxNodeBytes, MaxRunBytes: c.DAGMaxRunBytes},
		MaxDAGs:   c.MaxDAGs,
		MaxRuns:   c.MaxRuns,
		Retention: c.RunRetention,
		Events:    ev,
		Observer:  s.nodeObserver(), // the warm pool: chain pre-warm and the warm estimate see nodes
		Decider:   s.decider,        // a policy's deny and scheduling fields hold for nodes too
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
