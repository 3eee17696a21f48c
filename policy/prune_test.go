package policy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/sequoia-qos/sequoia/policies"
)

func TestDeadRules(t *testing.T) {
	const head = "package sequoia\n\noff := false\n\non := true\n\nempty := {}\n\ntable := {\"a\": {\"x\": 1}}\n\n"
	for _, tc := range []struct {
		name, rule string
		dead       bool
	}{
		{"false constant", `contribution.r := {"priority": 1} if off`, true},
		{"true constant", `contribution.r := {"priority": 1} if on`, false},
		{"negated false", `contribution.r := {"priority": 1} if not off`, false},
		{"key of an empty table", `contribution.r := {"priority": empty[input.function]}`, true},
		{"key of a table", `contribution.r := {"priority": table[input.function].x}`, false},
		{"ground key present", `contribution.r := {"priority": table.a.x}`, false},
		{"in a comprehension", `contribution.r := {"priority": count([v | v := empty[_]])}`, false},
		{"in a body", "contribution.r := {\"priority\": v} if {\n\tinput.step > 1\n\tv := empty[input.function]\n}", true},
		{"with an else", "r := 1 if off else := 2\n\ncontribution.r := {\"priority\": r}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := head + tc.rule + "\n\ndecision := {\"priority\": sum([c.priority | some c in contribution])}\n"
			p, err := compileWith(context.Background(), []File{{Name: "p.rego", Data: []byte(src)}}, DefaultClasses, false)
			if err != nil {
				t.Fatal(err)
			}
			dead := deadRules(p.compiler, p.consts)
			if got := len(dead) > 0; got != tc.dead {
				t.Errorf("dead %v (%v), want %v", got, dead, tc.dead)
			}
		})
	}
}

// A policy that replaces a document with `with` is never pruned: the
// constant may hold another value there.
func TestDeadRulesNotWithWith(t *testing.T) {
	src := "package sequoia\n\noff := false\n\nr := 5 if off\n\ndecision := {\"priority\": v} if {\n\tv := data.sequoia.r with data.sequoia.off as true\n}\n"
	p, err := compile(context.Background(), []File{{Name: "p.rego", Data: []byte(src)}}, DefaultClasses)
	if err != nil {
		t.Fatal(err)
	}
	d, err := p.eval(context.Background(), &Input{}, emptySnapshotTerm(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.pruned != 0 || d.Priority == nil || *d.Priority != 5 {
		t.Errorf("pruned %d, priority %v; want 0 and 5", p.pruned, d.Priority)
	}
}

// Removing every rule of a name or of a set would change what is left:
// the name would become a local variable, the empty set undefined. One
// rule of each stays, never holding.
func TestDeadRulesKeepNamesAndSets(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      *int
	}{
		{"bare name", "package sequoia\n\noff := false\n\nr := 5 if off\n\ndecision := {\"priority\": 1} if r = 5\n", nil},
		{"negated name", "package sequoia\n\noff := false\n\nr := 5 if off\n\ndecision := {\"priority\": 1} if not r\n", ptr(1)},
		{"empty set", "package sequoia\n\noff := false\n\ns contains 1 if off\n\ns contains 2 if off\n\ndecision := {\"priority\": count(data.sequoia.s)}\n", ptr(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := []File{{Name: "p.rego", Data: []byte(tc.src)}}
			for _, pruneDead := range []bool{false, true} {
				p, err := compileWith(context.Background(), files, DefaultClasses, pruneDead)
				if err != nil {
					t.Fatal(err)
				}
				d, err := p.eval(context.Background(), &Input{}, emptySnapshotTerm(t), nil)
				if err != nil {
					t.Fatal(err)
				}
				if (d.Priority == nil) != (tc.want == nil) || d.Priority != nil && *d.Priority != *tc.want {
					t.Errorf("pruned %v (%d rules): priority %v, want %v", pruneDead, p.pruned, d.Priority, tc.want)
				}
			}
		})
	}
}

func ptr(n int) *int { return &n }

// The shipped policies decide the same with and without their dead rules,
// as shipped and with every knob turned on.
func TestPrunedDecidesAsWritten(t *testing.T) {
	shipped := shippedWith(t)
	on := shippedWith(t,
		[2]string{"sjf_enabled := false", "sjf_enabled := true"},
		[2]string{"shed_enabled := false", "shed_enabled := true"},
		[2]string{"shed_on_slos := set()", `shed_on_slos := {"s"}`},
		[2]string{"caps_function_caps := {}", `caps_function_caps := {"f": 2}`},
		[2]string{"caps_function_ranks := {}", `caps_function_ranks := {"g": 3}`},
		[2]string{"functions_table := {}", `functions_table := {"f": {"prewarm": 1, "chain_steps": 4}}`},
		[2]string{"deny_tenants := {}", `deny_tenants := {"bad": "unpaid"}`},
		[2]string{"deny_functions := {}", `deny_functions := {"old": "retired"}`},
	)
	snap := benchSnapshot()
	snap.Functions["f"] = FunctionStats{P50Ms: 20}
	snap.Classes["interactive"] = ClassStats{WaitP99Ms: 900}
	snap.SLOs = map[string]SLOStats{"s": {Burning: true}}
	sv := snapshotTerm(t, snap)
	st := emptySnapshotTerm(t)
	for name, files := range map[string][]File{"shipped": shipped, "all on": on} {
		whole, pruned := compileBoth(t, files)
		// caps 2, functions, sjf, 3 of the 4 deny rules (the set keeps
		// one rule, never holding, so that it stays an empty set) and
		// dags' tenant rule.
		if name == "shipped" && pruned.pruned != 8 {
			t.Errorf("shipped: %d rules pruned, want 8", pruned.pruned)
		}
		for _, fn := range []string{"f", "g", "old", "ns/f3"} {
			for _, tenant := range []string{"t1", "bad", "t9"} {
				for _, class := range []string{"interactive", "batch"} {
					for step := range 3 {
						in := Input{Function: fn, Tenant: tenant, Class: class, Step: step}
						for _, s := range []*ast.Term{sv, st} {
							want, err1 := whole.eval(context.Background(), &in, s, nil)
							got, err2 := pruned.eval(context.Background(), &in, s, nil)
							if err1 != nil || err2 != nil || !decisionsEqual(got, want) {
								t.Errorf("%s %+v: pruned %+v (%v), whole %+v (%v)", name, in, got, err2, want, err1)
							}
						}
					}
				}
			}
		}
	}
}

// shippedWith is the shipped policies with, in each file, the first
// occurrence of each edit's first string replaced by its second.
func shippedWith(tb testing.TB, edits ...[2]string) []File {
	tb.Helper()
	files, err := ReadFiles(policies.FS)
	if err != nil {
		tb.Fatal(err)
	}
	for i, f := range files {
		src := string(f.Data)
		for _, e := range edits {
			src = strings.Replace(src, e[0], e[1], 1)
		}
		files[i].Data = []byte(src)
	}
	return files
}

// compileBoth compiles files as written and without their dead rules.
func compileBoth(tb testing.TB, files []File) (whole, pruned *compiled) {
	tb.Helper()
	whole, err := compileWith(context.Background(), files, DefaultClasses, false)
	if err != nil {
		tb.Fatal(err)
	}
	pruned, err = compile(context.Background(), files, DefaultClasses)
	if err != nil {
		tb.Fatal(err)
	}
	return whole, pruned
}

func decisionsEqual(a, b Decision) bool {
	ja, _ := a.MarshalJSON()
	jb, _ := b.MarshalJSON()
	return string(ja) == string(jb)
}

// FuzzPrunedDecidesAsWritten: for any invocation, the shipped policies
// with every knob on decide the same with and without their dead rules.
//
//	go test ./policy -run '^$' -fuzz FuzzPrunedDecidesAsWritten -fuzztime 30s
func FuzzPrunedDecidesAsWritten(f *testing.F) {
	whole, pruned := compileBoth(f, shippedWith(f,
		[2]string{"sjf_enabled := false", "sjf_enabled := true"},
		[2]string{"deny_tenants := {}", `deny_tenants := {"bad": "unpaid"}`},
	))
	if pruned.pruned == 0 {
		f.Fatal("nothing pruned: the comparison means nothing")
	}
	st := snapshotTerm(f, benchSnapshot())
	f.Add("ns/f3", "t1", "interactive", 1, 0, 0)
	f.Add("f", "bad", "batch", 2, 500, 3)
	f.Fuzz(func(t *testing.T, fn, tenant, class string, step, deadlineMs, steps int) {
		in := Input{Function: fn, Tenant: tenant, Class: class, Step: step, ChainSteps: steps, ChainDeadline: time.Duration(deadlineMs) * time.Millisecond}
		want, err1 := whole.eval(context.Background(), &in, st, nil)
		got, err2 := pruned.eval(context.Background(), &in, st, nil)
		if (err1 == nil) != (err2 == nil) || !decisionsEqual(got, want) {
			t.Errorf("%+v: pruned %+v (%v), whole %+v (%v)", in, got, err2, want, err1)
		}
	})
}
