package serve

import (
	"encoding/json"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// gate stands in front of an emulator so that tests order events instead
// of timing them. A request whose JSON body has a "label" is logged in the
// order it reached the platform; one that also has "hold": true waits at
// the gate (holding the slot it took in sequoia) until the test releases
// it, or opens the gate, for as long as the test needs whatever the
// machine's speed.
type gate struct {
	mu      sync.Mutex
	arrived []string                 // labels, in the order they reached the platform
	waiting map[string]chan struct{} // held requests by label
	open    bool                     // every request passes
	inside  map[string]int           // requests at the gate or the emulator, by path
	peaks   map[string]int           // the most of them at once
}

// startGatedEmulator starts an emulator with cfg behind a gate and returns
// it, the gate's address and the gate. Tests open the gate before they
// end (defer g.openAll()): sequoia's shutdown waits for held requests.
func startGatedEmulator(t *testing.T, cfg emulator.Config) (*emulator.Emulator, string, *gate) {
	t.Helper()
	cfg.Logger = quietLogger()
	emu := emulator.New(cfg)
	g := &gate{waiting: map[string]chan struct{}{}, inside: map[string]int{}, peaks: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := emu.Handler()
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		path := string(ctx.Path())
		g.enter(path, +1)
		defer g.enter(path, -1)
		g.pass(ctx.PostBody())
		h(ctx)
	}}
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() {
		g.openAll()
		_ = srv.Shutdown()
		_ = emu.Shutdown()
	})
	return emu, ln.Addr().String(), g
}

// enter counts a request of path coming in (+1) or going out (-1).
func (g *gate) enter(path string, n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inside[path] += n
	g.peaks[path] = max(g.peaks[path], g.inside[path])
}

// peak returns the most requests of path the platform (the gate and the
// emulator behind it) had at once.
func (g *gate) peak(path string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peaks[path]
}

// pass logs the request with body and returns when it may go on.
func (g *gate) pass(body []byte) {
	var b struct {
		Label string `json:"label"`
		Hold  bool   `json:"hold"`
	}
	if json.Unmarshal(body, &b) != nil || b.Label == "" {
		return
	}
	g.mu.Lock()
	g.arrived = append(g.arrived, b.Label)
	var wait chan struct{}
	if b.Hold && !g.open {
		wait = make(chan struct{})
		g.waiting[b.Label] = wait
	}
	g.mu.Unlock()
	if wait != nil {
		<-wait
	}
}

// release lets the held request labelled label go on.
func (g *gate) release(t *testing.T, label string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	wait, ok := g.waiting[label]
	if !ok {
		t.Fatalf("gate: %q is not held", label)
	}
	delete(g.waiting, label)
	close(wait)
}

// openAll lets every held request go on, and every later one pass.
func (g *gate) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = true
	for label, wait := range g.waiting {
		close(wait)
		delete(g.waiting, label)
	}
}

// held returns how many requests wait at the gate.
func (g *gate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiting)
}

// order returns the labels in the order they reached the platform.
func (g *gate) order() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.arrived)
}

// eventually polls cond until it holds, failing t after a minute: the
// minute bounds no speed, it turns a hang into a failure.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
