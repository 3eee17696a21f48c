package dag

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// batcher gathers the items that reach one batch node, from every run of
// its DAG, into batches.
type batcher struct {
	mu  sync.Mutex
	cur *gathering // REQUIRES: mu; the batch still gathering, nil if none
}

// gathering is one batch: its items in arrival order and who waits for
// each.
type gathering struct {
	items   [][]byte
	waiters []*batchWaiter
	timer   *time.Timer
	done    bool // REQUIRES: batcher.mu; flushed or being flushed
}

// batchWaiter is one item's run, waiting for the batch's answer.
type batchWaiter struct {
	run *Run
	ctx context.Context
	out chan batchResult // capacity 1
}

type batchResult struct {
	out []byte
	err error
}

// batch adds in to n's batch and waits for the batch's answer, or for sc
// to end. The item that fills the batch invokes it on its own goroutine;
// a batch that times out is invoked on the timer's.
func (r *Run) batch(sc scope, name string, n *Node, in []byte) ([]byte, error) {
	b := n.batch
	w := &batchWaiter{run: r, ctx: sc.ctx, out: make(chan batchResult, 1)}
	b.mu.Lock()
	g := b.cur
	if g == nil {
		g = &gathering{}
		b.cur = g
		g.timer = time.AfterFunc(time.Duration(n.MaxWaitMs)*time.Millisecond, func() { b.flush(g, name, n) })
	}
	g.items = append(g.items, in)
	g.waiters = append(g.waiters, w)
	full := len(g.items) >= n.MaxItems
	if full {
		// The next item starts a new batch, before this one is flushed:
		// between this unlock and flush's lock it would join this one.
		b.cur = nil
	}
	b.mu.Unlock()
	if full {
		g.timer.Stop()
		b.flush(g, name, n)
	}
	select {
	case res := <-w.out:
		return res.out, res.err
	case <-sc.ctx.Done():
		return nil, errStopped
	}
}

// flush invokes g's function once with its items, unless it was already,
// and hands each waiter its answer. The call is a continuation of the run,
// among those still waiting, with the earliest deadline (the tightest),
// and waits in the queue while any of them still waits.
func (b *batcher) flush(g *gathering, name string, n *Node) {
	b.mu.Lock()
	if g.done {
		b.mu.Unlock()
		return
	}
	g.done = true
	if b.cur == g {
		b.cur = nil
	}
	items, waiters := g.items, g.waiters
	b.mu.Unlock()

	var carrier *batchWaiter
	live := 0
	for _, w := range waiters {
		if w.ctx.Err() != nil {
			continue
		}
		live++
		if carrier == nil || earlier(w.run.Deadline, carrier.run.Deadline) {
			carrier = w
		}
	}
	if carrier == nil {
		return // every waiter is gone: nothing is invoked
	}
	// The call's scope ends when the last waiter's does.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(int64(live))
	for _, w := range waiters {
		if w.ctx.Err() != nil {
			continue
		}
		stop := context.AfterFunc(w.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	size := 1 + len(items)
	for _, it := range items {
		size += len(it)
	}
	payload := make([]byte, 0, size)
	payload = append(payload, '[')
	for i, it := range items {
		if i > 0 {
			payload = append(payload, ',')
		}
		payload = append(payload, it...)
	}
	payload = append(payload, ']')
	out, err := carrier.run.task(scope{ctx: ctx}, "", name, n, payload)
	var parts []json.RawMessage
	if err == nil {
		if json.Unmarshal(out, &parts) != nil || len(parts) != len(items) {
			parts = nil
		}
	}
	for i, w := range waiters {
		res := batchResult{err: err}
		switch {
		case errors.Is(err, errStopped) && w.ctx.Err() == nil:
			// The carrier's run stopped (its deadline) while this one
			// goes on: the batch failed for it.
			res.err = &Failure{Node: name, Message: "the batch's call was withdrawn: the run carrying it stopped"}
		case err != nil:
		case parts != nil:
			res.out = parts[i]
		default:
			res.out = out
		}
		w.out <- res
	}
}

// earlier orders deadlines, the zero one (none) last.
func earlier(a, b time.Time) bool {
	return !a.IsZero() && (b.IsZero() || a.Before(b))
}
