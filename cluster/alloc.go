package cluster

import (
	"cmp"
	"slices"
)

// Need is one replica's demand for worker slots, by urgency: the
// continuations of admitted chains waiting (Urgent); what it runs and the
// first steps of interactive chains waiting (Interactive); those of batch
// chains (Batch). Each is in slots. What a replica runs counts as
// interactive, not urgent: a replica whose slots are all in use would
// otherwise keep them all however long the others' queues.
type Need struct {
	Replica                    string
	Urgent, Interactive, Batch int
}

// needOf reads a replica's demand as tiers, each capped at the budget.
func needOf(replica string, d Demand, budget int) Need {
	c := func(n int) int { return min(max(n, 0), budget) }
	return Need{
		Replica:     replica,
		Urgent:      c(d.Running[0] + d.Running[1]),
		Interactive: c(d.InFlight + d.Pending[0]),
		Batch:       c(d.Pending[1]),
	}
}

// allocate divides budget slots among the replicas that need them: one
// each first (when the budget allows), so that every replica can serve;
// then each tier of urgency in turn, max-min fair (no replica gets more
// of a tier than it asks while another asking gets less); then what is
// left, evenly. Replicas are taken in name order, so that every replica
// computing it from the same needs gets the same answer; the slots an
// even split cannot share go to the first names.
func allocate(budget int, needs []Need) map[string]int {
	out := make(map[string]int, len(needs))
	if len(needs) == 0 || budget <= 0 {
		for _, n := range needs {
			out[n.Replica] = 0
		}
		return out
	}
	ns := slices.Clone(needs)
	slices.SortFunc(ns, func(a, b Need) int { return cmp.Compare(a.Replica, b.Replica) })
	got := make([]int, len(ns))
	left := budget
	for i := range ns {
		if left == 0 {
			break
		}
		got[i]++
		left--
	}
	// Tiers are cumulative: a replica's want in tier k is all it asks up
	// to and including k.
	want := make([]int, len(ns))
	for tier := range 3 {
		for i, n := range ns {
			want[i] += [3]int{n.Urgent, n.Interactive, n.Batch}[tier]
		}
		left = fill(got, want, left)
	}
	if left > 0 {
		all := make([]int, len(ns))
		for i := range all {
			all[i] = got[i] + left // as much as there is: an even split
		}
		fill(got, all, left)
	}
	for i, n := range ns {
		out[n.Replica] = got[i]
	}
	return out
}

// fill gives up to left slots to the replicas whose want exceeds what they
// got, max-min fair: in rounds of an equal share of what is left among
// those still short, none given more than it is short; a remainder too
// small to share goes one each in order. It returns what is left.
func fill(got, want []int, left int) int {
	for left > 0 {
		short := 0
		for i := range got {
			if want[i] > got[i] {
				short++
			}
		}
		if short == 0 {
			return left
		}
		share := left / short
		if share == 0 {
			for i := range got {
				if left == 0 {
					break
				}
				if want[i] > got[i] {
					got[i]++
					left--
				}
			}
			continue
		}
		for i := range got {
			if d := want[i] - got[i]; d > 0 {
				g := min(d, share)
				got[i] += g
				left -= g
			}
		}
	}
	return left
}
