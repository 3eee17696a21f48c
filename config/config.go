package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Prefix is the prefix of every variable sequoia reads.
const Prefix = "SEQUOIA_"

// Serving configures the inbound servers and the process around them.
type Serving struct {
	// Listen is the data port's address: the platform's invoke API.
	Listen string `env:"LISTEN" envDefault:":8080"`
	// AdminListen is the admin port's address: metrics, health, status.
	// Loopback by default so that metrics are not exposed by accident.
	AdminListen string `env:"ADMIN_LISTEN" envDefault:"127.0.0.1:9090"`
	// AdminPprof serves Go's profiler under /debug/pprof/ on the admin
	// port, for measuring the proxy's own cost under load.
	AdminPprof bool `env:"ADMIN_PPROF" envDefault:"false"`
	// MaxBodyBytes bounds a request body; larger ones are answered 413.
	// The default is Lambda's 6 MiB synchronous payload limit.
	MaxBodyBytes int `env:"MAX_BODY_BYTES" envDefault:"6291456"`
	// ShutdownTimeout bounds how long queued and in-flight invocations may
	// take to finish after SIGTERM.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// DrainDelay is how long /readyz fails before the listener closes, so
	// that load balancers stop sending first.
	DrainDelay time.Duration `env:"DRAIN_DELAY" envDefault:"0s"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is json or text.
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

// Backend configures the platform sequoia fronts.
type Backend struct {
	// Kind is the platform's API: openwhisk, lambda or http (Knative and
	// plain HTTP functions).
	Kind string `env:"BACKEND" envDefault:"http"`
	// URL is the platform's base URL. It is the only place sequoia ever
	// forwards to.
	URL string `env:"BACKEND_URL" envDefault:"http://127.0.0.1:8081"`
	// Timeout bounds one invocation at the platform, connection included.
	Timeout time.Duration `env:"BACKEND_TIMEOUT" envDefault:"5m"`
	// HTTPRoute says how an http backend's function is named: by the Host
	// header's first label, by the first path segment, or auto (Host when
	// it is a DNS name with a dot, else the path).
	HTTPRoute string `env:"HTTP_ROUTE" envDefault:"auto"`
}

// Limits configures the worker pool and its queue.
type Limits struct {
	// MaxConcurrency is the platform concurrency this proxy may use: never
	// more invocations than this are in flight at the platform. Replicas
	// of one cluster (SEQUOIA_NATS_URL, SEQUOIA_CLUSTER) share it: it is
	// the budget of them all, leased out by demand.
	MaxConcurrency int `env:"MAX_CONCURRENCY" envDefault:"100"`
	// QueueCapacity bounds how many invocations may wait for a slot;
	// beyond it requests are answered 429.
	QueueCapacity int `env:"QUEUE_CAPACITY" envDefault:"1000"`
	// QueueTimeout bounds how long one invocation waits for a slot; past
	// it the request is answered 503.
	QueueTimeout time.Duration `env:"QUEUE_TIMEOUT" envDefault:"30s"`
	// MaxFunctions bounds how many distinct functions get their own
	// metrics series and state; the rest share the "_other" entry.
	MaxFunctions int `env:"MAX_FUNCTIONS" envDefault:"1000"`
}

// Config is the whole configuration of `sequoia serve`.
type Config struct {
	Serving    Serving
	Backend    Backend
	Limits     Limits
	Scheduling Scheduling
	Platforms  Platforms // platforms.go
	Policy     Policy    // policy.go
	DAGs       DAGs      // dag.go
	WarmPool   WarmPool  // warmpool.go
	Cluster    Cluster   // cluster.go
}

// Scheduling configures chains, admission, classes and fairness.
type Scheduling struct {
	// ChainTTL is how long the active-chain table remembers a chain after
	// its last request (a chain is also forgotten once its deadline passes).
	ChainTTL time.Duration `env:"CHAIN_TTL" envDefault:"5m"`
	// MaxChains bounds the active-chain table; the least recently seen
	// chain is forgotten first.
	MaxChains int `env:"MAX_CHAINS" envDefault:"100000"`
	// DefaultChainDeadline is the budget of a chain whose first request has
	// no X-Sequoia-Deadline-Ms; 0 means such chains have none and are
	// admitted on queue capacity alone.
	DefaultChainDeadline time.Duration `env:"DEFAULT_CHAIN_DEADLINE" envDefault:"0s"`
	// DefaultEstimate is the assumed duration of an invocation before any
	// has been observed.
	DefaultEstimate time.Duration `env:"DEFAULT_ESTIMATE" envDefault:"100ms"`
	// AdmissionHeadroom is the fraction of each chain's budget admission
	// keeps in reserve for delays sequoia cannot observe (the callers'
	// network, connection accept): a chain is admitted only if it is
	// projected to finish within (1 - headroom) × its budget.
	AdmissionHeadroom float64 `env:"ADMISSION_HEADROOM" envDefault:"0.05"`
	// ShortestFirst orders the waiters of one class and tenant by their
	// function's observed duration, shortest first, instead of earliest
	// deadline first.
	ShortestFirst bool `env:"SHORTEST_FIRST" envDefault:"false"`
	// DefaultClass is the class of requests without a known
	// X-Sequoia-Priority: interactive or batch.
	DefaultClass string `env:"DEFAULT_CLASS" envDefault:"interactive"`
	// BatchShare is the share of worker-slot grants the batch class gets
	// while both classes wait; interactive gets the rest.
	BatchShare float64 `env:"BATCH_SHARE" envDefault:"0.2"`
	// TenantCap and FunctionCap bound the slots one tenant or one function
	// may hold at once; 0 means no cap.
	TenantCap   int `env:"TENANT_CAP" envDefault:"0"`
	FunctionCap int `env:"FUNCTION_CAP" envDefault:"0"`
	// MaxRate bounds invocations per second sent to the platform (e.g. 1
	// for OpenWhisk's default 60 per minute); 0 means no bound. Replicas
	// of one cluster share it, in proportion to their leases of
	// SEQUOIA_MAX_CONCURRENCY.
	MaxRate float64 `env:"MAX_RATE" envDefault:"0"`
}

// Load reads the configuration from the environment and checks it.
func Load() (Config, error) { return LoadFrom(os.Environ()) }

// LoadFrom is Load over an explicit environment ("KEY=value" entries).
func LoadFrom(environ []string) (Config, error) {
	envMap := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: Prefix, Environment: envMap})
	if err != nil {
		return Config{}, explain(err, envMap)
	}
	return cfg, cfg.Validate()
}

// explain rewrites caarlos0/env's errors, which name Go fields, into ones
// that name the variable and the value the operator set.
func explain(err error, envMap map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	vars := fieldVars()
	msgs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if name, ok := vars[pe.Name]; ok {
				msgs = append(msgs, fmt.Errorf("%s=%q: %w", name, envMap[name], pe.Err))
				continue
			}
		}
		msgs = append(msgs, e)
	}
	return errors.Join(msgs...)
}

// Validate checks values that parse but make no sense.
func (c Config) Validate() error {
	var errs []error
	bad := func(name string, v any, why string) {
		errs = append(errs, fmt.Errorf("%s%s=%v: %s", Prefix, name, v, why))
	}
	s, b, l := c.Serving, c.Backend, c.Limits
	for name, addr := range map[string]string{"LISTEN": s.Listen, "ADMIN_LISTEN": s.AdminListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad(name, addr, "not a host:port address")
		}
	}
	if s.MaxBodyBytes <= 0 {
		bad("MAX_BODY_BYTES", s.MaxBodyBytes, "must be positive")
	}
	if s.ShutdownTimeout < 0 {
		bad("SHUTDOWN_TIMEOUT", s.ShutdownTimeout, "must not be negative")
	}
	if s.DrainDelay < 0 {
		bad("DRAIN_DELAY", s.DrainDelay, "must not be negative")
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", s.LogLevel, "must be debug, info, warn or error")
	}
	if s.LogFormat != "json" && s.LogFormat != "text" {
		bad("LOG_FORMAT", s.LogFormat, "must be json or text")
	}
	switch b.Kind {
	case "openwhisk", "lambda", "http":
	default:
		bad("BACKEND", b.Kind, "must be openwhisk, lambda or http")
	}
	if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("BACKEND_URL", b.URL, "must be an absolute http:// or https:// URL")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		bad("BACKEND_URL", b.URL, "must have no path or query: sequoia forwards the client's")
	}
	if b.Timeout <= 0 {
		bad("BACKEND_TIMEOUT", b.Timeout, "must be positive")
	}
	switch b.HTTPRoute {
	case "auto", "host", "path":
	default:
		bad("HTTP_ROUTE", b.HTTPRoute, "must be auto, host or path")
	}
	if l.MaxConcurrency <= 0 {
		bad("MAX_CONCURRENCY", l.MaxConcurrency, "must be positive")
	}
	if l.QueueCapacity < 0 {
		bad("QUEUE_CAPACITY", l.QueueCapacity, "must not be negative")
	}
	if l.QueueTimeout <= 0 {
		bad("QUEUE_TIMEOUT", l.QueueTimeout, "must be positive")
	}
	if l.MaxFunctions <= 0 {
		bad("MAX_FUNCTIONS", l.MaxFunctions, "must be positive")
	}
	sc := c.Scheduling
	if sc.ChainTTL <= 0 {
		bad("CHAIN_TTL", sc.ChainTTL, "must be positive")
	}
	if sc.MaxChains <= 0 {
		bad("MAX_CHAINS", sc.MaxChains, "must be positive")
	}
	if sc.DefaultChainDeadline < 0 {
		bad("DEFAULT_CHAIN_DEADLINE", sc.DefaultChainDeadline, "must not be negative")
	}
	if sc.DefaultEstimate <= 0 {
		bad("DEFAULT_ESTIMATE", sc.DefaultEstimate, "must be positive")
	}
	if !(sc.AdmissionHeadroom >= 0 && sc.AdmissionHeadroom <= 0.9) {
		bad("ADMISSION_HEADROOM", sc.AdmissionHeadroom, "must be between 0 and 0.9")
	}
	if sc.DefaultClass != "interactive" && sc.DefaultClass != "batch" {
		bad("DEFAULT_CLASS", sc.DefaultClass, "must be interactive or batch")
	}
	if !(sc.BatchShare > 0 && sc.BatchShare < 1) {
		bad("BATCH_SHARE", sc.BatchShare, "must be between 0 and 1, exclusive")
	}
	if sc.TenantCap < 0 {
		bad("TENANT_CAP", sc.TenantCap, "must not be negative")
	}
	if sc.FunctionCap < 0 {
		bad("FUNCTION_CAP", sc.FunctionCap, "must not be negative")
	}
	if !(sc.MaxRate >= 0) || math.IsInf(sc.MaxRate, 0) {
		bad("MAX_RATE", sc.MaxRate, "must be a finite number, not negative")
	}
	c.Platforms.check(b.Kind, bad)
	c.Policy.check(bad)
	c.DAGs.check(bad)
	c.WarmPool.check(l.MaxConcurrency, bad)
	c.Cluster.check(bad)
	return errors.Join(errs...)
}

// Variable describes one configuration variable.
type Variable struct {
	Name    string // with the prefix
	Default string
}

// Variables lists every variable Config reads, in declaration order.
func Variables() []Variable {
	var out []Variable
	walk(reflect.TypeFor[Config](), func(f reflect.StructField) {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		out = append(out, Variable{Name: Prefix + name, Default: f.Tag.Get("envDefault")})
	})
	return out
}

// fieldVars maps Go field names (as caarlos0/env reports them) to variables.
func fieldVars() map[string]string {
	m := map[string]string{}
	walk(reflect.TypeFor[Config](), func(f reflect.StructField) {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		m[f.Name] = Prefix + name
	})
	return m
}

func walk(t reflect.Type, fn func(reflect.StructField)) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Tag.Get("env") == "" && f.Type != reflect.TypeFor[time.Time]() {
			walk(f.Type, fn)
			continue
		}
		if f.Tag.Get("env") != "" {
			fn(f)
		}
	}
}

func walkFields(fn func(name string)) {
	walk(reflect.TypeFor[Config](), func(f reflect.StructField) { fn(f.Name) })
}
