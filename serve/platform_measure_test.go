package serve

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestMeasureAdaptiveLimit is the measurement of issue 4, not a pass/fail
// test: a closed loop of clients (more than the platform admits) runs
// through sequoia while the emulated account's limit goes 50 → 30 → 50.
// It reports, per 250ms, sequoia's limit, completions per second, errors
// the clients saw and throttles the platform answered; then the time to
// recover the full rate. Run with
//
//	SEQUOIA_MEASURE=1 go test -run TestMeasureAdaptiveLimit -v ./cmd/sequoia/
//
// (SEQUOIA_MEASURE_ADAPTIVE=false measures retries alone;
// SEQUOIA_MEASURE_CLIENTS sets the number of clients, 80 by default.)
func TestMeasureAdaptiveLimit(t *testing.T) {
	if os.Getenv("SEQUOIA_MEASURE") == "" {
		t.Skip("a measurement: set SEQUOIA_MEASURE=1 to run it")
	}
	const (
		phase  = 4 * time.Second
		bucket = 250 * time.Millisecond
	)
	clients := 80
	if n, err := strconv.Atoi(os.Getenv("SEQUOIA_MEASURE_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	adaptiveOn := os.Getenv("SEQUOIA_MEASURE_ADAPTIVE") != "false"
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 50, ExecTime: 40 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=50", "SEQUOIA_QUEUE_TIMEOUT=30s", fmt.Sprintf("SEQUOIA_ADAPTIVE=%v", adaptiveOn))
	addr := s.dataLn.Addr().String()

	type sample struct {
		at                        time.Duration
		limit                     int
		done, clientErr, throttle int64
	}
	var done, clientErr atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: clients}
	for range clients {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				select {
				case <-stop:
					return
				default:
				}
				req.Reset()
				req.SetRequestURI("http://" + addr + "/2015-03-31/functions/measure/invocations")
				req.Header.SetMethod("POST")
				req.SetBodyString(`{}`)
				if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					clientErr.Add(1)
					continue
				}
				done.Add(1)
			}
		})
	}
	start := time.Now()
	var samples []sample
	var lastDone, lastErr, lastThr int64
	for at := bucket; at <= 3*phase; at += bucket {
		time.Sleep(time.Until(start.Add(at)))
		switch at {
		case phase:
			emu.SetLimit(30)
		case 2 * phase:
			emu.SetLimit(50)
		}
		d, e, th := done.Load(), clientErr.Load(), emu.Stats().Throttles
		samples = append(samples, sample{at, s.sched.Limit(), d - lastDone, e - lastErr, th - lastThr})
		lastDone, lastErr, lastThr = d, e, th
	}
	close(stop)
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "%d clients, adaptive=%v; emulator limit 50 until %v, 30 until %v, then 50\n", clients, adaptiveOn, phase, 2*phase)
	fmt.Fprintf(&b, "%8s %6s %10s %11s %17s\n", "t", "limit", "done/s", "client_err", "platform_throttles")
	var full float64
	var n int
	var peakErrAfter1s, throttlesTotal, errTotal int64
	for _, sm := range samples {
		rate := float64(sm.done) / bucket.Seconds()
		fmt.Fprintf(&b, "%8v %6d %10.0f %11d %17d\n", sm.at, sm.limit, rate, sm.clientErr, sm.throttle)
		if sm.at > time.Second && sm.at <= phase {
			full += rate
			n++
		}
		if sm.at > time.Second {
			peakErrAfter1s = max(peakErrAfter1s, sm.clientErr)
		}
		throttlesTotal += sm.throttle
		errTotal += sm.clientErr
	}
	full /= float64(n)
	recovered := time.Duration(-1)
	for i, sm := range samples {
		if sm.at <= 2*phase || i+1 >= len(samples) {
			continue
		}
		// Two consecutive buckets at 95% of the full rate.
		if float64(sm.done)/bucket.Seconds() >= 0.95*full && float64(samples[i+1].done)/bucket.Seconds() >= 0.95*full {
			recovered = sm.at - bucket - 2*phase
			break
		}
	}
	fmt.Fprintf(&b, "full rate (1s-4s) %.0f/s; client errors %d in all, peak per 250ms after the first second %d; platform throttles %d; ",
		full, errTotal, peakErrAfter1s, throttlesTotal)
	fmt.Fprintf(&b, "recovered the full rate %v after the limit came back\n", recovered)
	t.Log("\n" + b.String())
}
