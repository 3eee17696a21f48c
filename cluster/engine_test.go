package cluster

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/config"
)

func startEngine(t *testing.T, c config.Cluster) *Engine {
	t.Helper()
	if c.Name == "" {
		c.Name = "test"
	}
	e, err := Start(Options{Config: c})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// waitFor polls cond until it holds or a minute passes: the outcome is
// asserted, not how fast it came.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("never %s", what)
		}
	}
}

// TestEmbeddedKeepsStateAcrossRestarts: the embedded server stores
// JetStream data under the state directory, so what one start wrote the
// next one reads.
func TestEmbeddedKeepsStateAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := Start(Options{Config: config.Cluster{Name: "test", StateDir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	if !e.Embedded() || !e.Connected() {
		t.Fatalf("embedded %v, connected %v; want both", e.Embedded(), e.Connected())
	}
	kv, err := e.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: e.Name("kv"), Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); st.Mode != "embedded" || st.StateDir != dir || !st.Connected || st.Cluster != "test" {
		t.Errorf("status %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := startEngine(t, config.Cluster{Name: "test", StateDir: dir})
	kv2, err := e2.JetStream().KeyValue(ctx, e2.Name("kv"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kv2.Get(ctx, "k"); err != nil || string(got.Value()) != "v" {
		t.Fatalf("after a restart: %v, %v; want v", got, err)
	}
}

// TestStateDirLocked: a second sequoia on the same state directory is
// refused with a message that names the variable.
func TestStateDirLocked(t *testing.T) {
	dir := t.TempDir()
	startEngine(t, config.Cluster{Name: "test", StateDir: dir})
	_, err := Start(Options{Config: config.Cluster{Name: "test", StateDir: dir}})
	if err == nil || !strings.Contains(err.Error(), "SEQUOIA_STATE_DIR") || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second engine on one directory: err = %v", err)
	}
}

// TestExternalOutage: with an external NATS, an outage is seen (watchers
// and status) and the connection comes back on its own when the server
// does.
func TestExternalOutage(t *testing.T) {
	ns := natstest.Start(t)
	e := startEngine(t, config.Cluster{Name: "test", NatsURL: ns.URL()})
	if e.Embedded() || !e.Connected() {
		t.Fatalf("embedded %v, connected %v", e.Embedded(), e.Connected())
	}
	var downs, ups atomic.Int32
	e.Watch(func(up bool) {
		if up {
			ups.Add(1)
		} else {
			downs.Add(1)
		}
	})
	ns.Stop()
	waitFor(t, "saw the outage", func() bool { return !e.Connected() && downs.Load() == 1 })
	if st := e.Status(); st.Connected || st.Mode != "external" {
		t.Errorf("status during the outage %+v", st)
	}
	ns.Restart()
	waitFor(t, "reconnected", func() bool { return e.Connected() && ups.Load() == 1 })
}

// TestExternalNotYetUp: an external NATS that is down at start does not
// stop start-up; the engine connects once it is up.
func TestExternalNotYetUp(t *testing.T) {
	ns := natstest.Start(t)
	ns.Stop()
	e := startEngine(t, config.Cluster{Name: "test", NatsURL: ns.URL()})
	if e.Connected() {
		t.Fatal("connected to a server that is down")
	}
	ns.Restart()
	waitFor(t, "connected", e.Connected)
}

func TestRedact(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"nats://a:4222", "nats://a:4222"},
		{"nats://u:secret@a:4222,nats://token@b:4222", "nats://xxxxx@a:4222,nats://xxxxx@b:4222"},
	} {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
