package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/policies"
	"github.com/sequoia-qos/sequoia/slo"
)

// OnError is what a decision becomes when its evaluation fails or times
// out.
type OnError uint8

// The on-error behaviours (SEQUOIA_POLICY_ON_ERROR).
const (
	Allow OnError = iota // fall back to configuration, as if no policy had spoken
	Deny                 // refuse the invocation
)

// ParseOnError maps "allow" or "deny" to an OnError.
func ParseOnError(s string) (OnError, bool) {
	switch s {
	case "allow":
		return Allow, true
	case "deny":
		return Deny, true
	}
	return 0, false
}

// Options configures an Engine. Zero values take the defaults noted.
type Options struct {
	// Dir holds the .rego files; "" loads the shipped defaults (package
	// policies), which are then never reloaded.
	Dir string
	// Timeout bounds one evaluation (default 10ms).
	Timeout time.Duration
	// OnError says what an evaluation that fails or times out decides.
	OnError OnError
	// CacheSize bounds the decision cache (default 10000; negative
	// disables it).
	CacheSize int
	// Snapshot supplies the live state; nil means an empty snapshot.
	Snapshot SnapshotFunc
	// Refresh is how often Run takes a snapshot (default 1s).
	Refresh time.Duration
	// Debounce is how long Run waits after the last change in Dir before
	// reloading (default 200ms): editors and ConfigMap swaps write
	// several times in a row.
	Debounce time.Duration
	// Classes are the class names a decision may use (default
	// DefaultClasses).
	Classes []string
	// Registerer receives the engine's metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Log receives reloads and their failures; nil discards.
	Log *slog.Logger
	// SLOs, when set, takes the objectives each policy version declares
	// (data.sequoia.slos, slos.go; nil: none) just before the version
	// goes live; an error refuses the version as a compile error would.
	SLOs func([]slo.Objective) error
}

// ErrEvaluation wraps an evaluation that failed or timed out; the
// decision returned with it follows Options.OnError.
var ErrEvaluation = errors.New("policy: evaluation failed")

// denyOnError is the decision of a failed evaluation under Deny.
var denyOnError = Decision{Deny: true, Reason: "policy evaluation failed and SEQUOIA_POLICY_ON_ERROR is deny"}

// Engine evaluates data.sequoia.decision for invocations. It holds the
// running policy version and the converted snapshot behind atomic
// pointers, so Decide never takes a lock other than the cache's.
type Engine struct {
	opts Options
	log  *slog.Logger
	m    *engineMetrics

	cur  atomic.Pointer[running]
	snap atomic.Pointer[snapshot]

	reloadMu sync.Mutex // serialises reloads
	status   atomic.Pointer[Status]
}

// running is one policy version with its decision cache.
type running struct {
	*compiled
	cache *lru.Cache[cacheKey, Decision] // nil: not cached
}

// snapshot is one converted snapshot; epoch grows by one per refresh.
type snapshot struct {
	epoch uint64
	term  *ast.Term
}

// Status describes the running policy and the last reload, for
// /sequoia/v1/status.
type Status struct {
	// Version is the hash of the running policy's files.
	Version string    `json:"version"`
	Source  string    `json:"source"`
	Files   []string  `json:"files"`
	Loaded  time.Time `json:"loaded"`
	// LastError is the last reload that failed, if it came after the
	// running version was loaded; the running version stays in place.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
}

// New loads the policy (from opts.Dir or the shipped defaults) and
// returns an engine ready to decide. A policy that does not load is an
// error: at start-up there is nothing to fall back to.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Millisecond
	}
	if opts.CacheSize == 0 {
		opts.CacheSize = 10000
	}
	if opts.Refresh <= 0 {
		opts.Refresh = time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	if opts.Classes == nil {
		opts.Classes = DefaultClasses
	}
	e := &Engine{opts: opts, log: opts.Log, m: newEngineMetrics(opts.Registerer)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	e.refresh()
	if err := e.Reload(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// source is where the policy files come from.
func (e *Engine) source() (fs.FS, string) {
	if e.opts.Dir == "" {
		return policies.FS, "embedded"
	}
	return os.DirFS(e.opts.Dir), e.opts.Dir
}

// Reload reads, compiles and validates the policy files and, if all is
// well, swaps them in. On failure the running version stays, the error
// is logged and counted, and Status shows it. Files identical to the
// running version are not recompiled.
func (e *Engine) Reload(ctx context.Context) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	fsys, src := e.source()
	files, err := ReadFiles(fsys)
	if err == nil && len(files) > 0 {
		if cur := e.cur.Load(); cur != nil && cur.version == version(nonTest(files)) {
			// Back to the running version (say, a broken edit reverted):
			// nothing to compile, and no error to show any more.
			if st := e.status.Load(); st.LastError != "" {
				e.status.Store(&Status{Version: st.Version, Source: st.Source, Files: st.Files, Loaded: st.Loaded})
			}
			return nil
		}
	}
	var c *compiled
	if err == nil {
		c, err = compile(ctx, files, e.opts.Classes)
	}
	if err == nil && e.opts.SLOs != nil {
		if serr := e.opts.SLOs(c.slos); serr != nil {
			err = errSLOs(serr)
		}
	}
	if err != nil {
		e.m.reloads[reloadFailed].Inc()
		now := time.Now()
		st := Status{Source: src, LastError: err.Error(), LastErrorAt: &now}
		if old := e.status.Load(); old != nil {
			st.Version, st.Files, st.Loaded = old.Version, old.Files, old.Loaded
		}
		e.status.Store(&st)
		e.log.Error("policy not loaded; the running policy stays", "source", src, "running", st.Version, "err", err)
		return err
	}
	r := &running{compiled: c}
	if e.opts.CacheSize > 0 && c.uses&noCache == 0 {
		r.cache, _ = lru.New[cacheKey, Decision](e.opts.CacheSize)
	}
	e.cur.Store(r)
	e.m.reloads[reloadOK].Inc()
	e.m.setVersion(c.version)
	e.status.Store(&Status{Version: c.version, Source: src, Files: c.files, Loaded: time.Now()})
	e.log.Info("policy loaded", "source", src, "version", c.version, "files", c.files, "cached", r.cache != nil, "rules_never_holding", c.pruned)
	return nil
}

func nonTest(files []File) []File {
	var out []File
	for _, f := range files {
		if !f.IsTest() {
			out = append(out, f)
		}
	}
	return out
}

// Status returns the running version and the last reload error.
func (e *Engine) Status() Status { return *e.status.Load() }

// Version returns the running policy's version hash.
func (e *Engine) Version() string { return e.cur.Load().version }

// refresh takes a snapshot and converts it for the policies.
func (e *Engine) refresh() {
	var s Snapshot
	if e.opts.Snapshot != nil {
		s = e.opts.Snapshot()
	}
	v, err := s.value()
	if err != nil {
		e.log.Error("policy snapshot not converted", "err", err)
		return
	}
	var epoch uint64
	if old := e.snap.Load(); old != nil {
		if old.term.Value.Compare(v) == 0 {
			return // unchanged: cached decisions stay valid
		}
		epoch = old.epoch + 1
	}
	e.snap.Store(&snapshot{epoch: epoch, term: ast.NewTerm(v)})
}

// Refresh takes a new snapshot now; Run does it every Options.Refresh.
func (e *Engine) Refresh() { e.refresh() }

// Decide evaluates the decision for in. A cached decision costs one key
// build and one LRU lookup. An error (wrapping ErrEvaluation) means the
// evaluation failed or timed out; the decision returned with it is the
// one Options.OnError names, and the failure is counted.
func (e *Engine) Decide(ctx context.Context, in *Input) (Decision, error) {
	r := e.cur.Load()
	s := e.snap.Load()
	var k cacheKey
	if r.cache != nil {
		k = r.uses.key(in, s.epoch)
		if d, ok := r.cache.Get(k); ok {
			e.m.cache[cacheHit].Inc()
			e.m.count(d)
			return d, nil
		}
		e.m.cache[cacheMiss].Inc()
	}
	d, err := r.eval(ctx, in, s.term, &e.opts)
	if err != nil {
		kind := evalFailed
		if errors.Is(err, errTimeout) {
			kind = evalTimeout
		}
		e.m.errors[kind].Inc()
		if e.opts.OnError == Deny {
			d = denyOnError
		} else {
			d = Decision{}
		}
		e.m.count(d)
		return d, fmt.Errorf("%w: %w", ErrEvaluation, err)
	}
	if r.cache != nil {
		r.cache.Add(k, d)
	}
	e.m.count(d)
	return d, nil
}

var errTimeout = errors.New("timed out")

// eval evaluates the prepared query for in. With opts set, the
// evaluation is cancelled after opts.Timeout: a timer that cancels OPA's
// interpreter, cheaper than a context (which costs OPA a goroutine per
// evaluation).
//
// It drives OPA's interpreter (topdown) directly rather than through
// rego.PreparedEvalQuery, which adds per evaluation an evaluation
// context, metrics with timers, and a result set that is converted
// again: a fifth of a small policy's cost. The query itself is compiled
// once per policy version (compile).
func (p *compiled) eval(ctx context.Context, in *Input, snap *ast.Term, opts *Options) (Decision, error) {
	var timeout time.Duration
	if opts != nil {
		timeout = opts.Timeout
	}
	vc := newEvalCache(p.consts)
	defer vc.release()
	result, err := p.evalOne(ctx, Query, p.query, decisionVar, ast.NewTerm(in.value(snap, p.uses)), timeout, vc)
	if err != nil {
		return Decision{}, err
	}
	if result == nil {
		return Decision{}, nil // undefined: the policy said nothing
	}
	return decode(result.Value, p.classes)
}

// evalOne evaluates query, a compiled query of the document named name
// that binds v, for input, and returns v's value: nil when the document is
// undefined. A positive timeout cancels it then; vc, when set, caches
// virtual documents for it.
func (p *compiled) evalOne(ctx context.Context, name string, query ast.Body, v ast.Var, input *ast.Term,
	timeout time.Duration, vc *evalCache) (*ast.Term, error) {
	c := topdown.NewCancel()
	if timeout > 0 {
		t := time.AfterFunc(timeout, c.Cancel)
		defer t.Stop()
	}
	txn, err := p.store.NewTransaction(ctx)
	if err != nil {
		return nil, err
	}
	defer p.store.Abort(ctx, txn)
	q := topdown.NewQuery(query).
		WithQueryCompiler(p.queryCompiler).
		WithCompiler(p.compiler).
		WithStore(p.store).
		WithTransaction(txn).
		WithInput(input).
		WithCancel(c).
		WithMetrics(noMetrics)
	if vc != nil {
		q = q.WithVirtualCache(vc)
	}
	// The closure captures only got, so that it costs no more than one
	// that reads v itself would.
	var got topdown.QueryResult
	err = q.Iter(ctx, func(qr topdown.QueryResult) error {
		if got != nil {
			return errMultiple
		}
		got = qr
		return nil
	})
	if err != nil {
		var te *topdown.Error
		switch {
		case errors.As(err, &te) && te.Code == topdown.CancelErr:
			return nil, errTimeout
		case err == errMultiple:
			return nil, errors.New(name + " has more than one value")
		}
		return nil, err
	}
	return got[v], nil
}

// errMultiple stops an evaluation whose document has a second value.
var errMultiple = errors.New("more than one value")

// noMetrics: the engine keeps its own counters, and OPA's per-evaluation
// timers cost allocations.
var noMetrics = metrics.NoOp()

// Run keeps the engine current until ctx ends: a snapshot every
// Options.Refresh and, when Options.Dir is set, a reload after changes in
// the directory. It returns nil when ctx ends, or an error if the
// directory cannot be watched.
func (e *Engine) Run(ctx context.Context) error {
	var w *watcher
	if e.opts.Dir != "" {
		var err error
		if w, err = newWatcher(e.opts.Dir, e.opts.Debounce); err != nil {
			return err
		}
		defer w.close()
		// Changes made between the load and the watch would otherwise
		// wait for the next event.
		_ = e.Reload(ctx)
	}
	tick := time.NewTicker(e.opts.Refresh)
	defer tick.Stop()
	var changed <-chan struct{}
	if w != nil {
		changed = w.changed
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			e.refresh()
		case <-changed:
			_ = e.Reload(ctx) // logged, counted and shown in Status
		}
	}
}
