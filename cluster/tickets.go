package cluster

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// An admission ticket rides on the chain ids sequoia assigns in a
// cluster, after the id: "sq-<16 hex>-<counter>.<deadline>.<steps>.<mac>",
// with the deadline in Unix milliseconds and the steps in base 36 (0:
// none, not told) and the MAC the first 12 bytes of HMAC-SHA256 over the
// rest under the cluster's key, in unpadded base64url. Every character is
// an HTTP token character, so the whole travels as X-Sequoia-Chain-Id and
// a function that propagates the id propagates the ticket. Any replica
// that holds the key reads it without a look-up: the chain was admitted
// (an id is ticketed only once its chain is), by whom (the id's prefix),
// until when, for how many steps.
const (
	macBytes   = 12
	macChars   = 16 // base64url of macBytes, unpadded
	idPrefix   = "sq-"
	originHex  = 16 // the hex digits of an id's per-process prefix
	maxTicket  = 64
	keyBytes   = 32
	minKeySize = 16
)

// Tickets signs and reads admission tickets under the cluster's key. The
// zero value has no key: it mints nothing and reads nothing.
type Tickets struct {
	keys atomic.Pointer[keyRing]
}

// keyRing is the key tickets are signed with and, after a change, the one
// before, still accepted, each with a pool of MACs.
type keyRing struct {
	cur, prev *macKey
}

type macKey struct {
	key  []byte
	pool sync.Pool // of *macState
}

// macState is a MAC and room for its sum, reused together so that signing
// allocates nothing.
type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newMACKey(key []byte) *macKey {
	k := &macKey{key: bytes.Clone(key)}
	k.pool.New = func() any { return &macState{h: hmac.New(sha256.New, k.key)} }
	return k
}

// SetKey makes key the one tickets are signed with; the previous one is
// still accepted. It reports whether the key changed.
func (t *Tickets) SetKey(key []byte) bool {
	old := t.keys.Load()
	if old != nil && hmac.Equal(old.cur.key, key) {
		return false
	}
	r := &keyRing{cur: newMACKey(key)}
	if old != nil {
		r.prev = old.cur
	}
	t.keys.Store(r)
	return true
}

// HasKey says whether a key is set.
func (t *Tickets) HasKey() bool { return t.keys.Load() != nil }

// sign appends the MAC of msg under k, in base64url, to dst.
func (k *macKey) sign(dst, msg []byte) []byte {
	st := k.pool.Get().(*macState)
	st.h.Reset()
	st.h.Write(msg)
	mac := st.h.Sum(st.sum[:0])
	dst = base64.RawURLEncoding.AppendEncode(dst, mac[:macBytes])
	k.pool.Put(st)
	return dst
}

// Mint appends to dst the ticket of the chain id (an id sequoia assigned)
// admitted with deadline (zero: none) and steps (0: not told), and
// reports false, appending nothing, without a key. The message signed is
// the id, a dot and the ticket's fields, built in dst itself.
//
// Cost: one HMAC-SHA256 of about 40 bytes, no allocation beyond dst's.
func (t *Tickets) Mint(dst []byte, id string, deadline time.Time, steps int) ([]byte, bool) {
	r := t.keys.Load()
	if r == nil {
		return dst, false
	}
	start := len(dst)
	dst = append(dst, id...)
	dst = append(dst, '.')
	fields := len(dst)
	var ms int64
	if !deadline.IsZero() {
		ms = max(deadline.UnixMilli(), 1)
	}
	dst = strconv.AppendInt(dst, ms, 36)
	dst = append(dst, '.')
	dst = strconv.AppendInt(dst, int64(max(steps, 0)), 36)
	dst = append(dst, '.')
	dst = r.cur.sign(dst, dst[start:len(dst)-1]) // hashes before it appends
	// Keep only the ticket: move it over the id the MAC was built from.
	n := copy(dst[start:], dst[fields:])
	return dst[:start+n], true
}

// Read verifies the ticket that came with id and returns what it says;
// false when it is malformed or signed with neither key.
func (t *Tickets) Read(id, ticket string) (deadline time.Time, steps int, ok bool) {
	r := t.keys.Load()
	if r == nil || len(ticket) > maxTicket || len(ticket) < macChars+4 {
		return time.Time{}, 0, false
	}
	body, mac := ticket[:len(ticket)-macChars], ticket[len(ticket)-macChars:]
	if body[len(body)-1] != '.' {
		return time.Time{}, 0, false
	}
	d, s, found := cutByte(body[:len(body)-1], '.')
	if !found {
		return time.Time{}, 0, false
	}
	ms, err := strconv.ParseInt(d, 36, 64)
	if err != nil || ms < 0 || ms > 1<<50 {
		return time.Time{}, 0, false
	}
	n, err := strconv.ParseInt(s, 36, 32)
	if err != nil || n < 0 {
		return time.Time{}, 0, false
	}
	msg := make([]byte, 0, len(id)+len(body))
	msg = append(append(append(msg, id...), '.'), body[:len(body)-1]...)
	if !r.cur.verify(msg, mac) && (r.prev == nil || !r.prev.verify(msg, mac)) {
		return time.Time{}, 0, false
	}
	if ms > 0 {
		deadline = time.UnixMilli(ms)
	}
	return deadline, int(n), true
}

func (k *macKey) verify(msg []byte, mac string) bool {
	var buf [macChars]byte
	got := k.sign(buf[:0], msg)
	return subtle.ConstantTimeCompare(got, []byte(mac)) == 1
}

func cutByte(s string, sep byte) (before, after string, found bool) {
	for i := range len(s) {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// SplitID splits a received chain id of the shape sequoia assigns with a
// ticket ("sq-<16 hex>-<counter>.<ticket>") into the id and the ticket;
// ok is false for any other id, which is whole. Nothing is verified here.
func SplitID(b []byte) (id, ticket []byte, ok bool) {
	const head = len(idPrefix) + originHex + 1
	if len(b) < head+2 || string(b[:len(idPrefix)]) != idPrefix || b[head-1] != '-' {
		return b, nil, false
	}
	for _, c := range b[len(idPrefix) : head-1] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return b, nil, false
		}
	}
	dot := bytes.IndexByte(b[head:], '.')
	if dot <= 0 || head+dot+1 == len(b) {
		return b, nil, false
	}
	for _, c := range b[head : head+dot] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return b, nil, false
		}
	}
	return b[:head+dot], b[head+dot+1:], true
}

// OriginOf returns the per-process part of an id sequoia assigned (the 16
// hex digits after "sq-"), which names the replica that assigned it; ""
// for any other id.
func OriginOf(id string) string {
	const head = len(idPrefix) + originHex
	if len(id) <= head || id[:len(idPrefix)] != idPrefix || id[head] != '-' {
		return ""
	}
	return id[len(idPrefix):head]
}
