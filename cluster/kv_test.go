package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/cluster/natstest"
	"github.com/sequoia-qos/sequoia/config"
)

// TestBucketReadsWhatWasWritten: a value written through one connection
// and acknowledged is what another connection reads, with direct gets
// and without, on a cluster of three servers.
func TestBucketReadsWhatWasWritten(t *testing.T) {
	nc := natstest.StartCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, copies := range []int{1, 3} {
		for _, direct := range []bool{false, true} {
			name := fmt.Sprintf("b%d%v", copies, direct)
			w := startEngine(t, config.Cluster{Name: "test", NatsURL: nc.URL(), NatsReplicas: copies})
			r := startEngine(t, config.Cluster{Name: "test", NatsURL: nc.URL(), NatsReplicas: copies})
			kw, err := w.openBucket(ctx, name, time.Minute, direct)
			if err != nil {
				t.Fatal(err)
			}
			kr, err := r.openBucket(ctx, name, time.Minute, direct)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 {
				key := fmt.Sprintf("c.%d", i)
				if _, err := kw.Put(ctx, key, []byte("v")); err != nil {
					t.Fatal(err)
				}
				if e, err := kr.Get(ctx, key); err != nil || string(e.Value()) != "v" {
					t.Fatalf("%d copies, direct %v: key %s written, read %v, %v", copies, direct, key, e, err)
				}
			}
		}
	}
}
