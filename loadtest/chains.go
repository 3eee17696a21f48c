package loadtest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ChainSpec describes a burst of chains.
type ChainSpec struct {
	BaseURL   string        // where to send: the platform or a proxy in front of it
	Chains    int           // how many chains start at once
	Steps     int           // invocations per chain
	Namespace string        // OpenWhisk namespace; "guest" when empty
	ExecMs    int           // per-invocation execution time asked of the emulator; 0 = its default
	Deadline  time.Duration // sent as X-Sequoia-Deadline-Ms when non-zero
	// Spread starts the chains evenly over this window instead of all at
	// once, so that new chains arrive while earlier ones continue.
	Spread  time.Duration
	Timeout time.Duration // per-request client timeout; 2m when zero
	// EnforceDeadline makes the client give up on a chain when Deadline
	// passes, as a caller with a budget does: a step still unanswered then
	// fails (a later step: the chain is dropped mid-chain).
	EnforceDeadline bool
	// Retries is how often a step answered 429 is retried (after 20ms, or
	// after Retry-After if the answer has one) while the deadline allows.
	Retries int
	// Untold sends no X-Sequoia-Chain-Steps: the chain does not say how
	// long it is, as most clients do not.
	Untold bool
	// Exec is the platform's execution time of a step, subtracted from
	// each step's latency to give its queueing time (Summary.Queue); 0
	// reports none.
	Exec time.Duration
	// NetHTTP sends with net/http, a fresh connection for each chain (its
	// steps share it), the chain's deadline a context deadline, instead
	// of fasthttp: a client unlike the bench's own, whose clock starts
	// before its connection is even accepted.
	NetHTTP bool
	// AssignedIDs sends the first step without an X-Sequoia-Chain-Id and
	// the later steps with the id the answer carried, as a caller that
	// lets sequoia assign ids does; else each chain chooses its own.
	AssignedIDs bool
	// Client, when set, sends the requests (so that a burst can reuse the
	// connections a warm-up opened); else a new one is made and closed.
	// Not used with NetHTTP.
	Client *fasthttp.Client
	// Progress, when set, is called once per chain as it ends.
	Progress func()
}

// Outcome is how one chain ended.
type Outcome uint8

// Chain outcomes.
const (
	Completed Outcome = iota // every step answered 2xx
	Refused                  // the first step was refused (429/503): no work done
	Dropped                  // a later step failed: work already done was wasted
	Failed                   // the first step failed otherwise
)

// ChainResult is one chain's record.
type ChainResult struct {
	Outcome  Outcome
	Latency  time.Duration // first request to last answer
	FailStep int           // 1-based step that ended a chain early; 0 if none
	Status   int           // status that ended it early
	// Steps is each step's time from sending it (its first attempt) to
	// its answer, or to the client giving up; OK says it was answered 2xx.
	Steps []StepTime
}

// StepTime is one step's record.
type StepTime struct {
	Latency time.Duration
	OK      bool
}

// Result is a burst's record.
type Result struct {
	Spec     ChainSpec
	Chains   []ChainResult
	Makespan time.Duration // burst start to last chain end
	Throttle int64         // 429 answers seen by the clients
}

// RunChains fires spec.Chains chains at once and waits for all to end.
func RunChains(ctx context.Context, spec ChainSpec) Result {
	if spec.Steps <= 0 {
		spec.Steps = 2
	}
	if spec.Namespace == "" {
		spec.Namespace = "guest"
	}
	if spec.Timeout <= 0 {
		spec.Timeout = 2 * time.Minute
	}
	client := spec.Client
	if client == nil && !spec.NetHTTP {
		client = NewClient(spec.Chains, spec.Timeout)
		defer client.CloseIdleConnections()
	}
	run := func(i int, throttles *atomic.Int64) ChainResult { return runChain(ctx, client, spec, i, throttles) }
	if spec.NetHTTP {
		run = func(i int, throttles *atomic.Int64) ChainResult { return runChainNetHTTP(ctx, spec, i, throttles) }
	}

	res := Result{Spec: spec, Chains: make([]ChainResult, spec.Chains)}
	var throttles atomic.Int64
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(1)
	for i := range spec.Chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Wait()
			if spec.Spread > 0 {
				time.Sleep(spec.Spread * time.Duration(i) / time.Duration(spec.Chains))
			}
			res.Chains[i] = run(i, &throttles)
			if spec.Progress != nil {
				spec.Progress()
			}
		}()
	}
	start := time.Now()
	ready.Done()
	wg.Wait()
	res.Makespan = time.Since(start)
	res.Throttle = throttles.Load()
	return res
}

func runChain(ctx context.Context, c *fasthttp.Client, spec ChainSpec, i int, throttles *atomic.Int64) ChainResult {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	chainID := chainID(i)
	body := spec.body()
	start := time.Now()
	steps := make([]StepTime, 0, spec.Steps)
	for step := 1; step <= spec.Steps; step++ {
		if ctx.Err() != nil {
			return ChainResult{Outcome: failedAt(step), FailStep: step, Steps: steps}
		}
		req.Reset()
		resp.Reset()
		req.SetRequestURI(spec.stepURL(step))
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		for _, h := range spec.headers(chainID, step) {
			req.Header.Set(h[0], h[1])
		}
		req.SetBody(body)
		sent := time.Now()
		err := spec.do(c, req, resp, start, throttles)
		code := resp.StatusCode()
		if err != nil {
			code = 0
		}
		steps = append(steps, StepTime{Latency: time.Since(sent), OK: err == nil && code >= 200 && code <= 299})
		if code == fasthttp.StatusTooManyRequests {
			throttles.Add(1)
		}
		if spec.AssignedIDs && step == 1 {
			chainID = string(resp.Header.Peek("X-Sequoia-Chain-Id"))
		}
		if out, failed := stepFailed(step, code); failed {
			return ChainResult{Outcome: out, FailStep: step, Status: code, Latency: time.Since(start), Steps: steps}
		}
	}
	return ChainResult{Outcome: Completed, Latency: time.Since(start), Steps: steps}
}

// chainID is chain i's id, unique across bursts.
func chainID(i int) string {
	return "demo-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func (spec ChainSpec) body() []byte {
	if spec.ExecMs > 0 {
		return []byte(`{"exec_ms":` + strconv.Itoa(spec.ExecMs) + `}`)
	}
	return []byte("{}")
}

func (spec ChainSpec) stepURL(step int) string {
	return fmt.Sprintf("%s/api/v1/namespaces/%s/actions/step%d?blocking=true&result=true", spec.BaseURL, spec.Namespace, step)
}

// headers are the sequoia headers of a chain's step: its id (none on the
// first step with AssignedIDs), and on the first step its deadline and
// (unless untold) its length.
func (spec ChainSpec) headers(chainID string, step int) [][2]string {
	var h [][2]string
	if !spec.AssignedIDs || step > 1 {
		h = append(h, [2]string{"X-Sequoia-Chain-Id", chainID})
	}
	if step == 1 {
		if spec.Deadline > 0 {
			h = append(h, [2]string{"X-Sequoia-Deadline-Ms", strconv.FormatInt(spec.Deadline.Milliseconds(), 10)})
		}
		if !spec.Untold {
			h = append(h, [2]string{"X-Sequoia-Chain-Steps", strconv.Itoa(spec.Steps)})
		}
	}
	return h
}

// stepFailed says whether a step answered code (0: no answer) ends its
// chain, and how.
func stepFailed(step, code int) (Outcome, bool) {
	if code >= 200 && code <= 299 {
		return Completed, false
	}
	if step == 1 && (code == fasthttp.StatusTooManyRequests || code == fasthttp.StatusServiceUnavailable) {
		return Refused, true
	}
	return failedAt(step), true
}

func failedAt(step int) Outcome {
	if step == 1 {
		return Failed
	}
	return Dropped
}

// Summary is a burst reduced to the figures compared side by side.
type Summary struct {
	Target    string `json:"target"`
	Chains    int    `json:"chains"`
	Completed int    `json:"completed"`
	Refused   int    `json:"refused_at_entry"`
	Dropped   int    `json:"dropped_mid_chain"`
	// DroppedBy504 of them were answered 504 by the target; the rest the
	// client gave up on (its deadline passed) or failed otherwise.
	DroppedBy504 int           `json:"dropped_by_504"`
	Failed       int           `json:"failed"`
	Throttles    int64         `json:"client_429s"`
	P50          time.Duration `json:"p50_chain_latency_ns"`
	P99          time.Duration `json:"p99_chain_latency_ns"`
	Makespan     time.Duration `json:"makespan_ns"`
	// Queue is the client's queueing time (with ChainSpec.Exec).
	Queue *Queueing `json:"queueing,omitempty"`
}

// Queueing is the time requests spent not being run, as the client sees
// it: for a step answered 2xx, its latency less the platform's execution
// time (Answered); for every step sent, answered or not, the same, or its
// whole latency when it was not run (refused, or given up on: All).
type Queueing struct {
	Answered QueueStats `json:"answered"`
	All      QueueStats `json:"all_requests"`
}

// QueueStats are a set of queueing times.
type QueueStats struct {
	Requests int           `json:"requests"`
	Mean     time.Duration `json:"mean_ns"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
}

func queueStats(d []time.Duration) QueueStats {
	q := QueueStats{Requests: len(d), P50: Percentile(d, 0.5), P99: Percentile(d, 0.99)}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	if len(d) > 0 {
		q.Mean = sum / time.Duration(len(d))
	}
	return q
}

// Summary reduces r; latencies are over completed chains.
func (r Result) Summary() Summary {
	s := Summary{Chains: len(r.Chains), Throttles: r.Throttle, Makespan: r.Makespan}
	var lat []time.Duration
	for _, c := range r.Chains {
		switch c.Outcome {
		case Completed:
			s.Completed++
			lat = append(lat, c.Latency)
		case Refused:
			s.Refused++
		case Dropped:
			s.Dropped++
			if c.Status == fasthttp.StatusGatewayTimeout {
				s.DroppedBy504++
			}
		case Failed:
			s.Failed++
		}
	}
	s.P50, s.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	if r.Spec.Exec > 0 {
		var answered, all []time.Duration
		for _, c := range r.Chains {
			for _, st := range c.Steps {
				q := st.Latency
				if st.OK {
					q = max(0, q-r.Spec.Exec)
					answered = append(answered, q)
				}
				all = append(all, q)
			}
		}
		s.Queue = &Queueing{Answered: queueStats(answered), All: queueStats(all)}
	}
	return s
}

// Percentile returns the p-quantile of d (nearest rank), 0 when empty.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
