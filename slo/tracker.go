package slo

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// burnWindow is one of the SRE workbook's multi-window, multi-burn-rate
// alert conditions, for a 30-day objective: the error budget burns faster
// than Factor times the sustainable rate over both Long and Short.
type burnWindow struct {
	Long, Short time.Duration // for a 30-day window; scaled to the objective's
	Factor      float64
	Severity    string
}

const month = 30 * 24 * time.Hour

// burnWindows are the workbook's table: 2% of the budget in an hour or 5%
// in six hours pages; 10% in a day or in three days opens a ticket.
var burnWindows = []burnWindow{
	{time.Hour, 5 * time.Minute, 14.4, "page"},
	{6 * time.Hour, 30 * time.Minute, 6, "page"},
	{24 * time.Hour, 2 * time.Hour, 3, "ticket"},
	{72 * time.Hour, 6 * time.Hour, 1, "ticket"},
}

// Alert names, as sequoia's webhook and the shipped rules name them.
const (
	AlertFastBurn        = "SequoiaSLOFastBurn"        // the workbook's page: severity critical
	AlertSlowBurn        = "SequoiaSLOSlowBurn"        // the workbook's ticket: severity warning
	AlertBudgetExhausted = "SequoiaSLOBudgetExhausted" // the objective is breached over its window: critical
)

// objective is a declared Objective being tracked.
type objective struct {
	Objective
	threshold time.Duration
	class     int // chains: the class, -1 any

	good, total atomic.Uint64 // cumulative, the hot path's only cost

	mu     sync.Mutex // guards what Evaluate writes
	fine   history    // REQUIRES: mu; one sample per evaluation, for the short windows
	coarse history    // REQUIRES: mu; the whole window, coarser
	state  State      // REQUIRES: mu; the last evaluation
}

// State is an objective's state at its last evaluation, as
// /sequoia/v1/status, the metrics and the policies see it.
type State struct {
	Name   string  `json:"name"`
	Kind   Kind    `json:"kind"`
	Target float64 `json:"target"`
	Window string  `json:"window"`
	// SLI is the share of good events over the window; Events their
	// number (good and bad).
	SLI    float64 `json:"sli"`
	Events uint64  `json:"events"`
	// BudgetRemaining is the share of the window's error budget left
	// (1: untouched, 0: spent, below 0: overspent: the objective is
	// breached).
	BudgetRemaining float64 `json:"budget_remaining"`
	// BurnRates maps each alert window (as scaled) to how many times
	// faster than sustainable the budget burned over it.
	BurnRates map[string]float64 `json:"burn_rates"`
	// Alerts are the alerts firing (AlertFastBurn, AlertSlowBurn,
	// AlertBudgetExhausted); Burning is true when a burn alert fires.
	Alerts    []string  `json:"alerts"`
	Burning   bool      `json:"burning"`
	Evaluated time.Time `json:"evaluated_at,omitzero"`
}

// sample is the cumulative counts at one time.
type sample struct {
	at          int64 // unix nanoseconds
	good, total uint64
}

// history keeps samples at least spacing apart, up to n of them.
type history struct {
	spacing time.Duration
	ring    []sample
	head, n int
}

func newHistory(spacing time.Duration, n int) history {
	return history{spacing: max(spacing, time.Nanosecond), ring: make([]sample, max(n, 2))}
}

func (h *history) add(s sample) {
	if h.n > 0 && s.at-h.last().at < int64(h.spacing) {
		return
	}
	h.ring[h.head] = s
	h.head = (h.head + 1) % len(h.ring)
	h.n = min(h.n+1, len(h.ring))
}

func (h *history) at(i int) sample { // 0: oldest
	return h.ring[(h.head-h.n+i+len(h.ring))%len(h.ring)]
}

func (h *history) last() sample { return h.at(h.n - 1) }

// before returns the newest sample at or before t, else the oldest.
func (h *history) before(t int64) sample {
	i := sort.Search(h.n, func(i int) bool { return h.at(i).at > t })
	if i == 0 {
		return h.at(0)
	}
	return h.at(i - 1)
}

// span is how far back the history reaches.
func (h *history) span() time.Duration { return h.spacing * time.Duration(len(h.ring)-1) }

// Config configures a Tracker.
type Config struct {
	Objectives []Objective
	// Interval is how often Run evaluates (the alerts' resolution).
	Interval time.Duration
	// Notify, when set, hears every objective's firing alerts after each
	// evaluation (the webhook).
	Notify func(states []State)
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Tracker tracks objectives: it counts good and bad events as
// invocations and chains end, and evaluates the SLIs, error budgets,
// burn rates and alerts at an interval.
type Tracker struct {
	cfg Config
	now func() time.Time
	set atomic.Pointer[objectiveSet] // swapped whole by Replace
	mu  sync.Mutex                   // serialises Replace
}

// objectiveSet is the objectives tracked, indexed for the hot path.
type objectiveSet struct {
	objs  []*objective
	byFn  map[string][]*objective
	byTen map[string][]*objective
	any   []*objective // latency and success objectives of every invocation
	fnTen []*objective // those selecting both a function and a tenant
	chain []*objective
}

// New returns a Tracker of cfg's objectives (checked by Parse).
func New(cfg Config) *Tracker {
	t := &Tracker{cfg: cfg, now: cfg.Now}
	if t.now == nil {
		t.now = time.Now
	}
	if t.cfg.Interval <= 0 {
		t.cfg.Interval = 30 * time.Second
	}
	t.set.Store(t.build(cfg.Objectives, nil))
	return t
}

// Replace tracks objs (checked by Parse, their names unique) from now on:
// an objective declared as before keeps its counts and history, a new
// one starts afresh, and one no longer declared is no longer tracked.
func (t *Tracker) Replace(objs []Objective) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.set.Store(t.build(objs, t.set.Load()))
}

// Objectives returns the objectives tracked, in declaration order.
func (t *Tracker) Objectives() []Objective {
	set := t.set.Load()
	out := make([]Objective, len(set.objs))
	for i, o := range set.objs {
		out[i] = o.Objective
	}
	return out
}

// build indexes objs, taking from old the objectives declared the same.
func (t *Tracker) build(objs []Objective, old *objectiveSet) *objectiveSet {
	set := &objectiveSet{byFn: map[string][]*objective{}, byTen: map[string][]*objective{}}
	start := sample{at: t.now().UnixNano()}
	for _, o := range objs {
		if o.window == 0 {
			_ = o.check()
		}
		var ob *objective
		if old != nil {
			for _, x := range old.objs {
				if reflect.DeepEqual(x.Objective, o) {
					ob = x
					break
				}
			}
		}
		if ob == nil {
			ob = t.newObjective(o, start)
		}
		set.objs = append(set.objs, ob)
		switch {
		case o.Kind == Chains:
			set.chain = append(set.chain, ob)
		case o.Function != "" && o.Tenant != "":
			set.fnTen = append(set.fnTen, ob)
		case o.Function != "":
			set.byFn[o.Function] = append(set.byFn[o.Function], ob)
		case o.Tenant != "":
			set.byTen[o.Tenant] = append(set.byTen[o.Tenant], ob)
		default:
			set.any = append(set.any, ob)
		}
	}
	return set
}

func (t *Tracker) newObjective(o Objective, start sample) *objective {
	ob := &objective{Objective: o, threshold: time.Duration(o.ThresholdMs * float64(time.Millisecond)), class: -1}
	// Short windows from one evaluation apart; the whole window in 8640
	// steps (5 minutes for 30 days).
	longestShort := o.window * 6 * time.Hour / month
	ob.fine = newHistory(t.cfg.Interval, int(longestShort/t.cfg.Interval)+2)
	ob.coarse = newHistory(max(o.window/8640, t.cfg.Interval), 8642)
	ob.fine.add(start)
	ob.coarse.add(start)
	ob.state = State{Name: o.Name, Kind: o.Kind, Target: o.Target, Window: o.windowString(), BudgetRemaining: 1, SLI: 1,
		BurnRates: map[string]float64{}}
	for _, w := range burnWindows {
		ob.state.BurnRates[windowName(ob.scale(w.Long))] = 0
		ob.state.BurnRates[windowName(ob.scale(w.Short))] = 0
	}
	if o.Class != "" {
		c, _ := qos.ParseClass([]byte(o.Class))
		ob.class = int(c)
	}
	return ob
}

func (o *Objective) windowString() string {
	if o.Window != "" {
		return o.Window
	}
	return model30d
}

const model30d = "30d"

// Interval is the evaluation interval.
func (t *Tracker) Interval() time.Duration { return t.cfg.Interval }

// Len is the number of objectives.
func (t *Tracker) Len() int { return len(t.set.Load().objs) }

// Arrived implements the proxy's and DAG runs' observer; nothing to do.
func (t *Tracker) Arrived(*invocation.Invocation) {}

// Finished counts an invocation that ended (the proxy's and DAG runs'
// observer): for latency objectives if it was answered, for success
// objectives unless sequoia refused it on purpose or its caller left.
// Cost with no objective for it: two map look-ups.
func (t *Tracker) Finished(inv *invocation.Invocation, _ time.Duration, err error) {
	set := t.set.Load()
	if len(set.objs) == len(set.chain) {
		return
	}
	fn, ten := set.byFn[inv.Function], set.byTen[inv.Tenant]
	if len(fn)+len(ten)+len(set.any)+len(set.fnTen) == 0 {
		return
	}
	latency := time.Since(inv.Arrival)
	counted, ok := outcome(inv, err)
	if !counted {
		return
	}
	for _, list := range [][]*objective{fn, ten, set.any} {
		for _, o := range list {
			o.observe(ok, latency)
		}
	}
	for _, o := range set.fnTen {
		if o.Function == inv.Function && o.Tenant == inv.Tenant {
			o.observe(ok, latency)
		}
	}
}

func (o *objective) observe(ok bool, latency time.Duration) {
	if o.Kind == Latency {
		if !ok {
			return // latency counts answered invocations only
		}
		ok = latency <= o.threshold
	}
	o.total.Add(1)
	if ok {
		o.good.Add(1)
	}
}

// outcome classifies an ended invocation: whether it counts, and whether
// it succeeded.
func outcome(inv *invocation.Invocation, err error) (counted, ok bool) {
	if err != nil {
		switch {
		case errorsIsAny(err, qos.ErrQueueFull, qos.ErrRefused, qos.ErrClientGone):
			return false, false // refused on purpose, or nobody waits
		}
		return true, false // queue timeout, chain deadline, platform unreachable
	}
	if inv.Resp == nil {
		return true, true
	}
	v, _ := platform.Classify(inv.Platform, inv.Resp)
	return true, v == platform.Done && inv.Resp.StatusCode() < fasthttp.StatusBadRequest
}

// ChainEnded counts an admitted chain's end (qos.Events) for the chains
// objectives that select it (by class, its first request's function, a
// DAG run's name, its tenant): dropped (its deadline passed while a step
// waited, a step answered late, its client gone) is bad; completed or
// ended otherwise is good.
func (t *Tracker) ChainEnded(e qos.ChainEnd) {
	for _, ob := range t.set.Load().chain {
		if ob.class >= 0 && ob.class != int(e.Class) ||
			ob.Function != "" && ob.Function != e.Function || ob.Tenant != "" && ob.Tenant != e.Tenant {
			continue
		}
		ob.total.Add(1)
		if !e.Outcome.Dropped() {
			ob.good.Add(1)
		}
	}
}

// Evaluate computes every objective's state now and hands the states to
// Notify. Run calls it at the interval; tests call it on a fake clock.
func (t *Tracker) Evaluate() []State {
	now := t.now()
	objs := t.set.Load().objs
	out := make([]State, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.evaluate(now))
	}
	if t.cfg.Notify != nil {
		t.cfg.Notify(out)
	}
	return out
}

// States returns the states of the last evaluation, in declaration order.
func (t *Tracker) States() []State {
	states, _ := t.statesCounts()
	return states
}

// statesCounts is States with each objective's cumulative good and total
// counts, read from one set of objectives.
func (t *Tracker) statesCounts() ([]State, [][2]uint64) {
	objs := t.set.Load().objs
	out := make([]State, 0, len(objs))
	counts := make([][2]uint64, 0, len(objs))
	for _, o := range objs {
		o.mu.Lock()
		s := o.state
		s.BurnRates = cloneMap(s.BurnRates)
		s.Alerts = slices.Clone(s.Alerts)
		o.mu.Unlock()
		out = append(out, s)
		counts = append(counts, [2]uint64{o.good.Load(), o.total.Load()})
	}
	return out, counts
}

func cloneMap(m map[string]float64) map[string]float64 {
	c := make(map[string]float64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Run evaluates at the interval until stop closes.
func (t *Tracker) Run(stop <-chan struct{}) {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.Evaluate()
		}
	}
}

func (o *objective) evaluate(now time.Time) State {
	cur := sample{at: now.UnixNano(), good: o.good.Load(), total: o.total.Load()}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fine.add(cur)
	o.coarse.add(cur)
	budget := 1 - o.Target
	// over returns the good and total counts over the last d.
	over := func(d time.Duration) (uint64, uint64) {
		h := &o.coarse
		if d <= o.fine.span() {
			h = &o.fine
		}
		past := h.before(cur.at - int64(d))
		return cur.good - past.good, cur.total - past.total
	}
	burn := func(d time.Duration) float64 {
		good, total := over(d)
		if total == 0 {
			return 0
		}
		return float64(total-good) / float64(total) / budget
	}
	st := State{Name: o.Name, Kind: o.Kind, Target: o.Target, Window: o.windowString(), Evaluated: now,
		BurnRates: make(map[string]float64, 8), SLI: 1, BudgetRemaining: 1}
	good, total := over(o.window)
	st.Events = total
	if total > 0 {
		st.SLI = float64(good) / float64(total)
		st.BudgetRemaining = 1 - float64(total-good)/(budget*float64(total))
	}
	firing := map[string]bool{}
	for _, w := range burnWindows {
		long, short := o.scale(w.Long), o.scale(w.Short)
		bl, bs := burn(long), burn(short)
		st.BurnRates[windowName(long)] = bl
		st.BurnRates[windowName(short)] = bs
		if bl > w.Factor && bs > w.Factor {
			if w.Severity == "page" {
				firing[AlertFastBurn] = true
			} else {
				firing[AlertSlowBurn] = true
			}
		}
	}
	if total > 0 && st.BudgetRemaining <= 0 {
		firing[AlertBudgetExhausted] = true
	}
	for _, a := range []string{AlertFastBurn, AlertSlowBurn, AlertBudgetExhausted} {
		if firing[a] {
			st.Alerts = append(st.Alerts, a)
		}
	}
	st.Burning = firing[AlertFastBurn] || firing[AlertSlowBurn]
	o.state = st
	return st
}

// scale turns a window of the 30-day table into this objective's.
func (o *objective) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * float64(o.window) / float64(month))
}

// windowName writes a window as Prometheus does (1h, 5m, 2h30m, 36s).
func windowName(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "0s"
	}
	var s string
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			s += fmt.Sprintf("%d%s", n, u.name)
			d -= n * u.d
		}
	}
	return s
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
