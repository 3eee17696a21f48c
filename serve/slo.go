package serve

import (
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/proxy"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/slo"
)

// newSLO loads the objectives of SEQUOIA_SLO_FILE, if any, and starts the
// webhook notifier of SEQUOIA_SLO_WEBHOOK_URL. The tracker hears every
// invocation (observer), every chain's end (chainEvents) and is evaluated
// by runSLO; the policy adds the objectives it declares (policySLOs), so
// the tracker runs with none too (an atomic load per invocation).
func (s *Server) newSLO() error {
	c := s.cfg.SLO
	var objs []slo.Objective
	if c.SLOFile != "" {
		var err error
		if objs, err = slo.Load(c.SLOFile); err != nil {
			return fmt.Errorf("SEQUOIA_SLO_FILE: %w", err)
		}
	}
	s.sloFile = objs
	cfg := slo.Config{Objectives: objs, Interval: c.SLOInterval}
	if c.SLOWebhookURL != "" {
		s.sloNotify = slo.NewNotifier(slo.NotifierConfig{
			URL: c.SLOWebhookURL, Repeat: c.SLOWebhookRepeat, Timeout: c.SLOWebhookTimeout,
			Backoff: time.Second, MaxBackoff: time.Minute,
			Labels: map[string]string{"cluster": s.cfg.Cluster.Name},
			Log:    s.log.With("component", "slo"),
		}, objs)
		cfg.Notify = s.sloNotify.Update
	}
	s.slo = slo.New(cfg)
	s.metrics.Registry().MustRegister(slo.NewCollector(s.slo, s.sloNotify))
	if c.SLOFile != "" {
		s.log.Info("slo objectives loaded", "file", c.SLOFile, "count", len(objs), "webhook", c.SLOWebhookURL != "")
	}
	return nil
}

// policySLOs tracks, besides SEQUOIA_SLO_FILE's, the objectives a policy
// version declares (data.sequoia.slos), as it goes live; a name the file
// uses too refuses the version.
func (s *Server) policySLOs(objs []slo.Objective) error {
	for _, o := range objs {
		if slices.ContainsFunc(s.sloFile, func(f slo.Objective) bool { return f.Name == o.Name }) {
			return fmt.Errorf("objective %q is declared in SEQUOIA_SLO_FILE too", o.Name)
		}
	}
	all := slices.Concat(s.sloFile, objs)
	if slices.EqualFunc(all, s.slo.Objectives(), func(a, b slo.Objective) bool { return reflect.DeepEqual(a, b) }) {
		return nil
	}
	s.slo.Replace(all)
	if s.sloNotify != nil {
		s.sloNotify.SetObjectives(all)
	}
	s.log.Info("slo objectives loaded", "policy", len(objs), "file", len(s.sloFile))
	return nil
}

// SLO is the objectives' tracker, nil without SEQUOIA_SLO_FILE. Tests
// evaluate it by hand.
func (s *Server) SLO() *slo.Tracker { return s.slo }

// runSLO evaluates the objectives every SEQUOIA_SLO_INTERVAL until stop
// closes, then stops the notifier.
func (s *Server) runSLO(stop <-chan struct{}) error {
	s.slo.Run(stop)
	if s.sloNotify != nil {
		s.sloNotify.Close()
	}
	return nil
}

// chainEvents reports the scheduler's chain events to the metrics and,
// for chains objectives, to the tracker.
type chainEvents struct {
	*metrics.Chains
	slo *slo.Tracker
}

func (e chainEvents) ChainEnded(end qos.ChainEnd) {
	e.Chains.ChainEnded(end)
	e.slo.ChainEnded(end)
}

func (s *Server) chainEvents(c *metrics.Chains) qos.Events {
	return chainEvents{Chains: c, slo: s.slo}
}

// observers is the warm pool and the objectives' tracker, as one
// observer of invocations.
type observers []proxy.Observer

func (o observers) Arrived(inv *invocation.Invocation) {
	for _, x := range o {
		x.Arrived(inv)
	}
}

func (o observers) Finished(inv *invocation.Invocation, latency time.Duration, err error) {
	for _, x := range o {
		x.Finished(inv, latency, err)
	}
}

// sloSnapshot adds the objectives' states to a policy snapshot.
func (s *Server) sloSnapshot(snap *policy.Snapshot) {
	if s.slo.Len() == 0 {
		return
	}
	snap.SLOs = make(map[string]policy.SLOStats, s.slo.Len())
	for _, st := range s.slo.States() {
		snap.SLOs[st.Name] = policy.SLOStats{Burning: st.Burning, Breached: slices.Contains(st.Alerts, slo.AlertBudgetExhausted),
			BudgetRemaining: st.BudgetRemaining, SLI: st.SLI, BurnRates: st.BurnRates, Alerts: st.Alerts}
	}
}

// sloStatus is the objectives' section of /sequoia/v1/status.
type sloStatus struct {
	Interval   string      `json:"interval"`
	Webhook    bool        `json:"webhook"`
	Delivered  int64       `json:"notifications_delivered"`
	Failed     int64       `json:"notification_attempts_failed"`
	Objectives []slo.State `json:"objectives"`
}

func (s *Server) sloStatus() *sloStatus {
	if s.slo.Len() == 0 && s.sloNotify == nil {
		return nil
	}
	st := &sloStatus{Interval: s.slo.Interval().String(), Webhook: s.sloNotify != nil, Objectives: s.slo.States()}
	if s.sloNotify != nil {
		st.Delivered, st.Failed, _ = s.sloNotify.Stats()
	}
	return st
}
