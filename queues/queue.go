package queues

import "container/heap"

// Entry is one waiting invocation.
type Entry struct {
	// Key orders entries of one tenant and class: lower first. qos sets it
	// to the effective deadline (Unix nanoseconds), so that entries are
	// served earliest deadline first, and in arrival order among equals.
	Key int64
	// Seq is the arrival order, set by Push.
	Seq uint64
	// Priority orders entries before Key, higher first: within a tenant,
	// and in a Fair queue across tenants too (it comes before their turns).
	Priority int
	// Class is the entry's class index in a Set; Tenant its tenant. Both
	// are read by Set and Fair only.
	Class  uint8
	Tenant string
	// Owner is the waiter this entry belongs to; the queue never reads it.
	Owner any

	pos int     // position in the heap plus one; 0 when not queued
	tq  *tenant // the Fair tenant queue holding e, if any
}

// Queued reports whether e is in a queue.
func (e *Entry) Queued() bool { return e.pos > 0 }

// Less reports whether a must be served before b: higher Priority, then
// lower Key, then earlier arrival.
func (a *Entry) Less(b *Entry) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.Key != b.Key {
		return a.Key < b.Key
	}
	return a.Seq < b.Seq
}

// Queue is a bounded priority queue of entries. The zero value is an empty
// queue of capacity zero. Not safe for concurrent use.
type Queue struct {
	h   entryHeap
	seq uint64
	cap int
}

// SetCapacity bounds the queue to n entries; entries already queued stay.
func (q *Queue) SetCapacity(n int) { q.cap = n }

// Capacity returns the bound set by SetCapacity.
func (q *Queue) Capacity() int { return q.cap }

// Len returns the number of queued entries.
func (q *Queue) Len() int { return len(q.h) }

// Push queues e and reports true, or reports false when the queue is full.
func (q *Queue) Push(e *Entry) bool {
	if len(q.h) >= q.cap {
		return false
	}
	q.seq++
	e.Seq = q.seq
	heap.Push(&q.h, e)
	return true
}

// pushSeq queues e keeping the Seq it has, with no capacity check.
func (q *Queue) pushSeq(e *Entry) { heap.Push(&q.h, e) }

// Peek returns the entry Pop would return, or nil.
func (q *Queue) Peek() *Entry {
	if len(q.h) == 0 {
		return nil
	}
	return q.h[0]
}

// Pop removes and returns the first entry to serve, or nil.
func (q *Queue) Pop() *Entry {
	if len(q.h) == 0 {
		return nil
	}
	return heap.Pop(&q.h).(*Entry)
}

// Remove takes e out of the queue and reports whether it was queued.
func (q *Queue) Remove(e *Entry) bool {
	i := e.pos - 1
	if i < 0 || i >= len(q.h) || q.h[i] != e {
		return false
	}
	heap.Remove(&q.h, i)
	return true
}

type entryHeap []*Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].Less(h[j]) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i+1, j+1
}
func (h *entryHeap) Push(x any) {
	e := x.(*Entry)
	e.pos = len(*h) + 1
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	n := len(old) - 1
	e := old[n]
	old[n] = nil
	e.pos = 0
	*h = old[:n]
	return e
}
