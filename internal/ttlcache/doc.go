// Package ttlcache is a bounded map whose entries expire a fixed time after
// they were added, split into shards that each have their own lock, so
// that concurrent requests touching different keys do not contend.
//
// It is the chain tables' store: every new chain adds an entry and every
// continuation looks one up, so it sits on the request path. Each shard is
// a golang-lru simplelru.LRU kept in insertion order (lookups do not
// reorder), which makes the oldest entry also the first to expire: a
// sweeper removes expired entries from the old end without scanning, and
// a full shard evicts its oldest entry. Every removal (expiry, capacity,
// Remove) calls the eviction callback, under the shard's lock.
//
// Usage:
//
//	c := ttlcache.New(100000, 5*time.Minute, func(key string, v *Chain) { v.end() })
//	defer c.Close()
//	c.Add(id, chain)
//	chain, ok := c.Get(id)
package ttlcache
