package warmpool

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// burstAt sends n concurrent real invocations of guest/fn straight to the
// emulator, telling p about them as the proxy would.
func burstAt(t *testing.T, p *Pool, addr string, n int) {
	t.Helper()
	c := &fasthttp.Client{}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := &fasthttp.Request{}, &fasthttp.Response{}
			req.SetRequestURI("http://" + addr + "/api/v1/namespaces/guest/actions/fn?blocking=true&result=true")
			req.Header.SetMethod("POST")
			req.SetBodyString(`{}`)
			inv := &invocation.Invocation{Function: "guest/fn", Platform: invocation.OpenWhisk, Req: req, Resp: resp}
			p.Arrived(inv)
			start := time.Now()
			err := c.Do(req, resp)
			p.Finished(inv, time.Since(start), err)
			if err != nil || resp.StatusCode() != 200 {
				t.Errorf("invoke: %v, status %d", err, resp.StatusCode())
			}
		}()
	}
	wg.Wait()
}

// running runs p's keep-alive rounds until the returned stop is called;
// stop also waits for the warm-ups in flight. A test's closing burst
// comes after it: a round meeting the burst holds every idle instance for
// its hold, and the burst would pay cold starts that say nothing about
// whether the instances were kept warm (Run's doc).
func running(p *Pool) (stop func()) {
	ch, done := make(chan struct{}), make(chan struct{})
	go func() { p.Run(ch); close(done) }()
	return sync.OnceFunc(func() { close(ch); <-done; p.sending.Wait() })
}

// emulated starts the emulator with cfg, an OpenWhisk upstream client to
// it and a scheduler of 20 slots, all closed when the test ends.
func emulated(t *testing.T, cfg emulator.Config) (*emulator.Emulator, string, *platform.Client, *qos.Scheduler) {
	t.Helper()
	emu, addr, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Shutdown() })
	up, err := platform.New(platform.Config{URL: "http://" + addr, Kind: invocation.OpenWhisk, Timeout: 5 * time.Second, MaxConns: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	sched := qos.New(qos.Config{Limit: 20, QueueCapacity: 10, QueueTimeout: time.Minute})
	t.Cleanup(sched.Close)
	return emu, addr, up, sched
}

// TestKeepAliveKeepsNWarm keeps 3 instances of a function warm on the
// emulator across several keep-alive periods with no real traffic: a
// burst of 3 afterwards pays no cold start, and between rounds the
// emulator never shows fewer than 3 warm instances.
func TestKeepAliveKeepsNWarm(t *testing.T) {
	const n, keepAlive = 3, time.Second
	emu, addr, up, sched := emulated(t, emulator.Config{Limit: 20, ExecTime: 10 * time.Millisecond,
		ColdStart: 100 * time.Millisecond, KeepAlive: keepAlive})
	p := New(Config{Platform: invocation.OpenWhisk, Min: n, KeepAlive: keepAlive, Hold: 20 * time.Millisecond}, sched, up)
	stopRounds := running(p)
	defer func() { stopRounds(); p.Close() }()

	burstAt(t, p, addr, 1) // the function is seen once
	// Wait for the first round to create the instances, then watch for
	// four keep-alive periods.
	for emu.Stats().Functions["guest/fn"].WarmInstances < n {
		time.Sleep(10 * time.Millisecond)
	}
	emu.Reset() // counters from here; Reset also drops idle instances...
	for emu.Stats().Functions["guest/fn"].WarmInstances < n {
		time.Sleep(10 * time.Millisecond) // ...which the next round replaces
	}
	coldAfterReset := emu.Stats().Functions["guest/fn"].WarmupColdStarts
	minWarm := n
	deadline := time.Now().Add(4 * keepAlive)
	for time.Now().Before(deadline) {
		minWarm = min(minWarm, emu.Stats().Functions["guest/fn"].LiveInstances)
		time.Sleep(keepAlive / 20)
	}
	st := emu.Stats().Functions["guest/fn"]
	if minWarm < n {
		t.Errorf("warm instances fell to %d during the keep-alive periods, want >= %d", minWarm, n)
	}
	if st.WarmupColdStarts != coldAfterReset {
		t.Errorf("warm-ups paid %d cold starts after the instances existed: they expired", st.WarmupColdStarts-coldAfterReset)
	}
	if st.Warmups < 2*n {
		t.Errorf("%d warm-ups over 4 keep-alive periods, want several rounds of %d", st.Warmups, n)
	}
	stopRounds() // the instances live a quarter keep-alive at least (Tick)
	burstAt(t, p, addr, n)
	if st := emu.Stats().Functions["guest/fn"]; st.ColdStarts != 0 {
		t.Errorf("a burst of %d after 4 idle keep-alive periods paid %d cold starts, want 0", n, st.ColdStarts)
	}
}

// TestFailingWarmupsBackOff runs keep-alive against a platform that fails
// every warm-up, on a simulated clock ticking every 100ms for 10 minutes:
// the attempts grow only with the logarithm of the back-off range plus one
// round per longest back-off, and the gaps between rounds never shrink.
func TestFailingWarmupsBackOff(t *testing.T) {
	emu, addr, err := emulator.Start(emulator.Config{Limit: 20, FailWarmups: true})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Shutdown() //nolint:errcheck
	up, err := platform.New(platform.Config{URL: "http://" + addr, Kind: invocation.Lambda, Timeout: 5 * time.Second, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	const base, maxBackoff, simulated = time.Second, 64 * time.Second, 10 * time.Minute
	sched := qos.New(qos.Config{Limit: 20, QueueCapacity: 10, QueueTimeout: time.Minute})
	p := New(Config{Platform: invocation.Lambda, Min: 2, KeepAlive: time.Minute, Backoff: base, MaxBackoff: maxBackoff, Now: clock}, sched, up)
	defer p.Close()
	inv := &invocation.Invocation{Function: "fn", Platform: invocation.Lambda, Req: &fasthttp.Request{}, Resp: &fasthttp.Response{}}
	p.Arrived(inv)
	p.Finished(inv, time.Millisecond, nil)

	var rounds []time.Time
	last := int64(0)
	for elapsed := time.Duration(0); elapsed < simulated; elapsed += 100 * time.Millisecond {
		mu.Lock()
		now = now.Add(100 * time.Millisecond)
		mu.Unlock()
		p.Tick()
		p.sending.Wait()
		if w := emu.Stats().WarmupErrors; w != last {
			rounds = append(rounds, clock())
			last = w
		}
	}
	st := emu.Stats()
	if st.Warmups != st.WarmupErrors || st.Warmups == 0 {
		t.Fatalf("warm-ups %d, failed %d: want every one tried and failed", st.Warmups, st.WarmupErrors)
	}
	// Without back-off: 2 warm-ups per tick, 12000 in all.
	bound := int64(2 * (7 + int(simulated/maxBackoff) + 1)) // log2(64s/1s)+1 rounds to reach the cap
	if st.Warmups > bound {
		t.Errorf("%d warm-up attempts in %v, want at most %d", st.Warmups, simulated, bound)
	}
	for i := 2; i < len(rounds); i++ {
		if g, prev := rounds[i].Sub(rounds[i-1]), rounds[i-1].Sub(rounds[i-2]); g+100*time.Millisecond < prev {
			t.Errorf("gap between rounds shrank: %v after %v", g, prev)
		}
	}
	if g := rounds[len(rounds)-1].Sub(rounds[len(rounds)-2]); g < maxBackoff {
		t.Errorf("last gap %v, want the longest back-off %v", g, maxBackoff)
	}
	if st.Invocations != 0 {
		t.Errorf("%d real invocations counted, want 0", st.Invocations)
	}
}

// TestTickGapJitters: the gaps between keep-alive rounds are drawn at
// random between three and five quarters of the period, about the period
// on average, so that rounds take no fixed phase against periodic
// traffic; the longest stays well within the quarter of the keep-alive
// (twice the period) a round goes out ahead of expiry.
func TestTickGapJitters(t *testing.T) {
	const every = 250 * time.Millisecond
	const draws = 10000
	lo, hi, sum := time.Duration(math.MaxInt64), time.Duration(0), time.Duration(0)
	tenths := map[time.Duration]bool{}
	for range draws {
		g := tickGap(every)
		if g < every*3/4 || g >= every*5/4 {
			t.Fatalf("gap %v outside [%v, %v)", g, every*3/4, every*5/4)
		}
		lo, hi, sum = min(lo, g), max(hi, g), sum+g
		tenths[(g-every*3/4)/(every/20)] = true // which tenth of the range
	}
	if mean := sum / draws; mean < every*98/100 || mean > every*102/100 {
		t.Errorf("mean gap %v, want about %v", mean, every)
	}
	if len(tenths) != 10 || hi-lo < every*9/20 {
		t.Errorf("gaps %v to %v over %d tenths of the range: not spread", lo, hi, len(tenths))
	}
}
