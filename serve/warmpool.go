package serve

import (
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/proxy"
	"github.com/sequoia-qos/sequoia/qos/adaptive"
	"github.com/sequoia-qos/sequoia/warmpool"
)

// newWarmPool builds the warm pool when SEQUOIA_PREWARM is on: warm-ups go
// through the upstream client (re-signed for Lambda) in idle worker slots.
func (s *Server) newWarmPool(kind invocation.Platform) {
	w := s.cfg.WarmPool
	if !w.Prewarm {
		return
	}
	s.warm = warmpool.New(warmpool.Config{
		Platform:       kind,
		Min:            w.PrewarmMin,
		Functions:      w.PrewarmFunctions,
		Burst:          w.PrewarmBurst,
		Chains:         w.PrewarmChains,
		BurstFunctions: w.PrewarmBurstFunctions,
		ChainFunctions: w.PrewarmChainsFunctions,
		KeepAlive:      w.PlatformKeepAlive,
		MaxFunctions:   w.PrewarmMaxFunctions,
		MaxChains:      s.cfg.Scheduling.MaxChains,
		Headroom:       w.PrewarmHeadroom,
		Hold:           w.PrewarmHold,
		HoldMin:        w.PrewarmHoldMin,
		HoldMax:        w.PrewarmHoldMax,
		Backoff:        w.PrewarmBackoff,
		MaxBackoff:     w.PrewarmMaxBackoff,
		Log:            s.log,
	}, s.sched, s.warmupInvoker(kind))
	s.warm.SetReporter(s.metrics.NewWarmPool(s.warm.Warm))
}

// warmupInvoker is what the warm pool sends warm-ups with: the platform
// client, reporting to the adaptive limit when there is one. Warm-ups are
// platform calls like any other: a throttled one bounds the limit, and
// those the platform runs let the limit grow out of its slow start while
// nothing else runs (else a pool started at SEQUOIA_ADAPTIVE_INITIAL could
// never warm more instances than that). Their round trip is the hold, not
// a run: no latency sample.
func (s *Server) warmupInvoker(kind invocation.Platform) warmpool.Invoker {
	if s.plat.limit == nil {
		return s.up
	}
	return warmupFeedback{up: s.up, kind: kind, limit: s.plat.limit}
}

type warmupFeedback struct {
	up    warmpool.Invoker
	kind  invocation.Platform
	limit *adaptive.Limit
}

func (w warmupFeedback) Invoke(inv *invocation.Invocation) error {
	n := w.limit.InFlight()
	if err := w.up.Invoke(inv); err != nil {
		return err
	}
	switch v, _ := platform.Classify(w.kind, inv.Resp); v {
	case platform.ThrottledConcurrency:
		w.limit.OnThrottle()
	case platform.ThrottledRate, platform.ThrottledFunction, platform.Unavailable:
	default:
		w.limit.OnSuccess(inv.Function, n, time.Time{})
	}
	return nil
}

// observer is what the proxy and DAG nodes report invocations to: the
// warm pool and the objectives' tracker, either, or nothing.
func (s *Server) observer() proxy.Observer {
	var o observers // slo.go
	if s.warm != nil {
		o = append(o, s.warm)
	}
	if s.slo != nil {
		o = append(o, s.slo)
	}
	switch len(o) {
	case 0:
		return nil
	case 1:
		return o[0]
	}
	return o
}

// warmStatus is the warm pool's section of /sequoia/v1/status: the
// warm-pool settings, and per function (the most recently seen, at most
// statusListLimit) its believed-warm estimate, warm count, switches,
// warm-ups sent, cold starts seen, back-off, warm-up hold and rounds
// verified. nil when the pool is off.
func (s *Server) warmStatus() *warmpool.Status {
	if s.warm == nil {
		return nil
	}
	st := s.warm.Status(statusListLimit)
	return &st
}

// runWarmPool runs keep-alive rounds until stop closes; stopWarmPool waits
// for the warm-ups in flight.
func (s *Server) runWarmPool(stop <-chan struct{}) error {
	if s.warm != nil {
		s.warm.Run(stop)
	}
	return nil
}

func (s *Server) stopWarmPool() {
	if s.warm != nil {
		s.warm.Close()
	}
}
