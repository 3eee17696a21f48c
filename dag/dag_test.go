package dag

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateNamesNodeAndProblem(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"cycle through next", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"b"},"b":{"kind":"task","function":"g","next":"a"}}}`,
			`cycle: a -> b -> a`},
		{"cycle through a sequence", `{"start":"s","nodes":{"s":{"kind":"sequence","steps":["t"]},"t":{"kind":"task","function":"f","next":"s"}}}`,
			`cycle: s -> t -> s`},
		{"self loop in map", `{"start":"m","nodes":{"m":{"kind":"map","do":"m"}}}`, `node "m": cycle: m -> m`},
		{"unknown kind", `{"start":"a","nodes":{"a":{"kind":"lambda"}}}`, `node "a": unknown kind "lambda"`},
		{"no kind", `{"start":"a","nodes":{"a":{"function":"f"}}}`, `node "a": no kind`},
		{"missing next", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"zz"}}}`, `node "a": next refers to missing node "zz"`},
		{"missing branch", `{"start":"p","nodes":{"p":{"kind":"parallel","branches":["x"]}}}`, `node "p": branches[0] refers to missing node "x"`},
		{"empty parallel", `{"start":"p","nodes":{"p":{"kind":"parallel","branches":[]}}}`, `node "p": empty parallel`},
		{"empty choice", `{"start":"c","nodes":{"c":{"kind":"choice","default":"c"}}}`, `node "c": empty choice`},
		{"empty sequence", `{"start":"s","nodes":{"s":{"kind":"sequence"}}}`, `node "s": empty sequence`},
		{"choice without default", `{"start":"c","nodes":{"c":{"kind":"choice","choices":[{"path":"/x","op":"exists","next":"t"}]},"t":{"kind":"task","function":"f"}}}`,
			`node "c": default names no node`},
		{"bad op", `{"start":"c","nodes":{"c":{"kind":"choice","choices":[{"path":"/x","op":"like","value":1,"next":"t"}],"default":"t"},"t":{"kind":"task","function":"f"}}}`,
			`node "c": choices[0].op "like"`},
		{"map without do", `{"start":"m","nodes":{"m":{"kind":"map"}}}`, `node "m": do names no node`},
		{"task without function", `{"start":"a","nodes":{"a":{"kind":"task"}}}`, `node "a": task needs a function`},
		{"function escaping the path", `{"start":"a","nodes":{"a":{"kind":"task","function":"../admin"}}}`, `node "a": task needs a function`},
		{"bad input path", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","input":"a.b"}}}`, `node "a": input: want a JSON pointer`},
		{"retry out of range", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","retry":{"max_attempts":0}}}}`, `node "a": retry.max_attempts`},
		{"task field on a map", `{"start":"m","nodes":{"m":{"kind":"map","do":"t","function":"f"},"t":{"kind":"task","function":"f"}}}`, `node "m": function, qualifier`},
		{"missing start", `{"start":"x","nodes":{"a":{"kind":"task","function":"f"}}}`, `start node "x" does not exist`},
		{"unknown field", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","nxt":"b"}}}`, `unknown field "nxt"`},
		{"no nodes", `{"start":"a","nodes":{}}`, `no nodes`},
		{"too many nodes", `{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"b"},"b":{"kind":"task","function":"f","next":"c"},"c":{"kind":"task","function":"f"}}}`,
			`3 nodes, more than the limit of 2`},
	}
	lim := DefaultLimits
	lim.MaxNodes = 2
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), lim)
			if err == nil {
				t.Fatalf("Parse accepted %s", tt.src)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

const exampleDAG = `{
  "start": "fetch",
  "deadline_ms": 5000,
  "nodes": {
    "fetch":  {"kind": "task", "function": "fetch", "next": "route"},
    "route":  {"kind": "choice", "input": "/input",
               "choices": [{"path": "$.items", "op": "exists", "next": "fan"}],
               "default": "single"},
    "fan":    {"kind": "map", "items": "/items", "do": "work", "max_concurrency": 4, "next": "both"},
    "work":   {"kind": "task", "function": "work", "retry": {"max_attempts": 3, "backoff_ms": 10}, "timeout_ms": 2000},
    "both":   {"kind": "parallel", "branches": ["left", "right"]},
    "left":   {"kind": "sequence", "steps": ["l1", "l2"]},
    "l1":     {"kind": "task", "function": "l1"},
    "l2":     {"kind": "task", "function": "l2"},
    "right":  {"kind": "task", "function": "right"},
    "single": {"kind": "task", "function": "single"}
  }
}`

func TestPlanIsTheCriticalPath(t *testing.T) {
	d, err := Parse([]byte(exampleDAG), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	est := map[string]time.Duration{"fetch": 10 * time.Millisecond, "work": 20 * time.Millisecond,
		"l1": 5 * time.Millisecond, "l2": 5 * time.Millisecond, "right": 30 * time.Millisecond, "single": 100 * time.Millisecond}
	p := d.Plan(func(fn string) time.Duration { return est[fn] })
	// fetch, then the longer of the choice's targets (single: 100ms >
	// fan(20)+both(max(10, 30))=50ms).
	if got, want := p.Critical, 110*time.Millisecond; got != want {
		t.Errorf("critical path = %v, want %v", got, want)
	}
	// fetch + the larger work of the two targets: fan is 4 items of 20ms
	// (a round at the cap) + 40ms of parallel branches = 120ms.
	if got, want := p.Work, 130*time.Millisecond; got != want {
		t.Errorf("work = %v, want %v", got, want)
	}
	if got, want := p.Steps, 1+4+3; got != want {
		t.Errorf("steps = %d, want %d", got, want)
	}
}

func TestSelectors(t *testing.T) {
	doc, err := decode([]byte(`{"a":{"b":[10,{"c":"x"}],"d/e":1,"~":2},"0":"zero"}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		sel  string
		want string
		ok   bool
	}{
		{"", `{"0":"zero","a":{"b":[10,{"c":"x"}],"d/e":1,"~":2}}`, true},
		{"/a/b/0", "10", true},
		{"/a/b/1/c", `"x"`, true},
		{"/a/d~1e", "1", true},
		{"/a/~0", "2", true},
		{"/0", `"zero"`, true},
		{"$.a.b[1].c", `"x"`, true},
		{"$['a']['d/e']", "1", true},
		{"$.a.b[5]", "", false},
		{"/a/zz", "", false},
		{"$.a.b.c", "", false},
	}
	for _, tt := range tests {
		sel, err := compileSelector(tt.sel)
		if err != nil {
			t.Fatalf("%q: %v", tt.sel, err)
		}
		v, ok := sel.pick(doc)
		if ok != tt.ok {
			t.Errorf("%q: found = %v, want %v", tt.sel, ok, tt.ok)
			continue
		}
		if ok {
			b, _ := jsonMarshal(v)
			if string(b) != tt.want {
				t.Errorf("%q: got %s, want %s", tt.sel, b, tt.want)
			}
		}
	}
	for _, bad := range []string{"a", "$.", "$[x]", "$[1", "$a"} {
		if _, err := compileSelector(bad); err == nil {
			t.Errorf("compileSelector(%q) accepted it", bad)
		}
	}
}

func TestRules(t *testing.T) {
	doc, _ := decode([]byte(`{"n":5,"s":"b","t":true,"z":null}`))
	tests := []struct {
		rule string
		want bool
	}{
		{`{"path":"/n","op":"gt","value":4,"next":"x"}`, true},
		{`{"path":"/n","op":"le","value":4,"next":"x"}`, false},
		{`{"path":"/n","op":"eq","value":5.0,"next":"x"}`, true},
		{`{"path":"/s","op":"lt","value":"c","next":"x"}`, true},
		{`{"path":"/s","op":"eq","value":"b","next":"x"}`, true},
		{`{"path":"/t","op":"eq","value":true,"next":"x"}`, true},
		{`{"path":"/t","op":"ne","value":true,"next":"x"}`, false},
		{`{"path":"/z","op":"eq","value":null,"next":"x"}`, true},
		{`{"path":"/q","op":"exists","next":"x"}`, false},
		{`{"path":"/q","op":"missing","next":"x"}`, true},
		{`{"path":"/s","op":"gt","value":4,"next":"x"}`, false},
	}
	for _, tt := range tests {
		src := `{"start":"c","nodes":{"c":{"kind":"choice","choices":[` + tt.rule + `],"default":"x"},"x":{"kind":"task","function":"f"}}}`
		d, err := Parse([]byte(src), DefaultLimits)
		if err != nil {
			t.Fatalf("%s: %v", tt.rule, err)
		}
		if got := d.Nodes["c"].Choices[0].holds(doc); got != tt.want {
			t.Errorf("%s: holds = %v, want %v", tt.rule, got, tt.want)
		}
	}
}

func TestPlanInputReadsTheInput(t *testing.T) {
	d, err := Parse([]byte(`{"start":"c","nodes":{
		"c":{"kind":"choice","choices":[{"path":"/small","op":"eq","value":true,"next":"one"}],"default":"m"},
		"one":{"kind":"task","function":"one"},
		"m":{"kind":"map","items":"/items","do":"w","max_concurrency":4,"next":"last"},
		"w":{"kind":"task","function":"w"},
		"last":{"kind":"task","function":"last"}}}`), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	est := func(fn string) time.Duration {
		return map[string]time.Duration{"one": 500 * time.Millisecond, "w": 20 * time.Millisecond, "last": 5 * time.Millisecond}[fn]
	}
	for _, tt := range []struct {
		input string
		want  Plan
	}{
		// 10 items, 4 at a time: 3 rounds of w, then last.
		{`{"items":[0,1,2,3,4,5,6,7,8,9]}`, Plan{Critical: 65 * time.Millisecond, Work: 205 * time.Millisecond, Steps: 11}},
		// The choice's rule picks one: only its cost counts.
		{`{"small":true,"items":[0,1,2,3,4,5,6,7,8,9]}`, Plan{Critical: 500 * time.Millisecond, Work: 500 * time.Millisecond, Steps: 1}},
		// Not an array: the run will fail at the map; Plan's guess counts.
		{`{"items":7}`, Plan{Critical: 25 * time.Millisecond, Work: 85 * time.Millisecond, Steps: 5}},
	} {
		in, err := decode([]byte(tt.input))
		if err != nil {
			t.Fatal(err)
		}
		if got := d.PlanInput(est, in); got != tt.want {
			t.Errorf("input %s: plan %+v, want %+v", tt.input, got, tt.want)
		}
	}
	// Without the input, the larger target: one's 500ms.
	if got := d.Plan(est); got.Critical != 500*time.Millisecond {
		t.Errorf("Plan critical %v, want 500ms", got.Critical)
	}
}
