// Package queues owns the data structures invocations wait in: ordered
// queues whose entries can be removed from the middle when their waiter
// gives up.
//
// Organisation:
//
//   - Entry is the node a waiter embeds or points to: its Key (qos sets the
//     effective deadline), class, tenant and owner.
//   - Queue is a binary heap of entries ordered by Entry.Less (lowest Key,
//     then arrival) with a capacity.
//   - Fair is a queue whose tenants take turns (start-time fair queueing:
//     the tenant served least goes next, and a tenant that idled earns no
//     credit); inside a tenant, Entry.Less order.
//   - Set is one of the scheduler's queues (pending or chain-running): a
//     Fair per class, the classes served in proportion to their shares by
//     stride scheduling; a class alone takes every turn.
//
// The package does no locking and no waiting: qos owns both and calls these
// methods under its own lock.
//
// Usage:
//
//	s := queues.NewSet(0.8, 0.2) // interactive, batch
//	s.Push(&queues.Entry{Key: deadline.UnixNano(), Class: 1, Tenant: "acme", Owner: w})
//	next := s.Pop() // by class share, then tenant turn, then earliest Key
package queues
