package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/sequoia-qos/sequoia/slo"
)

// Query is the document sequoia evaluates once per invocation.
const Query = "data.sequoia.decision"

var queryRef = ast.MustParseRef(Query)

// decisionQuery binds the decision to decisionVar.
var (
	decisionVar   = ast.Var("decision")
	decisionQuery = ast.NewBody(ast.Equality.Expr(ast.NewTerm(decisionVar), ast.NewTerm(queryRef)))
)

// File is one Rego source file.
type File struct {
	Name string
	Data []byte
}

// IsTest reports whether f holds Rego unit tests, which are compiled and
// run by Check but never loaded into a running policy.
func (f File) IsTest() bool { return strings.HasSuffix(f.Name, "_test.rego") }

// ReadFiles reads the .rego files at the top of fsys, sorted by name.
// Names starting with "." are skipped: Kubernetes keeps a ConfigMap
// volume's real files under "..data" and "..<timestamp>" and links the
// visible names to them.
func ReadFiles(fsys fs.FS) ([]File, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var files []File
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || path.Ext(name) != ".rego" {
			continue
		}
		data, err := fs.ReadFile(fsys, name) // follows the ConfigMap's symlinks
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && e.Type()&fs.ModeSymlink != 0 {
				continue // a dangling link, mid-swap: the next event re-reads
			}
			return nil, err
		}
		files = append(files, File{Name: name, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// Problem is one thing wrong with a policy, located when OPA can tell
// where.
type Problem struct {
	File    string
	Line    int
	Message string
	// Test is the failing Rego test's full name (data.PKG.test_NAME);
	// empty for other problems.
	Test string
	// Details are further lines: for a failing test, the input it gave and
	// the values it compared.
	Details []string
}

// String is the problem as FILE:LINE: MESSAGE, then each detail on a line
// of its own, indented.
func (p Problem) String() string {
	var s string
	switch {
	case p.File != "" && p.Line > 0:
		s = fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	case p.File != "":
		s = p.File + ": " + p.Message
	default:
		s = p.Message
	}
	for _, d := range p.Details {
		s += "\n    " + d
	}
	return s
}

// Error is a policy that could not be loaded: every problem found.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

func astProblems(err error) *Error {
	var errs ast.Errors
	if !errors.As(err, &errs) {
		var one *ast.Error
		if errors.As(err, &one) {
			errs = ast.Errors{one}
		} else {
			return &Error{[]Problem{{Message: err.Error()}}}
		}
	}
	out := &Error{}
	for _, e := range errs {
		p := Problem{Message: e.Message}
		if e.Location != nil {
			p.File, p.Line = e.Location.File, e.Location.Row
		}
		out.Problems = append(out.Problems, p)
	}
	return out
}

func problem(loc *ast.Location, format string, args ...any) *Error {
	p := Problem{Message: fmt.Sprintf(format, args...)}
	if loc != nil {
		p.File, p.Line = loc.File, loc.Row
	}
	return &Error{[]Problem{p}}
}

// parse parses files in Rego v1 syntax.
func parse(files []File) (map[string]*ast.Module, error) {
	mods := make(map[string]*ast.Module, len(files))
	var all Error
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.Name, string(f.Data), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			all.Problems = append(all.Problems, astProblems(err).Problems...)
			continue
		}
		mods[f.Name] = m
	}
	if len(all.Problems) > 0 {
		return nil, &all
	}
	return mods, nil
}

// version hashes the files that make up a running policy.
func version(files []File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// compiled is one policy version, compiled and prepared.
type compiled struct {
	version string
	files   []string
	// query is `decision = data.sequoia.decision`, compiled against
	// compiler; store is empty (policies are all rules) but OPA reads
	// base documents through it.
	query         ast.Body
	queryCompiler ast.QueryCompiler
	compiler      *ast.Compiler
	store         storage.Store
	uses          uses
	decision      *ast.Location // where data.sequoia.decision is defined
	consts        constants
	pruned        int // rules left out as never holding (prune.go)
	classes       []string
	// dagAllowed and dagDeny are the DAG-write queries (dagwrite.go).
	dagAllowed, dagDeny ast.Body
	// slos are the objectives the policy declares (slos.go).
	slos []slo.Objective
}

// compile parses, compiles and prepares the non-test files, then checks
// the decision against the schema for the test inputs.
func compile(ctx context.Context, files []File, classes []string) (*compiled, error) {
	return compileWith(ctx, files, classes, true)
}

// compileWith is compile, leaving out the rules that never hold when
// pruneDead is set (tests compare both).
func compileWith(ctx context.Context, files []File, classes []string, pruneDead bool) (*compiled, error) {
	var run []File
	for _, f := range files {
		if !f.IsTest() {
			run = append(run, f)
		}
	}
	if len(run) == 0 {
		return nil, &Error{[]Problem{{Message: "no .rego files (other than tests) to load"}}}
	}
	mods, err := parse(run)
	if err != nil {
		return nil, err
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(mods); c.Failed() {
		return nil, astProblems(c.Errors)
	}
	// The decision is one rule, or one rule per field (decision.allow).
	rules := c.GetRulesExact(queryRef)
	if len(rules) == 0 {
		rules = c.GetRules(queryRef)
	}
	if len(rules) == 0 {
		return nil, &Error{[]Problem{{Message: Query + " is not defined by any file"}}}
	}
	if err := unused(c); err != nil {
		return nil, err
	}
	if err := unread(c); err != nil {
		return nil, err
	}
	p := &compiled{version: version(run), classes: classes, uses: analyse(c), consts: findConstants(c)}
	for _, f := range run {
		p.files = append(p.files, f.Name)
	}
	p.decision = rules[0].Location
	// Evaluate without the rules that can never hold. Should the rest not
	// compile on its own (a rule that only dead rules defined, read by
	// name), the whole policy is evaluated as written.
	if dead := deadRules(c, p.consts); pruneDead && len(dead) > 0 {
		if pm, err := parse(run); err == nil {
			n := prune(pm, dead)
			pc := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
			if pc.Compile(pm); !pc.Failed() && len(pc.GetRules(queryRef)) > 0 {
				c, p.consts, p.pruned = pc, findConstants(pc), n
			}
		}
	}
	p.compiler, p.store = c, inmem.New()
	p.queryCompiler = c.QueryCompiler()
	if p.query, err = p.queryCompiler.Compile(decisionQuery); err != nil {
		return nil, astProblems(err)
	}
	if err := p.compileDAG(); err != nil {
		return nil, err
	}
	if err := p.loadSLOs(ctx); err != nil {
		return nil, err
	}
	if err := p.validate(ctx); err != nil {
		return nil, err
	}
	if err := p.validateDAG(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// unused refuses files whose package nothing reads: only data.sequoia
// reaches the decision, so a file in another package that no other file
// refers to is a policy that silently does nothing (a typo in its package
// line, or a file written for another layout).
func unused(c *ast.Compiler) error {
	root := ast.MustParseRef("data.sequoia")
	type use struct{ from, ref ast.Ref } // a ref, and the package it is in
	var refs []use
	for _, m := range c.Modules {
		for _, rule := range m.Rules { // rules only: a package line is a ref too
			ast.WalkRefs(rule, func(r ast.Ref) bool {
				if r.HasPrefix(ast.DefaultRootRef) {
					refs = append(refs, use{m.Package.Path, r.ConstantPrefix()})
				}
				return false
			})
		}
	}
	var all Error
	for _, m := range c.Modules {
		pkg := m.Package.Path
		if pkg.Equal(root) {
			continue
		}
		used := false
		for _, u := range refs {
			// A package's own rules reading each other do not count.
			if u.from.Equal(pkg) {
				continue
			}
			if r := u.ref; r.HasPrefix(pkg) || pkg.HasPrefix(r) {
				used = true
				break
			}
		}
		if !used {
			all.Problems = append(all.Problems, problem(m.Package.Location,
				"%s is not used: only package sequoia makes data.sequoia.decision, and no file refers to this one", m.Package).Problems...)
		}
	}
	if len(all.Problems) > 0 {
		return &all
	}
	return nil
}

// unread refuses rules in package sequoia that contribute to a decision
// field the way policies did before contribution.NAME (priority.mine := 5,
// class.mine := "batch") when nothing reads them: the shipped
// decision.rego no longer does, and such a policy would silently do
// nothing. A decision.rego of the operator's own that reads them keeps
// them legal.
func unread(c *ast.Compiler) error {
	root := ast.MustParseRef("data.sequoia")
	read := map[string]bool{}
	for _, m := range c.Modules {
		for _, rule := range m.Rules {
			ast.WalkRefs(rule, func(r ast.Ref) bool {
				if len(r) > 2 && r.HasPrefix(root) {
					if s, ok := r[2].Value.(ast.String); ok {
						read[string(s)] = true
					}
				}
				return false
			})
		}
	}
	var all Error
	for _, m := range c.Modules {
		if !m.Package.Path.Equal(root) {
			continue
		}
		for _, rule := range m.Rules {
			ref := rule.Head.Ref()
			v, ok := ref[0].Value.(ast.Var)
			if !ok || len(ref) < 2 || !slices.Contains(decisionFields[2:], string(v)) || read[string(v)] {
				continue
			}
			all.Problems = append(all.Problems, problem(rule.Location,
				"%s is read by no rule: a policy contributes a decision field as contribution.NAME := {%q: ...} (see decision.rego)", ref, string(v)).Problems...)
		}
	}
	if len(all.Problems) > 0 {
		return &all
	}
	return nil
}

// validationInputs are evaluated at every load: a policy whose decision
// errors or breaks the schema for any of them never goes live.
var validationInputs = []Document{
	{Input: Input{Function: "sequoia-validate", Tenant: "sequoia", Platform: "http", Class: "interactive", Step: 1, Type: "sync"}},
	{Input: Input{Function: "sequoia-validate", Tenant: "sequoia", Platform: "openwhisk", Class: "batch", ChainID: "c", Step: 2, ChainSteps: 3, Type: "async"},
		Snapshot: Snapshot{
			InFlight: 10, Limit: 10, ThrottleRate: 0.5, ErrorRate: 0.5,
			Queues:    map[string]map[string]int{"pending": {"interactive": 5, "batch": 50}, "chain_running": {"interactive": 1, "batch": 2}},
			Classes:   map[string]ClassStats{"interactive": {Queued: 6, WaitP99Ms: 1e4, InFlight: 5}, "batch": {Queued: 52, WaitP99Ms: 1e5, InFlight: 5}},
			Functions: map[string]FunctionStats{"sequoia-validate": {InFlight: 10, P50Ms: 40, P99Ms: 900, ColdStartRate: 0.1}},
			Tenants:   map[string]TenantStats{"sequoia": {InFlight: 6}, "other": {InFlight: 4}},
		}},
}

func (p *compiled) validate(ctx context.Context) error {
	for i, doc := range validationInputs {
		sv, err := doc.Snapshot.value()
		if err != nil {
			return err
		}
		if _, err := p.eval(ctx, &doc.Input, ast.NewTerm(sv), nil); err != nil {
			// The merger in decision.rego is rarely at fault: point at
			// the contribution that set the field.
			if blamed := p.blame(ctx, &doc.Input, ast.NewTerm(sv)); blamed != nil {
				return blamed
			}
			return problem(p.decision, "validation input %d: %v", i+1, err)
		}
	}
	return nil
}

// Check compiles files as Load would, validates the decision, and runs
// the Rego unit tests among them. It returns the problems found, located
// by file and line; nil means the policy would load and its tests pass.
func Check(ctx context.Context, files []File, classes []string) (tests int, err error) {
	if classes == nil {
		classes = DefaultClasses
	}
	if _, err := compile(ctx, files, classes); err != nil {
		return 0, err
	}
	mods, err := parse(files)
	if err != nil {
		return 0, err
	}
	ch, err := tester.NewRunner().
		SetCompiler(ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(false)).
		SetStore(inmem.New()).
		SetModules(mods).
		SetParallel(1).
		EnableTracing(true). // what a failing test compared (testreport.go)
		RunTests(ctx, nil)
	if err != nil {
		return 0, astProblems(err)
	}
	var failed Error
	for r := range ch {
		tests++
		if r.Pass() {
			continue
		}
		switch {
		case r.Skip:
			continue
		case r.Error != nil:
			p := Problem{Test: r.Package + "." + r.Name, Message: "test " + r.Package + "." + r.Name + ": " + r.Error.Error()}
			if r.Location != nil {
				p.File, p.Line = r.Location.File, r.Location.Row
			}
			failed.Problems = append(failed.Problems, p)
		default:
			failed.Problems = append(failed.Problems, failure(r))
		}
	}
	if len(failed.Problems) > 0 {
		sort.Slice(failed.Problems, func(i, j int) bool { return failed.Problems[i].String() < failed.Problems[j].String() })
		return tests, &failed
	}
	return tests, nil
}
