// Package qos owns admission: the bounded worker pool that never lets more
// invocations reach the platform than it can run, and the queue that holds
// the rest.
//
// Goals. Never exceed the platform's concurrency budget, so that the platform
// never throttles; never lose a waiting invocation silently (a full queue,
// a timed-out wait and a departed client each end with a named error); and
// cost next to nothing when there is room: the fast path is one atomic load
// and one compare-and-swap, with no lock and no allocation.
//
// Internal organisation.
//
//   - Scheduler holds the slots (an atomic in-flight count against an
//     atomic limit) and a queues.Queue of waiters under one mutex. Acquire
//     takes a slot or waits for one; Release gives it back and, if anyone
//     waits, hands it straight to the first waiter (a grant), so a freed
//     slot is never taken by a newcomer while older waiters starve.
//   - A waiter is pooled: its grant channel and its timer are reused, so
//     waiting allocates only the watch of its client.
//   - Watcher is the small interface the caller gives to learn that its
//     client went away while queued (the proxy watches the TCP connection).
//     A wait that ends by timeout or departure while a grant races with it
//     returns the grant (departure) or keeps it (timeout: the slot is used).
//   - Invoker is what Do calls once a slot is held: the platform client.
//
// Usage:
//
//	s := qos.New(qos.Config{Limit: 50, QueueCapacity: 1000, QueueTimeout: 30 * time.Second})
//	waited, err := s.Do(inv, watcher, platformClient)
//	switch {
//	case errors.Is(err, qos.ErrQueueFull):    // 429
//	case errors.Is(err, qos.ErrQueueTimeout): // 503
//	case errors.Is(err, qos.ErrClientGone):   // nothing to answer
//	}
package qos
