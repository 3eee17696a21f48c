package dag

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(normalize(v)) }

// FuzzParse: Parse never panics; what it accepts has a start node, refers
// only to nodes that exist, has no cycle (Plan terminates) and keeps its
// limits; what it refuses wraps ErrInvalid.
func FuzzParse(f *testing.F) {
	f.Add([]byte(exampleDAG))
	f.Add([]byte(`{"start":"a","nodes":{"a":{"kind":"task","function":"f","next":"a"}}}`))
	f.Add([]byte(`{"start":"c","nodes":{"c":{"kind":"choice","choices":[{"path":"$.a[0]","op":"gt","value":1,"next":"t"}],"default":"t"},"t":{"kind":"task","function":"ns/f"}}}`))
	f.Add([]byte(`{"start":"m","nodes":{"m":{"kind":"map","items":"/x/~1","do":"t","max_concurrency":2},"t":{"kind":"task","function":"f","input":"$['a']"}}}`))
	lim := Limits{MaxNodes: 16, MaxMapWidth: 10, MaxNodeBytes: 1 << 10, MaxRunBytes: 1 << 12}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b, lim)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(d.Nodes) > lim.MaxNodes {
			t.Fatalf("accepted %d nodes", len(d.Nodes))
		}
		if d.Nodes[d.Start] == nil {
			t.Fatalf("accepted a missing start %q", d.Start)
		}
		for name, n := range d.Nodes {
			for _, m := range n.edges() {
				if d.Nodes[m] == nil {
					t.Fatalf("node %q refers to missing %q", name, m)
				}
			}
		}
		p := d.Plan(func(string) time.Duration { return time.Millisecond })
		if p.Steps < 1 || p.Critical < time.Millisecond {
			t.Fatalf("plan %+v of an accepted dag", p)
		}
		for _, in := range []any{nil, map[string]any{"items": []any{1.0, 2.0}, "x": "y"}, []any{}} {
			if q := d.PlanInput(func(string) time.Duration { return time.Millisecond }, in); q.Steps < 0 || q.Critical < 0 {
				t.Fatalf("PlanInput %+v", q)
			}
		}
	})
}

// FuzzParseASL: ParseASL never panics; what it refuses wraps ErrInvalid;
// what it accepts plans without looping and names every state.
func FuzzParseASL(f *testing.F) {
	f.Add([]byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","Result":{"x":1},"ResultPath":"$.r","Next":"B"},"B":{"Type":"Choice","Choices":[{"Variable":"$.r.x","NumericEquals":1,"Next":"A"}],"Default":"C"},"C":{"Type":"Succeed"}}}`))
	f.Add([]byte(`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.a","ItemSelector":{"v.$":"$$.Map.Item.Value"},"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:1:function:f","Retry":[{"ErrorEquals":["States.ALL"]}],"End":true}}},"End":true}}}`))
	f.Add([]byte(`{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","End":true}}}],"Catch":[{"ErrorEquals":["X"],"Next":"F"}],"End":true},"F":{"Type":"Fail","Error":"E"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseASL(b, Limits{MaxNodes: 32, MaxMapWidth: 10, MaxNodeBytes: 1 << 10, MaxRunBytes: 1 << 12})
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(m.names) == 0 || len(m.names) > 32 {
			t.Fatalf("accepted with %d states", len(m.names))
		}
		m.Plan(func(string) time.Duration { return time.Millisecond }, 0, nil, time.Now())
	})
}

// FuzzIntrinsic: an intrinsic function either fails to parse or
// evaluates (to a value or an error) without panicking.
func FuzzIntrinsic(f *testing.F) {
	for _, s := range []string{"States.Format('a {} b \\' {}', $.x, 2)", "States.ArrayRange(1, 9, 2)",
		"States.JsonMerge($.a, States.StringToJson('{\"b\":1}'), false)", "States.Hash($.s, 'SHA-256')",
		"States.ArrayPartition(States.Array(1,2,3), 2)", "States.MathRandom(1, 10, 7)", "States.StringSplit($['a b'], ',')"} {
		f.Add(s)
	}
	data := map[string]any{"x": "y", "a": map[string]any{"k": 1.0}, "s": "text", "a b": "1,2"}
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := parseIntrinsic(s)
		if err != nil {
			return
		}
		_, _ = fn.eval(data, nil)
	})
}

// FuzzASLPath: a path either fails to compile or selects without
// panicking; a reference path sets a value that it then selects.
func FuzzASLPath(f *testing.F) {
	for _, s := range []string{"$.a.b", "$.ship-date", "$['x'][0]", "$..b", "$.a[?(@.n > 1)]", "$$.Map.Item.Value", "$.a[-1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		data := map[string]any{"a": map[string]any{"b": []any{1.0, map[string]any{"n": 2.0}}}, "x": []any{"y"}}
		p, err := compilePath(s)
		if err != nil {
			return
		}
		_, _ = p.get(data, data)
		if p.single && !p.ctx {
			out, err := p.set(data, "mark")
			if err != nil {
				return
			}
			got, err := p.get(out, nil)
			if err != nil || got != "mark" {
				t.Fatalf("%q: set then get = %v, %v", s, got, err)
			}
		}
	})
}
