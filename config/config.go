package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

//go:generate go run ./refgen

// Prefix is the prefix of every variable sequoia reads.
const Prefix = "SEQUOIA_"

// Config is the whole configuration of `sequoia serve`. Each field is one
// concern, in a file of its own; docs/configuration.md and `sequoia serve
// --help` list the variables in this order.
type Config struct {
	Serving    Serving    // serving.go
	Backend    Backend    // backend.go
	Limits     Limits     // limits.go
	Scheduling Scheduling // scheduling.go
	Platforms  Platforms  // platforms.go
	Policy     Policy     // policy.go
	DAGs       DAGs       // dag.go
	WarmPool   WarmPool   // warmpool.go
	Cluster    Cluster    // cluster.go
	Events     Events     // events.go
	SLO        SLO        // slo.go
	Edge       Edge       // edge.go
	API        API        // edge.go
}

// Load reads the configuration from the environment and checks it.
func Load() (Config, error) { return LoadFrom(os.Environ()) }

// LoadFrom is Load over an explicit environment ("KEY=value" entries).
//
// The error lists every problem once, one per line, each about a variable
// the environment sets where it can: an unknown SEQUOIA_ variable (with
// the closest known name), a value that does not parse, a value that makes
// no sense. A problem that follows from another (a value checked against a
// variable that is itself bad) is left out, and one between a variable the
// environment sets and a default is reported about the one it sets.
func LoadFrom(environ []string) (Config, error) {
	envMap := environMap(environ)
	unknown := Unknown(environ)
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: Prefix, Environment: envMap})
	if err != nil {
		return Config{}, errors.Join(append(unknown, explain(err, envMap))...)
	}
	errs := append(unknown, cfg.problems(envMap)...)
	return cfg, errors.Join(errs...)
}

func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
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
			if v, ok := vars[pe.Name]; ok {
				msgs = append(msgs, fmt.Errorf("%s=%q: %w", v.Name, shown(v, envMap[v.Name]), pe.Err))
				continue
			}
		}
		msgs = append(msgs, e)
	}
	return errors.Join(msgs...)
}

// Validate checks values that parse but make no sense, as LoadFrom does
// for a configuration it did not read from an environment.
func (c Config) Validate() error { return errors.Join(c.problems(nil)...) }

// problem is one check's complaint about one variable.
type problem struct {
	name  string // without the prefix
	value any
	why   string
}

var mentioned = regexp.MustCompile(Prefix + `([A-Z0-9_]*[A-Z0-9])`)

// problems runs every concern's check and returns what it found, one error
// per variable, in declaration order. envMap is the environment the
// configuration was read from (nil: unknown), which decides whom a problem
// between two variables is reported about.
func (c Config) problems(envMap map[string]string) []error {
	var found []problem
	bad := func(name string, v any, why string) { found = append(found, problem{name, v, why}) }
	c.Serving.check(bad)
	c.Backend.check(bad)
	c.Limits.check(bad)
	c.Scheduling.check(bad)
	c.Platforms.check(c.Backend.Kind, bad)
	c.Policy.check(bad)
	c.DAGs.check(bad)
	c.WarmPool.check(c.Limits.MaxConcurrency, bad)
	c.Cluster.check(bad)
	c.Events.check(bad)
	c.SLO.check(bad)
	c.Edge.check(bad)
	c.API.check(bad)
	return report(found, envMap)
}

// report turns the checks' problems into errors: the first problem of each
// variable; none that mentions another variable with a problem of its own
// (it follows from that one); a problem of a variable the environment
// leaves at its default, reported about the variable it mentions that the
// environment sets.
func report(found []problem, envMap map[string]string) []error {
	vars := variablesByName()
	first := map[string]int{}
	var ps []problem
	for _, p := range found {
		if _, ok := first[p.name]; !ok {
			first[p.name] = len(ps)
			ps = append(ps, p)
		}
	}
	others := func(p problem) []string {
		var out []string
		for _, m := range mentioned.FindAllStringSubmatch(p.why, -1) {
			if m[1] != p.name && !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
		return out
	}
	// A problem follows from another when it mentions a variable whose
	// own problem does not follow from anything; iterate to a fixed point.
	follows := make([]bool, len(ps))
	for changed := true; changed; {
		changed = false
		for i, p := range ps {
			if follows[i] {
				continue
			}
			for _, o := range others(p) {
				if j, ok := first[o]; ok && !follows[j] && !slices.Contains(others(ps[j]), p.name) {
					follows[i], changed = true, true
					break
				}
			}
		}
	}
	type entry struct {
		order int
		err   error
	}
	var out []entry
	blamed := map[string]bool{}
	for i, p := range ps {
		if follows[i] {
			continue
		}
		name, value, why := p.name, p.value, p.why
		if _, set := envMap[Prefix+p.name]; envMap != nil && !set {
			for _, o := range others(p) {
				if raw, set := envMap[Prefix+o]; set {
					why = fmt.Sprintf("%s%s (%v, its default) %s", Prefix, p.name, p.value, p.why)
					name, value = o, shown(vars[Prefix+o], raw)
					break
				}
			}
		}
		if blamed[name] {
			continue
		}
		blamed[name] = true
		order := len(vars)
		if v, ok := vars[Prefix+name]; ok {
			order = v.index
		}
		out = append(out, entry{order, fmt.Errorf("%s%s=%v: %s", Prefix, name, value, why)})
	}
	slices.SortStableFunc(out, func(a, b entry) int { return a.order - b.order })
	errs := make([]error, len(out))
	for i, e := range out {
		errs[i] = e.err
	}
	return errs
}

// shown is a value as errors and `sequoia config` may show it: a secret's
// is hidden.
func shown(v Variable, value string) string {
	if v.Secret && value != "" {
		return "(hidden)"
	}
	return value
}

// Variable describes one configuration variable.
type Variable struct {
	Name    string // with the prefix
	Default string
	// Secret marks a value that is never printed (tag `secret:"true"`).
	Secret bool
	field  string // the Go field's name
	index  int
}

// Variables lists every variable Config reads, in declaration order.
func Variables() []Variable {
	var out []Variable
	walk(reflect.TypeFor[Config](), func(f reflect.StructField) {
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		out = append(out, Variable{Name: Prefix + name, Default: f.Tag.Get("envDefault"),
			Secret: f.Tag.Get("secret") == "true", field: f.Name, index: len(out)})
	})
	return out
}

func variablesByName() map[string]Variable {
	m := map[string]Variable{}
	for _, v := range Variables() {
		m[v.Name] = v
	}
	return m
}

// fieldVars maps Go field names (as caarlos0/env reports them) to variables.
func fieldVars() map[string]Variable {
	m := map[string]Variable{}
	for _, v := range Variables() {
		m[v.field] = v
	}
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
