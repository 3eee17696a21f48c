package intern

import (
	"strconv"
	"sync"
	"testing"
)

func TestBoundAndIdentity(t *testing.T) {
	made := 0
	tab := New(3, func(s string) *string { made++; return &s }, nil)
	a := tab.Get([]byte("a"))
	if got := tab.Get([]byte("a")); got != a {
		t.Error("the same name gave a different value")
	}
	tab.Get([]byte("b"))
	tab.Get([]byte("c"))
	if got := tab.Get([]byte("d")); got != nil {
		t.Errorf("past the bound: got %q, want the overflow value", *got)
	}
	if tab.Len() != 3 || made != 3 {
		t.Errorf("len %d, made %d; want 3, 3", tab.Len(), made)
	}
}

func TestConcurrentGet(t *testing.T) {
	tab := New(1000, func(s string) string { return s }, "_other")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				name := strconv.Itoa((i * (g + 1)) % 150)
				if got := tab.Get([]byte(name)); got != name {
					t.Errorf("Get(%q) = %q", name, got)
					return
				}
			}
		}()
	}
	wg.Wait()
	if tab.Len() != 150 {
		t.Errorf("len = %d, want 150", tab.Len())
	}
}

func BenchmarkGetKnown(b *testing.B) {
	tab := New(1000, func(s string) string { return s }, "")
	key := []byte("guest/hello")
	tab.Get(key)
	b.ReportAllocs()
	for b.Loop() {
		tab.Get(key)
	}
}

// TestGetStringAndAll: GetString finds and adds the same entries as Get,
// allocates nothing for a known name, and All yields every entry.
func TestGetStringAndAll(t *testing.T) {
	tb := New(2, func(name string) *string { return &name }, nil)
	a := tb.Get([]byte("a"))
	if got := tb.GetString("a"); got != a {
		t.Error("GetString and Get disagree on a known name")
	}
	b := tb.GetString("b")
	if got := tb.Get([]byte("b")); got != b || *b != "b" {
		t.Error("an entry added by GetString is not what Get finds")
	}
	if got := tb.GetString("c"); got != nil {
		t.Errorf("past the bound: %v, want the overflow value", got)
	}
	name := string([]byte("a"))
	if n := testing.AllocsPerRun(100, func() { tb.GetString(name) }); n != 0 {
		t.Errorf("GetString of a known name: %v allocs, want 0", n)
	}
	seen := map[string]bool{}
	for k, v := range tb.All() {
		seen[k] = *v == k
	}
	if len(seen) != 2 || !seen["a"] || !seen["b"] {
		t.Errorf("All yielded %v, want a and b", seen)
	}
}
