// Package cluster owns what sequoia shares between replicas and keeps
// durable, on NATS JetStream: one engine, embedded in the process when
// SEQUOIA_NATS_URL is empty (a server with no listener, an in-process
// connection, a file store under SEQUOIA_STATE_DIR), or an external NATS
// cluster that the replicas of one SEQUOIA_CLUSTER share.
//
// Organisation. Engine (engine.go) starts the embedded server or connects
// to the external one, keeps reconnecting through outages (a temporary
// error never stops sequoia), reports the connection's state to watchers
// and to /sequoia/v1/status, and names streams, buckets and subjects
// under the cluster's name so that several deployments can share one
// NATS. The state directory is locked (lock_unix.go) so that two
// processes never run JetStream on the same files. natstest starts real
// NATS servers for tests.
//
// Usage:
//
//	e, err := cluster.Start(cluster.Options{Config: cfg.Cluster, Log: log})
//	defer e.Close()
//	kv, err := e.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: e.Name("leases")})
package cluster
