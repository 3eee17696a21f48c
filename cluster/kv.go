package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Where a NATS operation was made: on a request's path (a client-chosen
// chain id's look-up or registration, at most one each per chain and
// replica) or in the background (leases, reports, estimates).
const (
	PathRequest    = "request"
	PathBackground = "background"
)

// opsCounter counts the NATS operations sequoia makes, by kind and path.
func newOpsCounter() *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "sequoia", Subsystem: "cluster", Name: "nats_operations_total",
		Help: "NATS operations sequoia made, by op (kv_get, kv_keys, kv_put, kv_update, kv_create, kv_delete, publish) and path: request (on a request's path: a client-chosen chain id's look-up or registration, at most one each per chain and replica) or background (leases, step reports, shared estimates). Requests with ids sequoia assigned make none.",
	}, []string{"op", "path"})
	for _, op := range opNames {
		for _, p := range []string{PathRequest, PathBackground} {
			c.WithLabelValues(op, p) // every series from the start, at zero
		}
	}
	return c
}

var opNames = []string{"kv_get", "kv_keys", "kv_put", "kv_update", "kv_create", "kv_delete", "publish"}

// Op counts one NATS operation made on path.
func (e *Engine) Op(op, path string) { e.ops.WithLabelValues(op, path).Inc() }

// Ops returns the NATS operations counted so far on path (both paths for
// ""), for tests and benches.
func (e *Engine) Ops(path string) float64 {
	var n float64
	for _, op := range opNames {
		for _, p := range []string{PathRequest, PathBackground} {
			if path == "" || p == path {
				n += counterValue(e.ops.WithLabelValues(op, p))
			}
		}
	}
	return n
}

// Collectors returns the engine's metrics.
func (e *Engine) Collectors() []prometheus.Collector { return []prometheus.Collector{e.ops} }

// bucketReplicas is how many copies of a bucket the NATS cluster keeps:
// SEQUOIA_NATS_REPLICAS (one with the embedded server).
func (e *Engine) bucketReplicas() int {
	if e.srv != nil {
		return 1
	}
	return max(1, e.cfg.NatsReplicas)
}

// openBucket opens the key-value bucket named what in this cluster's
// namespace, creating it if it does not exist: file storage, one value
// per key, entries older than ttl dropped (0: never). With direct, reads
// are direct gets that any of the stream's servers answers, the fast
// path for many small reads (a client-chosen chain id's look-up); without
// it, reads go to the stream's leader, so that a value read after a write
// acknowledged elsewhere is that value (the leases), since a follower may
// lag by a moment.
func (e *Engine) openBucket(ctx context.Context, what string, ttl time.Duration, direct bool) (jetstream.KeyValue, error) {
	name := e.Name(what)
	kv, err := e.js.KeyValue(ctx, name)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, err
	}
	dup := 2 * time.Minute
	if ttl > 0 && ttl < dup {
		dup = ttl
	}
	_, err = e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_" + name,
		Subjects:          []string{"$KV." + name + ".>"},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxAge:            ttl,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          e.bucketReplicas(),
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        dup,
		Discard:           jetstream.DiscardNew,
		AllowDirect:       direct,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil, fmt.Errorf("cluster: bucket %s: %w", name, err)
	}
	return e.js.KeyValue(ctx, name)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if c.Write(&m) != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}
