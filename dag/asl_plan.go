package dag

import (
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Plan is admission's estimate of a run of the machine (see DAG.Plan):
// each Task counts once, a Wait its seconds (on the critical path, holding
// no slot), a Parallel its branches side by side, a Map one round of its
// MaxConcurrency items, and after a state the longest of the states it may
// go to (Next, a Choice's targets, a Catch's Next). A loop counts one
// pass and a Retry no repeat: those are what can run past the plan.
// When the machine starts with a Map, input (decoded JSON) gives its real
// width.
func (m *Machine) Plan(est func(fn string) time.Duration, p invocation.Platform, input any, now time.Time) Plan {
	pl := &aslPlanner{est: est, platform: p, now: now, memo: map[string]Plan{}, onPath: map[string]bool{}}
	first := m.top.states[m.top.start]
	if first.typ == "Map" && input != nil {
		if w, ok := first.width(input); ok {
			pl.width = map[*aslState]int{first: w}
		}
	}
	return pl.scope(m.top, m.top.start)
}

type aslPlanner struct {
	est      func(fn string) time.Duration
	platform invocation.Platform
	now      time.Time
	memo     map[string]Plan
	onPath   map[string]bool
	width    map[*aslState]int // maps whose width the input gives
}

// scope plans the flow from state name in sc.
func (pl *aslPlanner) scope(sc *aslScope, name string) Plan {
	if p, ok := pl.memo[name]; ok {
		return p
	}
	if pl.onPath[name] {
		return Plan{} // a loop: one pass is counted
	}
	pl.onPath[name] = true
	defer delete(pl.onPath, name)
	st := sc.states[name]
	p := pl.own(st)
	var after Plan
	for _, t := range st.targets() {
		q := pl.scope(sc, t)
		after = Plan{Critical: max(after.Critical, q.Critical), Work: max(after.Work, q.Work), Steps: max(after.Steps, q.Steps)}
	}
	p = p.then(after)
	pl.memo[name] = p
	return p
}

// own plans the state itself.
func (pl *aslPlanner) own(st *aslState) Plan {
	switch st.typ {
	case "Task":
		fn := ""
		if !st.task.lambdaInvoke {
			fn, _ = st.task.function(pl.platform)
		}
		e := pl.est(fn)
		return Plan{Critical: e, Work: e, Steps: 1}
	case "Wait":
		d := time.Duration(st.seconds) * time.Second
		if !st.timestamp.IsZero() {
			d = max(st.timestamp.Sub(pl.now), 0)
		}
		return Plan{Critical: d}
	case "Parallel":
		var p Plan
		for _, b := range st.branches {
			p = p.beside(pl.scope(b, b.start))
		}
		return p
	case "Map":
		body := pl.scope(st.processor, st.processor.start)
		w := max(st.maxConc, 1)
		rounds := 1
		if n, ok := pl.width[st]; ok {
			w = n
			if c := st.maxConc; c > 0 && n > c {
				rounds = (n + c - 1) / c
			}
		}
		return Plan{Critical: body.Critical * time.Duration(rounds), Work: body.Work * time.Duration(w), Steps: body.Steps * w}
	}
	return Plan{}
}

// width is the number of children a Map runs on input (before InputPath),
// when it can be read without running anything.
func (st *aslState) width(input any) (int, bool) {
	eff := input
	if st.inputNull || st.usesCx {
		return 0, false
	}
	if st.inputPath != nil {
		v, err := st.inputPath.get(input, nil)
		if err != nil {
			return 0, false
		}
		eff = v
	}
	if st.params != nil {
		return 0, false
	}
	items := eff
	if st.itemsPath != nil {
		v, err := st.itemsPath.get(eff, nil)
		if err != nil {
			return 0, false
		}
		items = v
	}
	arr, ok := items.([]any)
	if !ok {
		return 0, false
	}
	n := len(arr)
	if st.batchItems > 0 {
		n = (n + st.batchItems - 1) / st.batchItems
	}
	return n, true
}
