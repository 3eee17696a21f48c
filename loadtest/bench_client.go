package loadtest

import (
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
