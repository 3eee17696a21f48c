package loadtest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// NewClient returns the client RunChains uses: one connection per chain
// plus a few, per-request timeout as given.
func NewClient(chains int, timeout time.Duration) *fasthttp.Client {
	return &fasthttp.Client{
		MaxConnsPerHost:           chains + 16,
		ReadTimeout:               timeout,
		WriteTimeout:              timeout,
		NoDefaultUserAgentHeader:  true,
		MaxIdemponentCallAttempts: 1,
	}
}

// do sends one step: within what is left of the chain's deadline when the
// spec enforces it, retrying 429 answers as spec.Retries allows. Every 429
// but the last is counted in throttles here; the caller counts the last.
func (spec ChainSpec) do(c *fasthttp.Client, req *fasthttp.Request, resp *fasthttp.Response, start time.Time, throttles *atomic.Int64) error {
	for attempt := 0; ; attempt++ {
		var err error
		if spec.EnforceDeadline && spec.Deadline > 0 {
			left := spec.Deadline - time.Since(start)
			if left <= 0 {
				return fasthttp.ErrTimeout
			}
			err = c.DoTimeout(req, resp, left)
		} else {
			err = c.Do(req, resp)
		}
		if err != nil || resp.StatusCode() != fasthttp.StatusTooManyRequests || attempt >= spec.Retries {
			return err
		}
		wait := 20 * time.Millisecond
		if s, err := strconv.Atoi(string(resp.Header.Peek(fasthttp.HeaderRetryAfter))); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		if spec.Deadline > 0 && time.Since(start)+wait >= spec.Deadline {
			return nil // no time to retry: the 429 stands
		}
		throttles.Add(1)
		time.Sleep(wait)
		resp.Reset()
	}
}

// runChainNetHTTP runs chain i with net/http: a transport of its own, so
// that the chain opens a fresh connection that its steps share, and the
// chain's deadline (when enforced) as the context's, from before the
// connection is made.
func runChainNetHTTP(ctx context.Context, spec ChainSpec, i int, throttles *atomic.Int64) ChainResult {
	start := time.Now()
	if spec.EnforceDeadline && spec.Deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(spec.Deadline))
		defer cancel()
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: spec.Timeout}
	id, body := chainID(i), spec.body()
	steps := make([]StepTime, 0, spec.Steps)
	for step := 1; step <= spec.Steps; step++ {
		sent := time.Now()
		code := spec.doNetHTTP(ctx, client, id, step, body, start, throttles)
		steps = append(steps, StepTime{Latency: time.Since(sent), OK: code >= 200 && code <= 299})
		if code == http.StatusTooManyRequests {
			throttles.Add(1)
		}
		if out, failed := stepFailed(step, code); failed {
			return ChainResult{Outcome: out, FailStep: step, Status: code, Latency: time.Since(start), Steps: steps}
		}
	}
	return ChainResult{Outcome: Completed, Latency: time.Since(start), Steps: steps}
}

// doNetHTTP sends one step, retrying 429 answers as spec.Retries allows,
// and returns the status of its answer (0: none, the client gave up or
// the request failed). Every 429 but the last is counted in throttles.
func (spec ChainSpec) doNetHTTP(ctx context.Context, c *http.Client, id string, step int, body []byte, start time.Time, throttles *atomic.Int64) int {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, spec.stepURL(step), bytes.NewReader(body))
		if err != nil {
			return 0
		}
		req.Header.Set("Content-Type", "application/json")
		for _, h := range spec.headers(id, step) {
			req.Header.Set(h[0], h[1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0 // the deadline passed while the answer was read
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= spec.Retries {
			return resp.StatusCode
		}
		wait := 20 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		if spec.Deadline > 0 && time.Since(start)+wait >= spec.Deadline {
			return resp.StatusCode
		}
		throttles.Add(1)
		time.Sleep(wait)
	}
}
