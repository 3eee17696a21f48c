package serve

import (
	"context"
	"fmt"

	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/qos"
)

// newPolicy loads the policy engine of `sequoia serve`: SEQUOIA_POLICY_DIR
// or the shipped defaults. A policy that does not load stops start-up;
// later reloads that fail leave the running one in place.
func (s *Server) newPolicy() error {
	pc := s.cfg.Policy
	onError, _ := policy.ParseOnError(pc.PolicyOnError)
	cacheSize := pc.PolicyCacheSize
	if cacheSize == 0 {
		cacheSize = -1 // the engine's "disabled"
	}
	stats := newPolicyStats(s.metrics.Registry(), s.sched.FunctionsFinished, activeRefreshes(pc.PolicyRefresh))
	s.snaps = stats
	e, err := policy.New(context.Background(), policy.Options{
		Dir:       pc.PolicyDir,
		Timeout:   pc.PolicyTimeout,
		OnError:   onError,
		CacheSize: cacheSize,
		Refresh:   pc.PolicyRefresh,
		Snapshot: func() policy.Snapshot {
			snap := s.policySnapshot()
			stats.fill(&snap)
			s.sloSnapshot(&snap) // slo.go
			return snap
		},
		Registerer: s.metrics.Registry(),
		Log:        s.log.With("component", "policy"),
		SLOs:       s.policySLOs, // slo.go
	})
	if err != nil {
		return fmt.Errorf("SEQUOIA_POLICY_DIR: %w", err)
	}
	s.policy = e
	s.decider = policy.NewInvocations(e, s.sched.ChainStep)
	return nil
}

// policySnapshot is the live state policies read, taken every
// SEQUOIA_POLICY_REFRESH: what the scheduler exposes (in flight in total
// and per class, function and tenant, the limit, queue depths per queue
// and class); policyStats adds rates and percentiles from the metrics.
// Only functions and tenants holding slots appear here, so the maps are
// bounded by the limit; policyStats adds the functions active of late.
func (s *Server) policySnapshot() policy.Snapshot {
	snap := policy.Snapshot{
		InFlight:  s.sched.InFlight(),
		Limit:     s.sched.Limit(),
		Queues:    map[string]map[string]int{},
		Classes:   map[string]policy.ClassStats{},
		Functions: map[string]policy.FunctionStats{},
		Tenants:   map[string]policy.TenantStats{},
	}
	for k := range qos.NumQueues {
		byClass := map[string]int{}
		for c := range qos.NumClasses {
			d := s.sched.Depth(k, c)
			byClass[qos.ClassName(c)] = d
			cs := snap.Classes[qos.ClassName(c)]
			cs.Queued += d
			snap.Classes[qos.ClassName(c)] = cs
		}
		snap.Queues[k.String()] = byClass
	}
	for c := range qos.NumClasses {
		cs := snap.Classes[qos.ClassName(c)]
		cs.InFlight = s.sched.ClassInFlight(c)
		snap.Classes[qos.ClassName(c)] = cs
	}
	for fn, n := range s.sched.FunctionsInFlight() {
		snap.Functions[fn] = policy.FunctionStats{InFlight: n}
	}
	for tenant, n := range s.sched.TenantsInFlight() {
		snap.Tenants[tenant] = policy.TenantStats{InFlight: n}
	}
	return snap
}
