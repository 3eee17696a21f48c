package intern

import (
	"iter"
	"maps"
	"sync"
	"sync/atomic"
)

// Table is a bounded, append-only map from names to values.
type Table[V any] struct {
	m        atomic.Pointer[map[string]V]
	mu       sync.Mutex // serialises writers
	max      int
	make     func(name string) V
	overflow V
}

// New returns a table of at most max entries; make builds the value of a new
// name, and overflow is returned for every name once the table is full.
func New[V any](max int, make func(name string) V, overflow V) *Table[V] {
	t := &Table[V]{max: max, make: make, overflow: overflow}
	m := map[string]V{}
	t.m.Store(&m)
	return t
}

// Get returns the value for name, creating it if the table has room.
// Hot-path cost when name is known: one atomic load and one map lookup.
func (t *Table[V]) Get(name []byte) V {
	if v, ok := (*t.m.Load())[string(name)]; ok {
		return v
	}
	return t.add(string(name)) // a miss: the name is copied once to be kept
}

// GetString is Get for a name already held as a string.
func (t *Table[V]) GetString(name string) V {
	if v, ok := (*t.m.Load())[name]; ok {
		return v
	}
	return t.add(name)
}

func (t *Table[V]) add(name string) V {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.m.Load()
	if v, ok := old[name]; ok {
		return v
	}
	if len(old) >= t.max {
		return t.overflow
	}
	next := make(map[string]V, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	v := t.make(name)
	next[name] = v
	t.m.Store(&next)
	return v
}

// Len reports how many names the table holds.
func (t *Table[V]) Len() int { return len(*t.m.Load()) }

// All yields every entry, in no particular order.
func (t *Table[V]) All() iter.Seq2[string, V] { return maps.All(*t.m.Load()) }
