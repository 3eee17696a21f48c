package ttlcache

import (
	"hash/maphash"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// shards is the number of independently locked parts; a power of two.
const shards = 32

type entry[V any] struct {
	v       V
	expires int64 // unix nanoseconds
}

type shard[V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, entry[V]]
	_   [40]byte // keeps two shards' locks off one cache line
}

// Cache is a sharded map of at most about size entries that each live for
// ttl after being added. It is safe for concurrent use.
type Cache[V any] struct {
	shards  [shards]shard[V]
	seed    maphash.Seed
	ttl     int64
	now     func() time.Time
	onEvict func(key string, v V)
	stop    chan struct{}
	stopped sync.WaitGroup
	close   sync.Once
}

// New returns a cache of at most size entries (at least one per shard),
// each expiring ttl after it was added; onEvict, if not nil, is called
// with every entry that leaves the cache, under its shard's lock (so it
// must not call the cache). A goroutine sweeps expired entries until
// Close.
func New[V any](size int, ttl time.Duration, onEvict func(key string, v V)) *Cache[V] {
	return newCache(size, ttl, onEvict, time.Now)
}

// NewWithClock is New with the clock the sweeper and Add and Get read:
// for a caller whose AddAt and GetAt times come from a clock of its own.
func NewWithClock[V any](size int, ttl time.Duration, onEvict func(key string, v V), now func() time.Time) *Cache[V] {
	return newCache(size, ttl, onEvict, now)
}

func newCache[V any](size int, ttl time.Duration, onEvict func(key string, v V), now func() time.Time) *Cache[V] {
	if ttl <= 0 {
		panic("ttlcache: ttl must be positive")
	}
	per := max(1, (size+shards-1)/shards)
	c := &Cache[V]{seed: maphash.MakeSeed(), ttl: int64(ttl), now: now, onEvict: onEvict, stop: make(chan struct{})}
	for i := range c.shards {
		var cb simplelru.EvictCallback[string, entry[V]]
		if onEvict != nil {
			cb = func(k string, e entry[V]) { onEvict(k, e.v) }
		}
		c.shards[i].lru, _ = simplelru.NewLRU(per, cb) // per > 0: no error
	}
	c.stopped.Add(1)
	go c.sweep(min(max(ttl/100, 10*time.Millisecond), time.Second))
	return c
}

func (c *Cache[V]) shard(key string) *shard[V] {
	return &c.shards[maphash.String(c.seed, key)&(shards-1)]
}

// Add sets key to v, expiring ttl from now. A value already there is
// replaced without the eviction callback and its entry moves to the new
// end, so insertion order stays expiry order. A full shard evicts its
// oldest entry.
func (c *Cache[V]) Add(key string, v V) { c.AddAt(key, v, c.now()) }

// AddAt is Add for a caller that already read the clock: now is the time
// of adding.
func (c *Cache[V]) AddAt(key string, v V, now time.Time) {
	s := c.shard(key)
	e := entry[V]{v: v, expires: now.UnixNano() + c.ttl}
	s.mu.Lock()
	s.lru.Add(key, e)
	s.mu.Unlock()
}

// ReplaceAt is Remove then AddAt under one lock: a value already there
// leaves with the eviction callback, and v takes its place.
func (c *Cache[V]) ReplaceAt(key string, v V, now time.Time) {
	s := c.shard(key)
	e := entry[V]{v: v, expires: now.UnixNano() + c.ttl}
	s.mu.Lock()
	s.lru.Remove(key)
	s.lru.Add(key, e)
	s.mu.Unlock()
}

// Get returns key's value, if it is there and has not expired. It does
// not change the entry's place: the oldest added goes first.
func (c *Cache[V]) Get(key string) (V, bool) { return c.GetAt(key, c.now()) }

// GetAt is Get for a caller that already read the clock: entries that
// expired by now are not returned.
func (c *Cache[V]) GetAt(key string, now time.Time) (V, bool) {
	s := c.shard(key)
	s.mu.Lock()
	e, ok := s.lru.Peek(key)
	s.mu.Unlock()
	if !ok || now.UnixNano() > e.expires {
		var zero V
		return zero, false // an expired entry waits for the sweeper
	}
	return e.v, true
}

// Remove removes key, calling the eviction callback if it was there.
func (c *Cache[V]) Remove(key string) bool {
	s := c.shard(key)
	s.mu.Lock()
	ok := s.lru.Remove(key)
	s.mu.Unlock()
	return ok
}

// Len returns the number of entries, expired ones not yet swept included.
func (c *Cache[V]) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += s.lru.Len()
		s.mu.Unlock()
	}
	return n
}

// Close stops the sweeper; entries stay and can still be read.
func (c *Cache[V]) Close() {
	c.close.Do(func() { close(c.stop) })
	c.stopped.Wait()
}

func (c *Cache[V]) sweep(every time.Duration) {
	defer c.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.expire()
		}
	}
}

// expire removes every expired entry, oldest first in each shard.
func (c *Cache[V]) expire() {
	now := c.now().UnixNano()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for {
			_, e, ok := s.lru.GetOldest()
			if !ok || e.expires >= now {
				break
			}
			s.lru.RemoveOldest()
		}
		s.mu.Unlock()
	}
}
