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
