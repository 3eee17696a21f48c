package policy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchSnapshot is a busy proxy: every shipped policy has something to
// read.
func benchSnapshot() Snapshot {
	s := Snapshot{
		InFlight: 50, Limit: 50, ThrottleRate: 0.01, ErrorRate: 0.02,
		Queues:    map[string]map[string]int{"pending": {"interactive": 40, "batch": 300}, "chain_running": {"interactive": 10, "batch": 5}},
		Classes:   map[string]ClassStats{"interactive": {Queued: 50, WaitP99Ms: 120, InFlight: 40}, "batch": {Queued: 305, WaitP99Ms: 900, InFlight: 10}},
		Functions: map[string]FunctionStats{},
		Tenants:   map[string]TenantStats{},
	}
	for i := range 50 {
		s.Functions["ns/f"+strconv.Itoa(i)] = FunctionStats{InFlight: 1, P50Ms: float64(10 * i), P99Ms: float64(40 * i), ColdStartRate: 0.05}
	}
	for i := range 10 {
		s.Tenants["t"+strconv.Itoa(i)] = TenantStats{InFlight: 5}
	}
	return s
}

// BenchmarkDecide measures one decision with all shipped policies loaded
// against a busy snapshot: cached (the same invocation shape repeated
// within one snapshot epoch) and uncached (cache disabled, so every call
// evaluates the prepared query). baseline is a one-line policy that reads
// the input, uncached: the engine's own cost around OPA, measured in the
// same run so that uncached/baseline is a ratio that survives a noisy
// machine.
//
//	go test ./policy -run '^$' -bench Decide -benchmem
func BenchmarkDecide(b *testing.B) {
	snap := benchSnapshot()
	in := Input{Function: "ns/f3", Tenant: "t1", Platform: "openwhisk", Class: "interactive",
		ChainID: "c-1", Step: 1, Type: "sync"}
	baseline := b.TempDir()
	if err := os.WriteFile(filepath.Join(baseline, "p.rego"), []byte("package sequoia\n\ndecision := {\"priority\": input.step}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, dir string
		cache     int
	}{{"cached", "", 0}, {"uncached", "", -1}, {"baseline", baseline, -1}} {
		e, err := New(context.Background(), Options{Dir: bc.dir, CacheSize: bc.cache, Timeout: time.Second, Snapshot: func() Snapshot { return snap }})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Decide(ctx, &in); err != nil {
					b.Fatal(err)
				}
			}
		})
		if bc.dir != "" {
			continue
		}
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				in := in
				for pb.Next() {
					if _, err := e.Decide(ctx, &in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRefresh measures converting a busy snapshot, which happens
// once per refresh interval.
func BenchmarkRefresh(b *testing.B) {
	snap := benchSnapshot()
	e, err := New(context.Background(), Options{Snapshot: func() Snapshot { return snap }})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Refresh()
	}
}
