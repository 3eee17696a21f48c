package serve

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/policy"
	"github.com/sequoia-qos/sequoia/proxy"
)

// maxConns is the data port's connection cap: SEQUOIA_MAX_CONNS, or, when
// it is 0, the descriptor limit less what sequoia needs besides client
// connections: the platform's connections (the primary's and the
// overflow's) and a margin for its own files, the admin port and NATS.
// With a limit too small for that margin, half the limit.
func maxConns(configured, concurrency int, overflow bool, nofile uint64) int {
	if configured > 0 || nofile == 0 {
		return configured
	}
	limit := int(min(nofile, math.MaxInt32))
	platform := concurrency + 64
	if overflow {
		platform *= 2
	}
	return max(limit-platform-256, limit/2)
}

// apiAuth is the proxy's APIAuth: tokens from SEQUOIA_API_TOKEN_FILE, the
// policy's decision on each DAG write.
type apiAuth struct {
	tokens *proxy.TokenFile
	policy *policy.Engine
}

func (a apiAuth) Authenticate(authorization []byte) (string, bool) {
	return a.tokens.Caller(authorization)
}

func (a apiAuth) AllowDAG(w proxy.DAGWrite) (bool, string) {
	ok, reasons, _ := a.policy.DecideDAG(context.Background(), &policy.DAGInput{
		Action: w.Action, DAG: w.DAG, Caller: w.Caller, Owner: w.Owner, Exists: w.Exists,
		Functions: w.Functions, Tenants: w.Tenants,
	})
	if ok {
		return true, ""
	}
	if len(reasons) == 0 {
		return false, "the policy does not allow this DAG write (data.sequoia.dag_allowed)"
	}
	return false, strings.Join(reasons, "; ")
}

// Held calls: which invocations in progress hold a slot for a client that
// left, and which run far longer than their function does.

// slowFactor and slowFloor make a call slow: in progress for more than
// slowFactor times its function's estimated duration, and more than
// slowFloor.
const (
	slowFactor = 10
	slowFloor  = time.Second
)

// heldStatus is the "held" part of /sequoia/v1/status.
type heldStatus struct {
	InProgress int `json:"in_progress"`
	// ClientGone counts calls whose client closed its connection while
	// the platform still runs them: their slots stay held until it
	// answers or SEQUOIA_BACKEND_TIMEOUT.
	ClientGone int `json:"client_gone"`
	// Slow counts calls in progress for more than 10 times their
	// function's estimated duration (and over a second): a platform
	// that hangs shows here first.
	Slow   int              `json:"slow"`
	Oldest []proxy.HeldCall `json:"oldest,omitempty"`
}

func (s *Server) heldStatus(limit int) heldStatus {
	calls := s.proxy.Held()
	st := heldStatus{InProgress: len(calls)}
	for _, c := range calls {
		if c.ClientGone {
			st.ClientGone++
		}
		if s.slow(c) {
			st.Slow++
		}
	}
	st.Oldest = calls[:min(limit, len(calls))]
	return st
}

func (s *Server) slow(c proxy.HeldCall) bool {
	return c.Age > slowFloor && c.Age > slowFactor*s.sched.Estimate(c.Function)
}

// heldGauges reads the held calls at scrape time.
func (s *Server) heldGauges() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Name: "client_gone_in_flight",
			Help: "Invocations in progress whose client has left; their slots stay held until the platform answers or SEQUOIA_BACKEND_TIMEOUT.",
		}, func() float64 { return float64(s.heldStatus(0).ClientGone) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: metrics.Namespace, Name: "slow_in_flight",
			Help: "Invocations in progress for more than 10 times their function's estimated duration (and over a second).",
		}, func() float64 { return float64(s.heldStatus(0).Slow) }),
	}
}
