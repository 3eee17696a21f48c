package serve

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/cluster"
	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/qos/adaptive"
)

// startReplicas starts n sequoia replicas of one cluster on the NATS at
// url, in front of the OpenWhisk emulator at emuAddr, sharing budget
// slots, and waits until they share it.
func startReplicas(t *testing.T, url, emuAddr string, n, budget int, env ...string) []*Server {
	t.Helper()
	var out []*Server
	for range n {
		out = append(out, startServer(t, append([]string{
			"SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://" + emuAddr,
			"SEQUOIA_NATS_URL=" + url, "SEQUOIA_CLUSTER=t", "SEQUOIA_MAX_CONCURRENCY=" + strconv.Itoa(budget),
			"SEQUOIA_LEASE_INTERVAL=20ms", "SEQUOIA_LEASE_TTL=1s",
		}, env...)...))
	}
	waitUntil(t, "the replicas sharing the budget", func() bool {
		sum := 0
		for _, s := range out {
			st := s.cl.leases.Status()
			if len(st.Replicas) != n || st.Applied < 1 {
				return false
			}
			sum += st.Applied
		}
		return sum == budget
	})
	return out
}

// waitUntil polls cond until it holds or a minute passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never %s", what)
		}
	}
}

// owStep sends one step of a chain to a replica: chain "" asks the
// replica to assign one. It returns the status and the chain id answered.
func owStep(t *testing.T, c *fasthttp.Client, s *Server, action, chain string, headers ...string) (int, string) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + s.DataAddr() + "/api/v1/namespaces/guest/actions/" + action + "?blocking=true&result=true")
	req.Header.SetMethod("POST")
	req.SetBodyString(`{"exec_ms":5}`)
	if chain != "" {
		req.Header.Set("X-Sequoia-Chain-Id", chain)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if err := c.DoTimeout(req, resp, time.Minute); err != nil {
		t.Fatal(err)
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		t.Logf("%s of chain %q at %s: %d %s", action, chain, s.DataAddr(), code, resp.Body())
	}
	return resp.StatusCode(), string(resp.Header.Peek("X-Sequoia-Chain-Id"))
}

func chainsCounter(s *Server, name string) float64 { return counterWith(s, name) }

// counterWith sums the counter sequoia_<name> over its series that have
// the label values given as name, value pairs.
func counterWith(s *Server, name string, labels ...string) float64 {
	mfs, _ := s.metrics.Registry().Gather()
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != "sequoia_"+name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			v += m.GetCounter().GetValue()
		}
	}
	return v
}

// TestClusterContinuationAnywhere: a chain admitted by one replica is a
// continuation at another, whether its id was assigned (a ticket rides on
// it: no look-up) or chosen by the client (one look-up), even where a new
// chain would be refused (the second replica gives chains without a
// deadline header one of 1ms, which no new chain meets); the replica that
// admitted it hears of the step and counts the chain completed.
func TestClusterContinuationAnywhere(t *testing.T) {
	ns := natstest.Start(t)
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 20})
	a := startReplicas(t, ns.URL(), emuAddr, 1, 10)[0]
	b := startServer(t, "SEQUOIA_BACKEND=openwhisk", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_NATS_URL="+ns.URL(), "SEQUOIA_CLUSTER=t", "SEQUOIA_MAX_CONCURRENCY=10",
		"SEQUOIA_LEASE_INTERVAL=20ms", "SEQUOIA_LEASE_TTL=1s", "SEQUOIA_DEFAULT_CHAIN_DEADLINE=1ms")
	waitUntil(t, "two replicas", func() bool {
		return a.cl.leases.Replicas() == 2 && b.cl.leases.Replicas() == 2 && b.cl.leases.Status().Applied > 0
	})
	c := &fasthttp.Client{}
	if code, _ := owStep(t, c, b, "probe", "new-at-b"); code != 429 {
		t.Fatalf("a new chain at b: %d, want 429 (refused: it cannot meet its 1ms deadline)", code)
	}

	code, id := owStep(t, c, a, "step1", "", "X-Sequoia-Deadline-Ms", "60000", "X-Sequoia-Chain-Steps", "2")
	_, ticket, ok := cluster.SplitID([]byte(id))
	if code != 200 || !ok || len(ticket) == 0 {
		t.Fatalf("first step at a: %d, chain id %q: want 200 and a ticketed id", code, id)
	}
	if code, got := owStep(t, c, b, "step2", id); code != 200 || got != id {
		t.Fatalf("second step at b: %d, id %q; want 200 and the same id", code, got)
	}
	waitUntil(t, "a counting its chain completed", func() bool { return chainsCounter(a, "chains_completed_total") == 1 })
	if n := chainsCounter(b, "chains_started_total"); n != 0 {
		t.Errorf("b started %v chains; want none (the continuation is a's chain)", n)
	}
	if n := counterWith(b, "cluster_remote_chains_total", "via", "ticket", "result", "found"); n != 1 {
		t.Errorf("b resolved %v chains by ticket; want 1", n)
	}
	// A forged ticket (on an id b does not know yet) is not a
	// continuation.
	forged := a.sched.ChainIDs().Prefix() + "zz.0.2.AAAAAAAAAAAAAAAA"
	// b has seen step2 run by now, so it knows the new chain can never
	// meet its 1ms deadline: 422 (deadline_too_short); before, 429.
	if code, _ := owStep(t, c, b, "step2", forged); code != 429 && code != 422 {
		t.Errorf("a forged ticket at b: %d, want 429 or 422 (a new chain, refused)", code)
	}

	if code, _ := owStep(t, c, a, "step1", "client-chosen-1", "X-Sequoia-Deadline-Ms", "60000", "X-Sequoia-Chain-Steps", "2"); code != 200 {
		t.Fatalf("first step of a client-chosen id at a: %d", code)
	}
	if code, _ := owStep(t, c, b, "step2", "client-chosen-1"); code != 200 {
		t.Fatalf("second step of a client-chosen id at b: %d, want 200", code)
	}
	waitUntil(t, "a counting its second chain completed", func() bool { return chainsCounter(a, "chains_completed_total") == 2 })
}

// TestClusterNoNATSOnRequests: requests whose chain ids sequoia assigns
// make no NATS operation, wherever their steps land; with client-chosen
// ids, at most one look-up per chain and replica and one registration per
// chain.
func TestClusterNoNATSOnRequests(t *testing.T) {
	ns := natstest.Start(t)
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 50})
	rs := startReplicas(t, ns.URL(), emuAddr, 2, 20)
	const chains = 100
	requestOps := func() float64 {
		return rs[0].engine.Ops(cluster.PathRequest) + rs[1].engine.Ops(cluster.PathRequest)
	}
	run := func(assign bool) {
		var wg sync.WaitGroup
		c := &fasthttp.Client{MaxConnsPerHost: 200}
		for i := range chains {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := ""
				if !assign {
					id = fmt.Sprintf("client-%d", i)
				}
				code, got := owStep(t, c, rs[i%2], "s1", id, "X-Sequoia-Deadline-Ms", "60000", "X-Sequoia-Chain-Steps", "2")
				if code != 200 {
					t.Errorf("chain %d step 1: %d", i, code)
					return
				}
				if code, _ := owStep(t, c, rs[(i+1)%2], "s2", got); code != 200 {
					t.Errorf("chain %d step 2: %d", i, code)
				}
			}()
		}
		wg.Wait()
	}
	run(true)
	if n := requestOps(); n != 0 {
		t.Errorf("%d chains with assigned ids made %v NATS operations on requests; want 0", chains, n)
	}
	before := requestOps()
	run(false)
	// The first replica looks each id up (not found) and registers it;
	// the second looks it up (found).
	if n := requestOps() - before; n > 3*chains {
		t.Errorf("%d chains with client-chosen ids made %v NATS operations on requests; want at most %d", chains, n, 3*chains)
	}
	waitUntil(t, "every chain counted completed where it was admitted", func() bool {
		return chainsCounter(rs[0], "chains_completed_total")+chainsCounter(rs[1], "chains_completed_total") == 2*chains
	})
}

// TestClusterSharesEstimates: what one replica learned (a function's
// slot time) reaches a replica that has not seen the function, through
// NATS in the background.
func TestClusterSharesEstimates(t *testing.T) {
	defer func(d time.Duration) { estimatesEvery = d }(estimatesEvery)
	estimatesEvery = 20 * time.Millisecond
	ns := natstest.Start(t)
	_, emuAddr := startEmulator(t, emulator.Config{Limit: 20})
	rs := startReplicas(t, ns.URL(), emuAddr, 2, 10)
	rs[0].sched.Observe("guest/learned", 123*time.Millisecond)
	waitUntil(t, "the other replica seeded", func() bool { return rs[1].sched.Estimate("guest/learned") == 123*time.Millisecond })
}

// TestLeaseCapsAdaptiveLimit: the scheduler runs on the lease, capped by
// the adaptive limit, less the slots held for background work; a lease of
// none is none, though the adaptive limit never goes below one.
func TestLeaseCapsAdaptiveLimit(t *testing.T) {
	sched := qos.New(qos.Config{Limit: 1})
	defer sched.Close()
	l := &localReplica{sched: sched}
	lim := adaptive.New(adaptive.Config{Ceiling: 50, Initial: 15}, l.SetLimit, l.InFlight, nil)
	l.lim = lim
	l.Apply(20, 0)
	if got := sched.Limit(); got != 15 {
		t.Fatalf("limit on a lease of 20 with the adaptive limit at 15 = %d, want 15", got)
	}
	if l.Adaptive() != 0 {
		t.Errorf("a limit still in slow start told the others %d, want 0 (nothing learned)", l.Adaptive())
	}
	l.Apply(10, 0)
	wantLimit(t, sched, 10, "on a lease of 10")
	lim.Hold(time.Hour)
	wantLimit(t, sched, 9, "with one slot held")
	l.Apply(0, 0)
	wantLimit(t, sched, 0, "without a lease")
}

// wantLimit checks the scheduler's limit, in the state what says.
func wantLimit(t *testing.T, sched *qos.Scheduler, want int, what string) {
	t.Helper()
	if got := sched.Limit(); got != want {
		t.Errorf("limit %s = %d, want %d", what, got, want)
	}
}

// cutReplica is a replica on a lease of the given slots (peers: the
// cluster's view, nil for none), whose adaptive limit (ceiling 100, from 50)
// has just cut on queueing: calls answered at 40 ms alone, then at 400 ms
// with 40 in flight. answered reports more calls.
func cutReplica(t *testing.T, lease int, peers peersView) (*localReplica, *adaptive.Limit, func(n, inFlight int, rtt time.Duration)) {
	t.Helper()
	sched := qos.New(qos.Config{Limit: 1})
	t.Cleanup(sched.Close)
	l := &localReplica{sched: sched, peers: peers}
	lim := adaptive.New(adaptive.Config{Ceiling: 100, Initial: 50, Window: time.Nanosecond}, l.SetLimit, l.InFlight, nil)
	l.lim = lim
	l.Apply(lease, 0)
	answered := func(n, inFlight int, rtt time.Duration) {
		for range n {
			lim.OnSuccess("f", inFlight, time.Now().Add(-rtt))
		}
	}
	answered(6, 1, 40*time.Millisecond)    // alone: its baseline
	answered(12, 40, 400*time.Millisecond) // 40 in flight, 10x slower: queueing
	return l, lim, answered
}

// TestUnverifiedCutNotShared: a queueing cut of the adaptive limit is this
// replica's guess until the calls sent after it show that latency followed
// (else it is undone): meanwhile it does not shrink the other replicas'
// budget (Adaptive says nothing), and once it stands it does.
func TestUnverifiedCutNotShared(t *testing.T) {
	l, lim, answered := cutReplica(t, 100, nil)
	if st := lim.Status(); st.QueueingCuts != 1 || !st.Verifying || st.Limit >= 50 {
		t.Fatalf("status %+v: want one cut, being verified", st)
	}
	if got := l.Adaptive(); got != 0 {
		t.Errorf("an unverified cut told the others %d, want 0", got)
	}
	time.Sleep(60 * time.Millisecond) // the calls below were sent after the cut
	answered(12, 4, 40*time.Millisecond)
	st := lim.Status()
	if st.Verifying || st.CutsUndone != 0 {
		t.Fatalf("status %+v: want the cut verified", st)
	}
	if got := l.Adaptive(); got != st.Limit || got >= 50 {
		t.Errorf("a verified cut told the others %d, want the limit %d", got, st.Limit)
	}
}

// fixedPeers is the others as a test sets them: none in flight, and the
// cluster's budget.
type fixedPeers struct{ budget int }

func (p *fixedPeers) ClusterInFlight() int { return 0 }
func (p *fixedPeers) EffectiveBudget() int { return p.budget }

// TestOutvotedCutDoesNotHold: a standing queueing cut caps this replica
// while the cluster's budget (the median of the replicas' views) agrees
// with it; once the others outvote it (the budget is above it), the
// replica runs on its whole lease. A cut still being verified holds
// either way, so that the calls sent after it can show whether latency
// followed.
func TestOutvotedCutDoesNotHold(t *testing.T) {
	peers := &fixedPeers{}
	l, lim, answered := cutReplica(t, 30, peers)
	sched := l.sched
	st := lim.Status()
	if st.QueueingCuts != 1 || !st.Verifying || st.Limit >= 30 {
		t.Fatalf("status %+v: want one cut below the lease, being verified", st)
	}
	peers.budget = 100 // the others see the platform take all of it
	l.Apply(30, 0)
	wantLimit(t, sched, st.Limit, "while the cut is verified")
	time.Sleep(60 * time.Millisecond) // the calls below were sent after the cut
	answered(12, 4, 40*time.Millisecond)
	if st = lim.Status(); st.Verifying || st.CutsUndone != 0 {
		t.Fatalf("status %+v: want the cut verified", st)
	}
	peers.budget = st.Limit // most replicas found the same
	l.Apply(30, 0)
	wantLimit(t, sched, st.Limit, "with the cluster agreeing")
	peers.budget = 100 // outvoted
	l.Apply(30, 0)
	wantLimit(t, sched, 30, "with the cut outvoted")
	lim.Hold(time.Hour)
	wantLimit(t, sched, 29, "outvoted with one slot held for background work")
}
