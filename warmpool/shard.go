package warmpool

import (
	"hash/maphash"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// The pool's maps are split in shards so that requests for different
// functions, and different chains, take no lock in common: every request
// calls Arrived and Finished. A shard's mutex guards only its LRU, and is
// held for one look-up or insert; a function's state has a mutex of its
// own (function.mu).
//
// Lock order: a shard's mutex is never held while taking another lock
// (its eviction callback only sets an atomic). A function's mutex is held
// while taking only the slots' (Slots.TryAcquireIdle) and Pool.closing:
// never a shard's, never another function's.

// minShardEntries is the fewest entries a shard is given, and maxShards
// the most shards: with a bound below two shards' worth, one shard keeps
// the LRU exact.
const (
	minShardEntries = 64
	maxShards       = 16
)

// shardCount is how many shards a map bounded by size is split in: at
// most maxShards, each of minShardEntries at least.
func shardCount(size int) int {
	return min(max(size/minShardEntries, 1), maxShards)
}

// shard is one part of a sharded LRU. Eviction is least recently used
// within the shard, so across the map only approximately.
type shard[V any] struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, V] // REQUIRES: mu
	_   [48]byte                  // padded to a cache line: neighbours' locks rarely share one
}

// shards is an LRU of at most size entries, split in shardCount(size)
// shards by a hash of the key.
type shards[V any] struct {
	seed maphash.Seed
	s    []shard[V]
}

// newShards returns an LRU of at most size entries; onEvict, if not nil,
// hears each entry evicted, under its shard's lock.
func newShards[V any](size int, onEvict func(string, V)) shards[V] {
	n := shardCount(size)
	m := shards[V]{seed: maphash.MakeSeed(), s: make([]shard[V], n)}
	for i := range m.s {
		// Split size exactly: the first size%n shards take one more.
		c := size / n
		if i < size%n {
			c++
		}
		m.s[i].lru, _ = simplelru.NewLRU(c, onEvict)
	}
	return m
}

// of returns key's shard.
func (m *shards[V]) of(key string) *shard[V] {
	if len(m.s) == 1 {
		return &m.s[0]
	}
	// The hash's top 32 bits scaled to [0, len): no division.
	h := maphash.String(m.seed, key) >> 32
	return &m.s[h*uint64(len(m.s))>>32]
}

// peek returns key's value without marking it used.
func (m *shards[V]) peek(key string) (V, bool) {
	s := m.of(key)
	s.mu.Lock()
	v, ok := s.lru.Peek(key)
	s.mu.Unlock()
	return v, ok
}

// values returns every value, shard by shard, each shard's least recently
// used first. Not for the request path: it visits every shard.
func (m *shards[V]) values() []V {
	var vs []V
	for i := range m.s {
		s := &m.s[i]
		s.mu.Lock()
		vs = append(vs, s.lru.Values()...)
		s.mu.Unlock()
	}
	return vs
}
