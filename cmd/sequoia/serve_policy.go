package main

import (
	"context"
	"fmt"

	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/qos"
)

// newPolicy loads the policy engine of `sequoia serve`: SEQUOIA_POLICY_DIR
// or the shipped defaults. A policy that does not load stops start-up;
// later reloads that fail leave the running one in place.
func (s *server) newPolicy() error {
	pc := s.cfg.Policy
	onError, _ := policy.ParseOnError(pc.PolicyOnError)
	cacheSize := pc.PolicyCacheSize
	if cacheSize == 0 {
		cacheSize = -1 // the engine's "disabled"
	}
	stats := newPolicyStats(s.metrics.Registry())
	e, err := policy.New(context.Background(), policy.Options{
		Dir:       pc.PolicyDir,
		Timeout:   pc.PolicyTimeout,
		OnError:   onError,
		CacheSize: cacheSize,
		Refresh:   pc.PolicyRefresh,
		Snapshot: func() policy.Snapshot {
			snap := s.policySnapshot()
			stats.fill(&snap)
			return snap
		},
		Registerer: s.metrics.Registry(),
		Log:        s.log.With("component", "policy"),
	})
	if err != nil {
		return fmt.Errorf("SEQUOIA_POLICY_DIR: %w", err)
	}
	s.policy = e
	s.decider = policy.NewInvocations(e, s.cfg.Scheduling.MaxChains, s.cfg.Scheduling.ChainTTL)
	return nil
}

// policySnapshot is the live state policies read, taken every
// SEQUOIA_POLICY_REFRESH: what the scheduler exposes (in flight, the
// limit, queue depths per queue and class); policyStats adds rates and
// percentiles from the metrics.
func (s *server) policySnapshot() policy.Snapshot {
	snap := policy.Snapshot{
		InFlight: s.sched.InFlight(),
		Limit:    s.sched.Limit(),
		Queues:   map[string]map[string]int{},
		Classes:  map[string]policy.ClassStats{},
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
	return snap
}
