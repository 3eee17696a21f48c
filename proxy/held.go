package proxy

import (
	"net"
	"slices"
	"sync"
	"time"
)

// heldCalls keeps the invocations the handler is running (queued, at the
// platform, or between two attempts), so that status and metrics can say
// which of them hold a slot for a client that has left, and which have run
// far longer than usual. A hung platform holds every slot until
// SEQUOIA_BACKEND_TIMEOUT even after every client left; keeping the slot
// is right (the platform is still busy), and this makes it visible.
//
// Hot-path cost: a lock and a map insert, then a lock and a map delete, on
// one of heldShards shards.
type heldCalls struct {
	shards [heldShards]heldShard
}

const heldShards = 16

type heldShard struct {
	mu sync.Mutex
	m  map[*request]struct{} // REQUIRES: mu
}

func (h *heldCalls) init() {
	for i := range h.shards {
		h.shards[i].m = map[*request]struct{}{}
	}
}

func (h *heldCalls) add(r *request) {
	s := &h.shards[r.shard]
	s.mu.Lock()
	s.m[r] = struct{}{}
	s.mu.Unlock()
}

func (h *heldCalls) remove(r *request) {
	s := &h.shards[r.shard]
	s.mu.Lock()
	delete(s.m, r)
	s.mu.Unlock()
}

// HeldCall is one invocation in progress, as Held reports it.
type HeldCall struct {
	Function string        `json:"function"`
	Tenant   string        `json:"tenant,omitempty"`
	Age      time.Duration `json:"-"`
	AgeMs    int64         `json:"age_ms"`
	// ClientGone says the client closed its connection: the call still
	// holds its slot until the platform answers.
	ClientGone bool `json:"client_gone"`
}

// Held returns the invocations in progress, oldest first. It looks at each
// client's socket without reading from it (a peek) to tell whether the
// client is still there. Cost: one non-blocking system call per
// invocation, off the request path.
func (p *Proxy) Held() []HeldCall {
	type call struct {
		c       net.Conn
		fn, ten string
		arrival time.Time
	}
	var calls []call
	for i := range p.held.shards {
		s := &p.held.shards[i]
		s.mu.Lock()
		for r := range s.m {
			// The request is in its handler while registered: its
			// fields hold, and its connection is open.
			calls = append(calls, call{r.ctx.Conn(), r.inv.Function, r.inv.Tenant, r.inv.Arrival})
		}
		s.mu.Unlock()
	}
	now := time.Now()
	out := make([]HeldCall, 0, len(calls))
	for _, c := range calls {
		age := now.Sub(c.arrival)
		out = append(out, HeldCall{Function: c.fn, Tenant: c.ten, Age: age, AgeMs: age.Milliseconds(), ClientGone: connGone(c.c)})
	}
	slices.SortFunc(out, func(a, b HeldCall) int { return int(b.Age - a.Age) })
	return out
}
