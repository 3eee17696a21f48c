package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults applied by New to zero or negative fields.
const (
	DefaultLimit     = 50
	DefaultKeepAlive = 10 * time.Minute
)

// MaxBodyBytes is the largest request body the emulator takes, Lambda's
// limit for a synchronous invocation's payload (6 MiB); larger ones are
// answered 413.
const MaxBodyBytes = 6 << 20

// maxDelay caps an execution time or cold start asked for by a payload or
// the config endpoint, so a typo cannot park a slot for days.
const maxDelay = 15 * time.Minute

// Config is the emulated account. The zero Config is a 50-slot account whose
// functions run instantly, with no cold start and a 10-minute keep-alive:
// the cheapest platform, used as the "direct" baseline in benchmarks.
type Config struct {
	Limit         int           // account-wide concurrency limit; <=0 means 50
	ExecTime      time.Duration // default execution time (0 allowed)
	ColdStart     time.Duration // cold start per new instance
	KeepAlive     time.Duration // idle instance lifetime; <=0 means 10m
	RatePerMinute int           // per-namespace OpenWhisk rate limit; 0 = off
	FailWarmups   bool          // warm-ups fail in the platform's format, leaving no instance
	// Mode is how a call over Limit is answered (mode.go): the
	// platform's throttle (the default), or a function runtime's.
	Mode Mode
	// Queue is how many calls ModeQueue lets wait for a slot; <= 0
	// means 10 x Limit, Knative's queue-proxy's depth.
	Queue int
	// IgnoreHold makes warm-ups answer at once, ignoring
	// sequoia_warmup_hold_ms, as a function that does not honour it.
	IgnoreHold bool
	Logger     *slog.Logger // may be nil
}

// DefaultConfig is the configuration of `sequoia emulate` without flags:
// 50 slots, 40ms execution, 250ms cold start, 10-minute keep-alive.
func DefaultConfig() Config {
	return Config{
		Limit:     DefaultLimit,
		ExecTime:  40 * time.Millisecond,
		ColdStart: 250 * time.Millisecond,
		KeepAlive: DefaultKeepAlive,
	}
}

// Emulator is an emulated FaaS account. Its methods are safe for concurrent
// use. An Emulator serves at most once: after Shutdown it stays stopped.
type Emulator struct {
	log *slog.Logger
	srv *fasthttp.Server

	c counters // account-wide; c.inFlight is the count the limit applies to

	// Settings, changeable at run time. Durations are in nanoseconds.
	limit, execTime, coldStart, keepAlive, ratePerMinute atomic.Int64
	failWarmups                                          atomic.Bool

	mode       Mode  // fixed at New
	ignoreHold bool  // fixed at New
	queueCap   int64 // ModeQueue's most waiting calls, fixed at New; 0 in other modes
	queue      waitq // ModeQueue's waiting calls

	// gen is bumped by Reset; instances taken before a reset are not
	// returned to the pool and their completions are not counted.
	gen atomic.Uint64

	mu  sync.RWMutex
	fns map[string]*function // REQUIRES mu

	rateMu sync.Mutex
	rates  map[string]*window // REQUIRES rateMu; per OpenWhisk namespace
	now    func() time.Time   // the rate limiter's clock; tests replace it

	done     chan struct{} // closed by Shutdown: every delay ends at once
	stopOnce sync.Once

	lnMu    sync.Mutex
	lns     []net.Listener // REQUIRES lnMu
	stopped bool           // REQUIRES lnMu; also guards bg.Add
	bg      sync.WaitGroup // background (non-blocking, Event) invocations
}

// window is one namespace's request count in the current minute, the way
// OpenWhisk's rate throttler counts.
type window struct {
	minute int64
	count  int64
}

// New returns an Emulator for cfg. It does not listen: call Serve, or use
// Handler in-process, or call Start instead.
func New(cfg Config) *Emulator {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Emulator{
		log:   log,
		fns:   make(map[string]*function),
		rates: make(map[string]*window),
		now:   time.Now,
		done:  make(chan struct{}),
		mode:  cfg.Mode,

		ignoreHold: cfg.IgnoreHold,
	}
	e.SetLimit(cfg.Limit)
	if e.mode == ModeQueue {
		e.queueCap = int64(cfg.Queue)
		if e.queueCap <= 0 {
			e.queueCap = 10 * e.limit.Load()
		}
	}
	e.SetExecTime(cfg.ExecTime)
	e.SetColdStart(cfg.ColdStart)
	e.SetKeepAlive(cfg.KeepAlive)
	e.SetRatePerMinute(cfg.RatePerMinute)
	e.SetFailWarmups(cfg.FailWarmups)
	e.srv = &fasthttp.Server{
		Handler:                       e.handle,
		Name:                          "sequoia-emulator",
		MaxRequestBodySize:            MaxBodyBytes,
		ErrorHandler:                  writeRequestError,
		CloseOnShutdown:               true,
		DisablePreParseMultipartForm:  true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		Logger:                        fasthttpLogger{log},
	}
	return e
}

// Start listens on 127.0.0.1 on a free port and serves in a goroutine. It
// returns the Emulator and its "host:port"; stop it with Shutdown.
func Start(cfg Config) (e *Emulator, addr string, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("emulator: listen: %w", err)
	}
	e = New(cfg)
	go func() {
		if err := e.Serve(ln); err != nil {
			e.log.Error("emulator stopped serving", "err", err)
		}
	}()
	return e, ln.Addr().String(), nil
}

// Serve answers requests on ln until Shutdown, then returns nil.
func (e *Emulator) Serve(ln net.Listener) error {
	e.lnMu.Lock()
	if e.stopped {
		e.lnMu.Unlock()
		return ln.Close()
	}
	e.lns = append(e.lns, ln)
	e.lnMu.Unlock()
	e.log.Info("emulator serving", "addr", ln.Addr().String(), "mode", e.mode.String(), "limit", e.limit.Load(),
		"exec", time.Duration(e.execTime.Load()), "cold_start", time.Duration(e.coldStart.Load()),
		"keepalive", time.Duration(e.keepAlive.Load()), "rate_per_minute", e.ratePerMinute.Load())
	return e.srv.Serve(ln)
}

// Shutdown stops the server: running invocations end at once (their
// clients get a 503), open connections are closed, background invocations
// are waited for. It is safe to call more than once.
func (e *Emulator) Shutdown() error {
	var err error
	e.stopOnce.Do(func() {
		close(e.done)
		e.lnMu.Lock()
		e.stopped = true
		lns := e.lns
		e.lnMu.Unlock()
		err = e.srv.Shutdown()
		// A Serve that had not yet handed its listener to fasthttp would
		// otherwise outlive Shutdown; a second Close is harmless.
		for _, ln := range lns {
			_ = ln.Close()
		}
		e.bg.Wait()
	})
	return err
}

// Handler returns the request handler, for serving the emulator in-process
// (fasthttputil.InmemoryListener, or a test's own fasthttp.Server).
func (e *Emulator) Handler() fasthttp.RequestHandler { return e.handle }

// SetLimit changes the account-wide concurrency limit; n <= 0 means 50;
// ModeSerial keeps 1. Invocations already running are not affected; in
// ModeQueue, waiting calls take the slots a raise frees.
func (e *Emulator) SetLimit(n int) {
	if n <= 0 {
		n = DefaultLimit
	}
	if e.mode == ModeSerial {
		n = 1
	}
	e.limit.Store(int64(n))
	if e.mode == ModeQueue {
		e.admitQueued()
	}
}

// SetExecTime changes the default execution time; negative means 0.
func (e *Emulator) SetExecTime(d time.Duration) { e.execTime.Store(int64(clampDelay(d))) }

// SetColdStart changes the cold start paid by each new instance.
func (e *Emulator) SetColdStart(d time.Duration) { e.coldStart.Store(int64(clampDelay(d))) }

// SetKeepAlive changes how long an idle instance stays warm; <= 0 means 10m.
// It applies to instances already idle too.
func (e *Emulator) SetKeepAlive(d time.Duration) {
	if d <= 0 {
		d = DefaultKeepAlive
	}
	e.keepAlive.Store(int64(d))
}

// SetReserved gives the function named key (as Stats names it: "name" for
// Lambda) a reserved concurrency of n, as Lambda's PutFunctionConcurrency
// does; 0 removes it. Calls over it are throttled with Lambda's
// ReservedFunctionConcurrentInvocationLimitExceeded.
func (e *Emulator) SetReserved(key string, n int) {
	e.function([]byte(key)).reserved.Store(int64(max(n, 0)))
}

// SetRatePerMinute changes the per-namespace OpenWhisk rate limit; 0 is off.
func (e *Emulator) SetRatePerMinute(n int) { e.ratePerMinute.Store(int64(max(n, 0))) }

// SetFailWarmups makes warm-ups fail (true) or succeed (false).
func (e *Emulator) SetFailWarmups(fail bool) { e.failWarmups.Store(fail) }

// Config returns the settings in force (Logger is left nil).
func (e *Emulator) Config() Config {
	return Config{
		Limit:         int(e.limit.Load()),
		ExecTime:      time.Duration(e.execTime.Load()),
		ColdStart:     time.Duration(e.coldStart.Load()),
		KeepAlive:     time.Duration(e.keepAlive.Load()),
		RatePerMinute: int(e.ratePerMinute.Load()),
		FailWarmups:   e.failWarmups.Load(),
		Mode:          e.mode,
		Queue:         int(e.queueCap),
		IgnoreHold:    e.ignoreHold,
	}
}

// Stats returns a snapshot of the counters. It takes each function's lock
// briefly, so it is not for the hot path.
func (e *Emulator) Stats() Stats {
	now := time.Now()
	keep := time.Duration(e.keepAlive.Load())
	e.mu.RLock()
	fns := make([]*function, 0, len(e.fns))
	for _, fn := range e.fns {
		fns = append(fns, fn)
	}
	e.mu.RUnlock()
	s := Stats{
		Counters:  e.c.snapshot(),
		Limit:     int(e.limit.Load()),
		Mode:      e.mode.String(),
		Waiting:   e.Waiting(),
		Functions: make(map[string]FunctionStats, len(fns)),
	}
	for _, fn := range fns {
		warm, live := fn.warm(now, keep)
		s.Functions[fn.name] = FunctionStats{Counters: fn.c.snapshot(), WarmInstances: warm, LiveInstances: live}
	}
	return s
}

// Reset zeroes the counters, drops every warm instance and clears the rate
// windows. Invocations running across a reset still hold their slot (they
// stay in in_flight) but leave no instance behind and are not counted as
// completed.
func (e *Emulator) Reset() {
	e.gen.Add(1)
	e.mu.RLock()
	for _, fn := range e.fns {
		fn.reset()
	}
	e.mu.RUnlock()
	e.c.reset()
	e.rateMu.Lock()
	clear(e.rates)
	e.rateMu.Unlock()
	e.log.Info("emulator reset")
}

// function returns the state for a function identity, creating it on first
// sight. Cost: a read lock and a map lookup that does not allocate.
func (e *Emulator) function(key []byte) *function {
	e.mu.RLock()
	fn := e.fns[string(key)]
	e.mu.RUnlock()
	if fn != nil {
		return fn
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if fn = e.fns[string(key)]; fn == nil {
		fn = &function{name: string(key)}
		e.fns[fn.name] = fn
	}
	return fn
}

// acquire claims one slot of the account limit, or reports the number in
// flight when none is free. Cost: one or a few atomic compare-and-swaps.
func (e *Emulator) acquire() (inFlight int64, ok bool) {
	limit := e.limit.Load()
	for {
		n := e.c.inFlight.Load()
		if n >= limit {
			return n, false
		}
		if e.c.inFlight.CompareAndSwap(n, n+1) {
			e.c.raisePeak(n + 1)
			return n + 1, true
		}
	}
}

// release gives back a slot claimed by acquire (or acquireQueued) and
// fn.c.enter.
func (e *Emulator) release(fn *function) {
	fn.c.inFlight.Add(-1)
	e.releaseSlot()
}

// allowRate counts one request against the namespace's per-minute budget,
// or refuses it when the budget is spent.
func (e *Emulator) allowRate(ns []byte) (count, limit int64, ok bool) {
	limit = e.ratePerMinute.Load()
	if limit <= 0 {
		return 0, 0, true
	}
	minute := e.now().Unix() / 60
	e.rateMu.Lock()
	defer e.rateMu.Unlock()
	w := e.rates[string(ns)]
	if w == nil {
		w = &window{}
		e.rates[string(ns)] = w
	}
	if w.minute != minute {
		w.minute, w.count = minute, 0
	}
	if w.count >= limit {
		return w.count, limit, false
	}
	w.count++
	return w.count, limit, true
}

// outcome is what one invocation did.
type outcome struct {
	instance int64
	cold     bool
	failed   bool
	aborted  bool // Shutdown cut it short
	start    time.Time
	end      time.Time
	init     time.Duration // cold start paid
}

// run executes one invocation on fn. REQUIRES: a slot claimed by acquire
// and fn.c.enter; run gives both back. The instance returns to the idle set
// before the slot is released, so the next call sees it warm.
func (e *Emulator) run(fn *function, exec time.Duration, fail, warmup bool) (o outcome) {
	defer e.release(fn)
	gen := e.gen.Load()
	if warmup && e.failWarmups.Load() {
		e.c.warmups.Add(1)
		fn.c.warmups.Add(1)
		e.c.warmupErrors.Add(1)
		fn.c.warmupErrors.Add(1)
		return outcome{failed: true}
	}
	o.start = time.Now()
	o.instance, o.cold = fn.take(o.start, time.Duration(e.keepAlive.Load()))
	switch {
	case warmup:
		e.c.warmups.Add(1)
		fn.c.warmups.Add(1)
		if o.cold {
			e.c.warmupColdStarts.Add(1)
			fn.c.warmupColdStarts.Add(1)
		}
	default:
		e.c.invocations.Add(1)
		fn.c.invocations.Add(1)
		if o.cold {
			e.c.coldStarts.Add(1)
			fn.c.coldStarts.Add(1)
		}
	}
	ok := true
	if o.cold {
		o.init = time.Duration(e.coldStart.Load())
		ok = e.sleep(o.init)
	}
	if ok && (!warmup || exec > 0) { // a warm-up runs only its asked hold
		ok = e.sleep(exec)
	}
	o.end = time.Now()
	if !ok {
		fn.lose()
		o.aborted = true
		return o
	}
	fn.put(o.instance, o.end, gen, e)
	if warmup {
		return o
	}
	o.failed = fail
	if e.gen.Load() == gen {
		e.c.completed.Add(1)
		fn.c.completed.Add(1)
		if fail {
			e.c.errors.Add(1)
			fn.c.errors.Add(1)
		}
	}
	return o
}

// background runs f in a goroutine that Shutdown waits for, unless the
// emulator is already stopped.
func (e *Emulator) background(f func()) bool {
	e.lnMu.Lock()
	defer e.lnMu.Unlock()
	if e.stopped {
		return false
	}
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		f()
	}()
	return true
}

var timers sync.Pool

// sleep waits d, or less if Shutdown comes first (it then returns false).
// Timers are pooled: since Go 1.23 a stopped or fired timer can be reset
// without draining.
func (e *Emulator) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t, _ := timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(d)
	} else {
		t.Reset(d)
	}
	defer timers.Put(t)
	select {
	case <-t.C:
		return true
	case <-e.done:
		t.Stop()
		return false
	}
}

func clampDelay(d time.Duration) time.Duration { return min(max(d, 0), maxDelay) }

// payload is what the emulator reads from a request body.
type payload struct {
	input   []byte // the body when it is valid JSON, else nil
	exec    time.Duration
	hasExec bool
	fail    bool
	warmup  bool
	hold    time.Duration // sequoia_warmup_hold_ms: how long a warm-up keeps its instance
}

// parsePayload reads the overrides from a JSON body. Bodies that are not
// JSON, or are JSON without any override key, cost one validity scan and no
// decoding.
func parsePayload(body []byte) (p payload) {
	if len(body) == 0 || !json.Valid(body) {
		return p
	}
	p.input = body
	if t := bytes.TrimLeft(body, " \t\r\n"); t[0] != '{' {
		return p
	}
	if !bytes.Contains(body, []byte(`"exec_ms"`)) && !bytes.Contains(body, []byte(`"fail"`)) &&
		!bytes.Contains(body, []byte(`"sequoia_warmup"`)) {
		return p
	}
	var v struct {
		ExecMs any `json:"exec_ms"` // only a number counts

		Fail   bool    `json:"fail"`
		Warmup bool    `json:"sequoia_warmup"`
		HoldMs float64 `json:"sequoia_warmup_hold_ms"`
	}
	// A field of the wrong type is skipped; the others are still read.
	_ = json.Unmarshal(body, &v)
	if ms, ok := v.ExecMs.(float64); ok {
		p.exec, p.hasExec = msToDuration(ms), true
	}
	p.fail, p.warmup = v.Fail, v.Warmup
	if v.Warmup {
		p.hold = msToDuration(v.HoldMs)
	}
	return p
}

func msToDuration(ms float64) time.Duration {
	if ms <= 0 {
		return 0
	}
	if ms >= float64(maxDelay/time.Millisecond) {
		return maxDelay
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// fasthttpLogger sends fasthttp's own complaints to slog.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Warn(fmt.Sprintf(format, args...), "component", "fasthttp")
}
