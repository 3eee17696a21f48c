package proxy

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/metrics"
)

// reservedCaps learns Lambda's reserved concurrency. A function whose
// reserved concurrency is below what sequoia would send it answers the
// excess with 429 ReservedFunctionConcurrentInvocationLimitExceeded: a
// throttle of that function alone, which says nothing of the account's
// limit (the adaptive limit ignores it). Retrying it blindly would hammer
// the function at its cap while other functions' work waits, so each such
// throttle caps the function at what it was running when refused (the
// other calls sequoia had in flight to it), and the scheduler then holds
// that function's excess in its queue (Invocation.FunctionCap, qos's
// per-function caps) where it no longer takes slots other functions could
// use.
//
// The cap probes back up like the adaptive limit: one more for every quiet
// period without such a throttle, so a raised reservation (or one shared
// with callers that went quiet) is found again; a throttle while probing
// sets it back. A cap that grew past maxLearnedCap is forgotten.
//
// Hot-path cost, Lambda only: one sync.Map load per attempt to read the
// cap (none learned: no lock), and two atomic adds around the platform call
// to count the function's calls in flight.
type reservedCaps struct {
	quiet time.Duration
	now   func() time.Time
	fns   sync.Map // function name -> *reservedFn
}

// maxLearnedCap bounds a probing cap: past it the function is treated as
// having no reservation.
const maxLearnedCap = 10000

type reservedFn struct {
	inFlight atomic.Int64 // calls at the platform now
	mu       sync.Mutex   // serialises throttled's read-modify-write
	learned  atomic.Int64 // cap at the last throttle; 0: none
	at       atomic.Int64 // when it was learned, Unix nanoseconds
}

func newReservedCaps(quiet time.Duration, now func() time.Time) *reservedCaps {
	if now == nil {
		now = time.Now
	}
	return &reservedCaps{quiet: quiet, now: now}
}

// state returns fn's state, created on first use. Function names are
// interned and bounded by the metrics table (SEQUOIA_MAX_FUNCTIONS), so
// the map is too.
func (r *reservedCaps) state(fn string) *reservedFn {
	if st, ok := r.fns.Load(fn); ok {
		return st.(*reservedFn)
	}
	st, _ := r.fns.LoadOrStore(fn, new(reservedFn))
	return st.(*reservedFn)
}

// capOf returns fn's learned cap now; 0 when none. No lock.
func (r *reservedCaps) capOf(fn string) int {
	v, ok := r.fns.Load(fn)
	if !ok {
		return 0
	}
	return v.(*reservedFn).current(r.now(), r.quiet)
}

// current is the cap probed up from the learned one: one more per quiet
// period since; 0 when none was learned or it grew past maxLearnedCap.
func (st *reservedFn) current(now time.Time, quiet time.Duration) int {
	c := st.learned.Load()
	if c == 0 {
		return 0
	}
	if quiet > 0 {
		if grown := now.Sub(time.Unix(0, st.at.Load())) / quiet; grown > 0 {
			c += int64(min(grown, maxLearnedCap))
		}
	}
	if c > maxLearnedCap {
		return 0
	}
	return int(c)
}

// throttled learns from a reserved-concurrency throttle of one of st's
// calls, still counted in flight: the others are what the function may
// run, unless the cap in force is already lower.
func (r *reservedCaps) throttled(st *reservedFn) {
	others := max(st.inFlight.Load()-1, 1)
	now := r.now()
	st.mu.Lock()
	defer st.mu.Unlock()
	if cur := int64(st.current(now, r.quiet)); cur > 0 && cur < others {
		others = cur
	}
	st.at.Store(now.UnixNano())
	st.learned.Store(others)
}

// effectiveCap combines a policy's cap for an invocation (0: none) with
// the learned one: the lower applies.
func effectiveCap(policy, learned int) int {
	if learned > 0 && (policy == 0 || learned < policy) {
		return learned
	}
	return policy
}

// ReservedCaps is the reserved-concurrency section of /sequoia/v1/status:
// the functions held to a learned cap, the most recently throttled first,
// at most the number asked for.
type ReservedCaps struct {
	// Quiet is SEQUOIA_ADAPTIVE_QUIET: a cap grows by one every Quiet
	// without a reserved-concurrency throttle.
	Quiet string `json:"grows_every"`
	// Functions is how many functions have a learned cap; Shown of them
	// are listed.
	Functions int           `json:"functions"`
	Shown     int           `json:"shown"`
	List      []ReservedCap `json:"by_function"`
}

// ReservedCap is one function's learned cap.
type ReservedCap struct {
	Function string `json:"function"`
	// Cap is the most calls sequoia lets run at once now; Learned is what
	// the last throttle set it to, before it grew back.
	Cap     int `json:"cap"`
	Learned int `json:"learned"`
	// Throttled is the last reserved-concurrency throttle; Changed is
	// when Cap last changed: that throttle, or its last growth step.
	Throttled time.Time `json:"throttled_at"`
	Changed   time.Time `json:"changed_at"`
}

// ReservedCaps reports the learned caps, at most limit of them; nil when
// the proxy does not learn them (not Lambda, or SEQUOIA_ADAPTIVE off). It
// walks every function the proxy has invoked, so it is for status
// readers, not the request path.
func (p *Proxy) ReservedCaps(limit int) *ReservedCaps {
	if p.plat.reserved == nil {
		return nil
	}
	st := p.plat.reserved.status(limit)
	return &st
}

// status lists the functions with a cap now, the most recently throttled
// first (then by name), at most limit of them.
func (r *reservedCaps) status(limit int) ReservedCaps {
	now := r.now()
	var list []ReservedCap
	r.fns.Range(func(k, v any) bool {
		if c, ok := v.(*reservedFn).status(now, r.quiet); ok {
			c.Function = k.(string)
			list = append(list, c)
		}
		return true
	})
	slices.SortFunc(list, func(a, b ReservedCap) int {
		return cmp.Or(b.Throttled.Compare(a.Throttled), cmp.Compare(a.Function, b.Function))
	})
	out := ReservedCaps{Quiet: r.quiet.String(), Functions: len(list), List: list[:min(len(list), max(limit, 0))]}
	out.Shown = len(out.List)
	if out.List == nil {
		out.List = []ReservedCap{}
	}
	return out
}

// status is st's cap now, when it has one. It takes st.mu so that the cap
// and its time are read from the same throttle.
func (st *reservedFn) status(now time.Time, quiet time.Duration) (ReservedCap, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := st.current(now, quiet)
	if c == 0 {
		return ReservedCap{}, false
	}
	learned := st.learned.Load()
	at := time.Unix(0, st.at.Load())
	changed := at
	if steps := int64(c) - learned; steps > 0 {
		changed = at.Add(time.Duration(steps) * quiet)
	}
	return ReservedCap{Cap: c, Learned: int(learned), Throttled: at.UTC(), Changed: changed.UTC()}, true
}

// collector exposes each learned cap.
func (r *reservedCaps) collector() prometheus.Collector { return reservedCollector{r} }

type reservedCollector struct{ r *reservedCaps }

var reservedDesc = prometheus.NewDesc(metrics.Namespace+"_function_reserved_cap",
	"Per-function concurrency cap learned from Lambda reserved-concurrency throttles (ReservedFunctionConcurrentInvocationLimitExceeded), probing up by one every SEQUOIA_ADAPTIVE_QUIET; functions without one are absent.",
	[]string{"function"}, nil)

func (c reservedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- reservedDesc }

func (c reservedCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.fns.Range(func(k, _ any) bool {
		if n := c.r.capOf(k.(string)); n > 0 {
			ch <- prometheus.MustNewConstMetric(reservedDesc, prometheus.GaugeValue, float64(n), k.(string))
		}
		return true
	})
}
