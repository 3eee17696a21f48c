package serve

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestKnativeQueueFullIsAThrottle: Knative answers an overloaded revision
// with 503 "pending request queue full"; sequoia treats it as a throttle,
// retries it and lowers its limit, so no client of a burst over the
// platform's limit sees it.
func TestKnativeQueueFullIsAThrottle(t *testing.T) {
	const limit, burst = 8, 150
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: limit, ExecTime: 15 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_MAX_CONCURRENCY=12")
	addr := s.dataLn.Addr().String()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: burst}
	var bad atomic.Int64
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://" + addr + "/hello")
			req.Header.SetMethod("POST")
			req.SetBodyString(`{}`)
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				bad.Add(1)
				t.Errorf("%v %d %s", err, resp.StatusCode(), resp.Body())
			}
		})
	}
	wg.Wait()
	st := emu.Stats()
	if bad.Load() != 0 || st.Functions["hello"].Completed != burst {
		t.Errorf("%d calls failed; platform completed %d of %d", bad.Load(), st.Functions["hello"].Completed, burst)
	}
	if st.Throttles > 0 && s.plat.limit.Throttles() != st.Throttles {
		t.Errorf("platform answered %d 503 queue-full, sequoia counted %d throttles", st.Throttles, s.plat.limit.Throttles())
	}
	t.Logf("503 queue full absorbed: %d; adaptive limit now %d", st.Throttles, s.plat.limit.Limit())
}
