package queues

import "container/heap"

// tenant is one tenant's entries in a Fair queue.
type tenant struct {
	name string
	q    Queue
	// vtime counts the grants the tenant received, in its Fair's virtual
	// time: a tenant that comes back after idling starts at the Fair's
	// current time, so idling earns no credit.
	vtime uint64
	pos   int // position in Fair.active plus one; 0 when the tenant is idle
}

// Fair is a queue whose tenants take turns: the next entry comes from the
// tenant that has been served least (start-time fair queueing with equal
// weights), and inside a tenant in Entry.Less order (highest Priority,
// earliest Key, then arrival). Among tenants served equally, the earliest
// head goes first. Priority is the one thing above the turns: a tenant
// whose head has a higher Priority than every other tenant's head goes
// first, so a policy's priority holds across tenants (strict function
// priority, shortest job first, a fair-share penalty); with equal
// priorities, which is all there is without a policy, tenants take turns.
// Served out of turn, a tenant's count still grows, so when priorities are
// equal again the others catch up.
//
// Tenant state is kept after a tenant idles, so Fair holds one small
// struct per tenant ever seen: callers bound tenant names (the proxy
// interns them into a bounded table). The zero value is an empty Fair.
type Fair struct {
	tenants map[string]*tenant
	active  tenantHeap
	vnow    uint64
	seq     uint64
	n       int
}

// Len returns the number of queued entries.
func (f *Fair) Len() int { return f.n }

// Push queues e behind its tenant's earlier entries, with no bound.
func (f *Fair) Push(e *Entry) {
	t := f.tenant(e.Tenant)
	f.seq++
	e.Seq = f.seq
	e.tq = t
	t.q.pushSeq(e)
	if t.pos == 0 {
		t.vtime = max(t.vtime, f.vnow)
		heap.Push(&f.active, t)
	} else {
		heap.Fix(&f.active, t.pos-1)
	}
	f.n++
}

// Peek returns the entry Pop would return, or nil.
func (f *Fair) Peek() *Entry {
	if len(f.active) == 0 {
		return nil
	}
	return f.active[0].q.Peek()
}

// Pop removes and returns the next entry to serve, or nil.
func (f *Fair) Pop() *Entry {
	if len(f.active) == 0 {
		return nil
	}
	t := f.active[0]
	e := t.q.Pop()
	f.vnow = t.vtime
	t.vtime++
	f.settle(t)
	e.tq = nil
	f.n--
	return e
}

// Remove takes e out of the queue and reports whether it was queued here.
func (f *Fair) Remove(e *Entry) bool {
	t := e.tq
	if t == nil || f.tenants[t.name] != t || !t.q.Remove(e) {
		return false
	}
	f.settle(t)
	e.tq = nil
	f.n--
	return true
}

// settle restores t's place among the active tenants after its queue
// changed at the head.
func (f *Fair) settle(t *tenant) {
	if t.q.Len() == 0 {
		heap.Remove(&f.active, t.pos-1)
		return
	}
	heap.Fix(&f.active, t.pos-1)
}

func (f *Fair) tenant(name string) *tenant {
	if t, ok := f.tenants[name]; ok {
		return t
	}
	if f.tenants == nil {
		f.tenants = make(map[string]*tenant)
	}
	t := &tenant{name: name}
	t.q.SetCapacity(int(^uint(0) >> 1))
	f.tenants[name] = t
	return t
}

type tenantHeap []*tenant

func (h tenantHeap) Len() int { return len(h) }
func (h tenantHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	ha, hb := a.q.Peek(), b.q.Peek()
	if ha.Priority != hb.Priority {
		return ha.Priority > hb.Priority
	}
	if a.vtime != b.vtime {
		return a.vtime < b.vtime
	}
	return ha.Less(hb)
}
func (h tenantHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i+1, j+1
}
func (h *tenantHeap) Push(x any) {
	t := x.(*tenant)
	t.pos = len(*h) + 1
	*h = append(*h, t)
}
func (h *tenantHeap) Pop() any {
	old := *h
	n := len(old) - 1
	t := old[n]
	old[n] = nil
	t.pos = 0
	*h = old[:n]
	return t
}

// Set is one of a scheduler's queues (pending or chain-running): a Fair
// queue per class, the classes served in proportion to their shares by
// stride scheduling. A class alone takes every turn; when several wait,
// each gets at least its share of turns, so none starves another.
type Set struct {
	classes []class
	pass    float64
	n       int
}

type class struct {
	f      Fair
	stride float64
	pass   float64
}

// NewSet returns a Set with one class per share; shares must be positive
// and are relative to each other.
func NewSet(shares ...float64) *Set {
	s := &Set{classes: make([]class, len(shares))}
	for i, sh := range shares {
		s.classes[i].stride = 1 / sh
	}
	return s
}

// Len returns the number of queued entries.
func (s *Set) Len() int { return s.n }

// ClassLen returns the number of queued entries of class c.
func (s *Set) ClassLen(c int) int { return s.classes[c].f.Len() }

// Push queues e in its class, which must be below the number of shares.
func (s *Set) Push(e *Entry) {
	c := &s.classes[e.Class]
	if c.f.Len() == 0 {
		c.pass = max(c.pass, s.pass)
	}
	c.f.Push(e)
	s.n++
}

// next returns the class whose turn it is, or nil when all are empty.
func (s *Set) next() *class {
	var best *class
	for i := range s.classes {
		c := &s.classes[i]
		if c.f.Len() > 0 && (best == nil || c.pass < best.pass) {
			best = c
		}
	}
	return best
}

// Peek returns the entry Pop would return, or nil.
func (s *Set) Peek() *Entry {
	if c := s.next(); c != nil {
		return c.f.Peek()
	}
	return nil
}

// Pop removes and returns the next entry to serve, or nil.
func (s *Set) Pop() *Entry {
	c := s.next()
	if c == nil {
		return nil
	}
	s.pass = c.pass
	c.pass += c.stride
	s.n--
	return c.f.Pop()
}

// Remove takes e out of the Set and reports whether it was queued here.
func (s *Set) Remove(e *Entry) bool {
	if int(e.Class) >= len(s.classes) || !s.classes[e.Class].f.Remove(e) {
		return false
	}
	s.n--
	return true
}
