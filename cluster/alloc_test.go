package cluster

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

func TestAllocate(t *testing.T) {
	n := func(r string, u, i, b int) Need { return Need{Replica: r, Urgent: u, Interactive: i, Batch: b} }
	for _, tc := range []struct {
		name   string
		budget int
		needs  []Need
		want   map[string]int
	}{
		{"idle: even split", 50, []Need{n("a", 0, 0, 0), n("b", 0, 0, 0), n("c", 0, 0, 0)},
			map[string]int{"a": 17, "b": 17, "c": 16}},
		{"one busy takes all but the floors", 50, []Need{n("a", 0, 0, 0), n("b", 10, 500, 0), n("c", 0, 0, 0)},
			map[string]int{"a": 1, "b": 48, "c": 1}},
		{"all busy: max-min fair", 50, []Need{n("a", 50, 50, 0), n("b", 50, 0, 0), n("c", 5, 0, 0)},
			map[string]int{"a": 23, "b": 22, "c": 5}},
		{"continuations before first steps", 30, []Need{n("a", 25, 0, 0), n("b", 0, 30, 0)},
			map[string]int{"a": 25, "b": 5}},
		{"interactive before batch", 20, []Need{n("a", 0, 0, 20), n("b", 0, 15, 0)},
			map[string]int{"a": 5, "b": 15}},
		{"left over split evenly after needs", 20, []Need{n("a", 4, 0, 0), n("b", 0, 0, 0)},
			map[string]int{"a": 12, "b": 8}},
		{"budget below the replicas", 2, []Need{n("a", 5, 0, 0), n("b", 5, 0, 0), n("c", 5, 0, 0)},
			map[string]int{"a": 1, "b": 1, "c": 0}},
		{"alone", 50, []Need{n("a", 0, 0, 0)}, map[string]int{"a": 50}},
		{"none", 50, nil, map[string]int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := allocate(tc.budget, tc.needs); !maps.Equal(got, tc.want) {
				t.Errorf("allocate(%d, %v) = %v, want %v", tc.budget, tc.needs, got, tc.want)
			}
		})
	}
}

// TestAllocateInvariants: on random needs, the shares sum to the budget
// exactly (nothing stranded, nothing over), every replica gets one slot
// when the budget allows, no replica gets more of the urgent tier than a
// replica asking more of it while it is short, and the order of the
// needs does not matter.
func TestAllocateInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		budget := 1 + r.IntN(200)
		var needs []Need
		for j := range 1 + r.IntN(8) {
			needs = append(needs, Need{Replica: fmt.Sprint("r", j), Urgent: r.IntN(80), Interactive: r.IntN(80), Batch: r.IntN(80)})
		}
		got := allocate(budget, needs)
		sum := 0
		for _, v := range got {
			sum += v
		}
		if sum != budget {
			t.Fatalf("#%d: allocate(%d, %v) = %v sums to %d", i, budget, needs, got, sum)
		}
		for _, nd := range needs {
			if budget >= len(needs) && got[nd.Replica] < 1 {
				t.Fatalf("#%d: %s got no slot: %v", i, nd.Replica, got)
			}
			for _, o := range needs {
				// A replica short of its urgent need never has fewer
				// than another has beyond its own urgent need.
				if got[nd.Replica] < nd.Urgent && got[o.Replica] > max(o.Urgent, 1) && got[o.Replica] > got[nd.Replica]+1 {
					t.Fatalf("#%d: %s short of urgent %d with %d while %s has %d (urgent %d)", i,
						nd.Replica, nd.Urgent, got[nd.Replica], o.Replica, got[o.Replica], o.Urgent)
				}
			}
		}
		rev := make([]Need, len(needs))
		for j, nd := range needs {
			rev[len(needs)-1-j] = nd
		}
		if again := allocate(budget, rev); !maps.Equal(again, got) {
			t.Fatalf("#%d: order matters: %v vs %v", i, got, again)
		}
	}
}
