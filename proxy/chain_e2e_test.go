package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// decisions counts admission's decisions and passes every event on.
type decisions struct {
	qos.Events
	started, refused atomic.Int64
}

func (d *decisions) ChainStarted(c uint8) { d.started.Add(1); d.Events.ChainStarted(c) }
func (d *decisions) ChainRefused(c uint8) { d.refused.Add(1); d.Events.ChainRefused(c) }

// TestChainBurstEndToEnd bursts deadline-bound chains through a real proxy
// at the platform emulator, over real sockets: admitted chains all
// complete (no mid-chain drop), refused ones never reach the platform, and
// the platform never throttles.
//
// Nothing here depends on the machine's speed: the platform answers
// nothing until admission has decided every chain's first step, so every
// decision is made on the configured estimate (10s a step) and none on an
// observed duration; the 60s budget fits three chains per slot, far fewer
// than the burst; and the admitted chains' 20ms steps finish far within
// their budget.
func TestChainBurstEndToEnd(t *testing.T) {
	const limit, chains, steps = 5, 120, 2
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	emu := emulator.New(emulator.Config{Limit: limit, ExecTime: 20 * time.Millisecond, Logger: quiet})
	defer emu.Shutdown() //nolint:errcheck
	open := make(chan struct{})
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := emu.Handler()
	gate := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { <-open; h(ctx) }}
	go gate.Serve(emuLn)  //nolint:errcheck
	defer gate.Shutdown() //nolint:errcheck

	m := metrics.New(100)
	ev := &decisions{Events: m.NewChains()}
	s := qos.New(qos.Config{Limit: limit, QueueCapacity: chains * steps, QueueTimeout: time.Minute,
		DefaultEstimate: 10 * time.Second, Events: ev})
	up, err := platform.New(platform.Config{URL: "http://" + emuLn.Addr().String(), Kind: invocation.OpenWhisk, Timeout: time.Minute, MaxConns: limit + 8})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Platform: invocation.OpenWhisk, MaxBodyBytes: 1 << 20}, s, up, m, quiet)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)                         //nolint:errcheck
	defer p.Shutdown(context.Background()) //nolint:errcheck

	done := make(chan loadtest.Result, 1)
	go func() {
		done <- loadtest.RunChains(context.Background(), loadtest.ChainSpec{
			BaseURL: "http://" + ln.Addr().String(), Chains: chains, Steps: steps, Deadline: time.Minute,
		})
	}()
	for end := time.Now().Add(time.Minute); ev.started.Load()+ev.refused.Load() != chains; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			close(open)
			t.Fatalf("admission decided %d chains in a minute, want %d", ev.started.Load()+ev.refused.Load(), chains)
		}
	}
	close(open)
	sum := (<-done).Summary()
	st := emu.Stats()
	t.Logf("completed %d, refused %d, dropped %d, failed %d; platform: %d invocations, %d throttled, peak %d",
		sum.Completed, sum.Refused, sum.Dropped, sum.Failed, st.Invocations, st.Throttles, st.PeakConcurrency)
	if sum.Dropped != 0 || sum.Failed != 0 {
		t.Errorf("dropped %d mid-chain, %d failed; want 0", sum.Dropped, sum.Failed)
	}
	if sum.Completed == 0 || sum.Refused == 0 {
		t.Errorf("completed %d, refused %d: the burst should overflow the budget and still get work done", sum.Completed, sum.Refused)
	}
	if int64(sum.Completed) != ev.started.Load() || int64(sum.Refused) != ev.refused.Load() {
		t.Errorf("completed %d, refused %d; admission started %d and refused %d", sum.Completed, sum.Refused, ev.started.Load(), ev.refused.Load())
	}
	if want := int64(sum.Completed * steps); st.Invocations != want {
		t.Errorf("platform ran %d invocations, want %d (completed chains only): refused chains reached it", st.Invocations, want)
	}
	if st.Throttles != 0 || st.PeakConcurrency > limit {
		t.Errorf("platform throttled %d, peak %d; want 0 and <= %d", st.Throttles, st.PeakConcurrency, limit)
	}
}
