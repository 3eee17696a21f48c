// Package queues owns the data structures invocations wait in: ordered,
// bounded queues whose entries can be removed from the middle when their
// waiter gives up.
//
// Organisation: Entry is the node a waiter embeds or points to; Queue is a
// binary heap of entries ordered by Entry.Less (today: arrival order) with a
// capacity. The package does no locking and no waiting: qos owns both and
// calls these methods under its own lock.
//
// Usage:
//
//	var q queues.Queue
//	q.SetCapacity(100)
//	e := &queues.Entry{Owner: w}
//	if !q.Push(e) {
//		return ErrQueueFull
//	}
//	next := q.Pop() // lowest Seq first
package queues
