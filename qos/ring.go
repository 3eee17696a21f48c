package qos

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ChainIDs assigns chain ids to requests that bring none: a random
// per-process prefix and a counter ("sq-<16 hex>-<base 36>"), so that ids
// are unique across proxies without randomness per request. The scheduler
// that owns it keeps its chains in a ring indexed by the counter instead
// of the chain table: inserting one is an atomic swap, with no lock, no
// map and no allocation (most such chains are a single request that never
// comes back).
type ChainIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewChainIDs returns a generator with a fresh random prefix.
func NewChainIDs() *ChainIDs {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &ChainIDs{prefix: "sq-" + hex.EncodeToString(b[:]) + "-"}
}

// Next appends a new id to dst.
func (g *ChainIDs) Next(dst []byte) []byte {
	dst = append(dst, g.prefix...)
	return strconv.AppendUint(dst, g.n.Add(1), 36)
}

// seq returns the counter of an id g assigned, and false for any other id.
func (g *ChainIDs) seq(id string) (uint64, bool) {
	if len(id) <= len(g.prefix) || id[:len(g.prefix)] != g.prefix {
		return 0, false
	}
	digits := id[len(g.prefix):]
	if len(digits) > 13 || digits[0] == '0' { // 36^13 > 2^64 > 36^12; no leading zeros
		return 0, false
	}
	var n uint64
	for i := range len(digits) {
		c := digits[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'z':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		next := n*36 + uint64(d)
		if next/36 != n { // overflow
			return 0, false
		}
		n = next
	}
	return n, n <= g.n.Load()
}

// ring holds the chains whose ids ChainIDs assigned, each at its counter
// modulo the ring's size: a new one replaces the one assigned a ring's
// length earlier, which ends (as the chain table's oldest entry would when
// full). A sweeper ends chains SEQUOIA_CHAIN_TTL after they were stored.
// A chain in the ring has a non-zero seq; every other chain is in the
// table.
type ring struct {
	slots []atomic.Pointer[chain]
	mask  uint64
	ttl   int64
	live  atomic.Int64
	now   func() time.Time
	end   func(c *chain) // ends a chain that left the ring
	// idle checks a chain still in the ring at each sweep: it ends one
	// whose caller went quiet (quiet.go), which stays in the ring.
	idle func(c *chain, now int64) bool

	stop    chan struct{}
	stopped sync.WaitGroup
	close   sync.Once
}

func newRing(size int, ttl time.Duration, now func() time.Time, end func(*chain), idle func(*chain, int64) bool) *ring {
	n := 1
	for n < size {
		n <<= 1
	}
	r := &ring{slots: make([]atomic.Pointer[chain], n), mask: uint64(n - 1), ttl: int64(ttl), now: now, end: end, idle: idle,
		stop: make(chan struct{})}
	r.stopped.Add(1)
	go r.sweep(min(max(ttl/100, 10*time.Millisecond), time.Second))
	return r
}

// slot is where the chain of counter seq lives. Consecutive counters are
// spread ringStride slots apart, so that chains started at once on
// different cores do not write one cache line; an odd stride keeps the
// mapping one to one, and seq and seq plus the ring's size still share a
// slot.
func (r *ring) slot(seq uint64) *atomic.Pointer[chain] { return &r.slots[(seq*ringStride)&r.mask] }

const ringStride = 9 // 72 bytes: past a 64-byte cache line

// get returns the chain with counter seq, unless it left the ring or
// expired by now.
func (r *ring) get(seq uint64, now time.Time) (*chain, bool) {
	c := r.slot(seq).Load()
	if c == nil || c.seq != seq || now.UnixNano() > c.expires.Load() {
		return nil, false
	}
	return c, true
}

// put stores c (c.seq set) at now in place of a chain of an older or the
// same id, which ends; it refuses (false) if the slot holds a newer id's
// chain, which a chain of an id a ring's length older must not end: that
// one goes to the chain table.
func (r *ring) put(c *chain, now time.Time) bool {
	slot := r.slot(c.seq)
	c.expires.Store(now.UnixNano() + r.ttl)
	for {
		old := slot.Load()
		if old != nil && old.seq > c.seq {
			return false
		}
		if slot.CompareAndSwap(old, c) {
			if old != nil {
				r.end(old)
			} else {
				r.live.Add(1)
			}
			return true
		}
	}
}

// remove takes c out of the ring, if it is still there, and ends it.
func (r *ring) remove(c *chain) {
	if r.slot(c.seq).CompareAndSwap(c, nil) {
		r.live.Add(-1)
		r.end(c)
	}
}

// touch renews c's expiry, if c is still in the ring.
func (r *ring) touch(c *chain, now time.Time) {
	if r.slot(c.seq).Load() == c {
		c.expires.Store(now.UnixNano() + r.ttl)
	}
}

func (r *ring) sweep(every time.Duration) {
	defer r.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			r.expire()
		}
	}
}

// expire ends every chain stored longer than the TTL ago, and lets idle
// check the others that have not ended.
func (r *ring) expire() {
	now := r.now().UnixNano()
	for i := range r.slots {
		c := r.slots[i].Load()
		switch {
		case c == nil:
		case now > c.expires.Load():
			r.remove(c)
		case r.idle != nil && !c.ended.Load():
			r.idle(c, now)
		}
	}
}

// Close stops the sweeper.
func (r *ring) Close() {
	r.close.Do(func() { close(r.stop) })
	r.stopped.Wait()
}
