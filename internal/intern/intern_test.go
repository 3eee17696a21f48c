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
