package natstest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterReplicatesAndSurvivesRestart: a bucket of three replicas on
// the three-node cluster keeps its value across a stop and restart of the
// whole cluster.
func TestClusterReplicatesAndSurvivesRestart(t *testing.T) {
	c := StartCluster(t, 3)
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "b", Replicas: 3, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	// The bucket's stream has a leader when CreateKeyValue returns, but the
	// server this client is on may not yet know of its subscription (route
	// interest travels on its own): until then a put has no responder.
	for {
		_, err := kv.Put(ctx, "k", []byte("v"))
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrNoStreamResponse) || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st, err := kv.Status(ctx)
	if err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
		t.Fatalf("status %v, %v", st, err)
	}
	c.Stop()
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	for {
		e, err := kv.Get(ctx, "k")
		if err == nil {
			if string(e.Value()) != "v" {
				t.Fatalf("got %q", e.Value())
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("never read the value back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
