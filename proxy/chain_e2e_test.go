package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// TestChainBurstEndToEnd bursts deadline-bound chains through a real proxy
// at the platform emulator, over real sockets: admitted chains all
// complete (no mid-chain drop), refused ones never reach the platform, and
// the platform never throttles.
func TestChainBurstEndToEnd(t *testing.T) {
	const limit, chains, steps = 5, 120, 2
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	emu, emuAddr, err := emulator.Start(emulator.Config{Limit: limit, ExecTime: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Shutdown() //nolint:errcheck

	m := metrics.New(100)
	// The default estimate (100ms per step, against 20ms real) makes
	// admission err on the safe side until it has observed invocations.
	s := qos.New(qos.Config{Limit: limit, QueueCapacity: chains * steps, QueueTimeout: time.Minute,
		DefaultEstimate: 100 * time.Millisecond, Events: m.NewChains()})
	up, err := platform.New(platform.Config{URL: "http://" + emuAddr, Kind: invocation.OpenWhisk, Timeout: time.Minute, MaxConns: limit + 8})
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

	res := loadtest.RunChains(context.Background(), loadtest.ChainSpec{
		BaseURL: "http://" + ln.Addr().String(), Chains: chains, Steps: steps, Deadline: time.Second,
	})
	sum := res.Summary()
	st := emu.Stats()
	t.Logf("completed %d, refused %d, dropped %d, failed %d; platform: %d invocations, %d throttled, peak %d",
		sum.Completed, sum.Refused, sum.Dropped, sum.Failed, st.Invocations, st.Throttles, st.PeakConcurrency)
	if sum.Dropped != 0 || sum.Failed != 0 {
		t.Errorf("dropped %d mid-chain, %d failed; want 0", sum.Dropped, sum.Failed)
	}
	if sum.Completed == 0 || sum.Refused == 0 {
		t.Errorf("completed %d, refused %d: the burst should overflow the budget and still get work done", sum.Completed, sum.Refused)
	}
	if sum.Completed+sum.Refused != chains {
		t.Errorf("completed %d + refused %d != %d chains", sum.Completed, sum.Refused, chains)
	}
	if want := int64(sum.Completed * steps); st.Invocations != want {
		t.Errorf("platform ran %d invocations, want %d (completed chains only): refused chains reached it", st.Invocations, want)
	}
	if st.Throttles != 0 || st.PeakConcurrency > limit {
		t.Errorf("platform throttled %d, peak %d; want 0 and <= %d", st.Throttles, st.PeakConcurrency, limit)
	}
}
