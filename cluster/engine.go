package cluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/config"
)

// Engine is sequoia's connection to NATS JetStream: an embedded server
// with no listener (an in-process connection, files under the state
// directory) when no SEQUOIA_NATS_URL is set, else the external servers.
// Everything shared or durable goes through it.
type Engine struct {
	cfg     config.Cluster
	replica string
	log     *slog.Logger
	srv     *server.Server // nil with an external NATS
	lock    *dirLock       // the state directory's, with the embedded server
	nc      *nats.Conn
	js      jetstream.JetStream
	ops     *prometheus.CounterVec // NATS operations made (kv.go)

	connected atomic.Bool
	mu        sync.Mutex
	since     time.Time       // of the last change of connected; REQUIRES: mu
	watchers  []func(up bool) // REQUIRES: mu
	lastErr   error           // REQUIRES: mu
	closed    bool            // REQUIRES: mu
}

// Options configures Start.
type Options struct {
	Config config.Cluster
	// Replica names this process in the cluster; empty: the host name
	// and a random suffix, unique per start.
	Replica string
	// StoreMax bounds the embedded server's file store in bytes; 0: the
	// server's default (a share of the disk).
	StoreMax int64
	// MaxPayload bounds one message, with the embedded server (an Event's
	// request, a DAG node's output); 0: 8 MiB. An external NATS has its
	// own max_payload (1 MiB by default).
	MaxPayload int32
	Log        *slog.Logger
}

// Start starts the embedded server, or connects to the external one. With
// an external NATS that cannot be reached yet, it returns an engine that
// keeps reconnecting in the background (Connected says false): a
// temporary outage must not stop sequoia.
func Start(o Options) (*Engine, error) {
	e := &Engine{cfg: o.Config, replica: o.Replica, log: o.Log, since: time.Now(), ops: newOpsCounter()}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.replica == "" {
		e.replica = newReplicaName()
	}
	opts := []nats.Option{
		nats.Name("sequoia/" + e.cfg.Name + "/" + e.replica),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { e.setConnected(false, err) }),
		nats.ReconnectHandler(func(*nats.Conn) { e.setConnected(true, nil) }),
		nats.ConnectHandler(func(*nats.Conn) { e.setConnected(true, nil) }),
		nats.ClosedHandler(func(*nats.Conn) { e.setConnected(false, nil) }),
	}
	var urls string
	if e.cfg.NatsURL == "" {
		if err := e.startEmbedded(o.StoreMax, o.MaxPayload); err != nil {
			return nil, err
		}
		urls = e.srv.ClientURL()
		opts = append(opts, nats.InProcessServer(e.srv))
	} else {
		urls = e.cfg.NatsURL
		opts = append(opts, nats.RetryOnFailedConnect(true))
		if e.cfg.NatsCreds != "" {
			opts = append(opts, nats.UserCredentials(e.cfg.NatsCreds))
		}
		if e.cfg.NatsCA != "" {
			opts = append(opts, nats.RootCAs(e.cfg.NatsCA))
		}
		if e.cfg.NatsCert != "" {
			opts = append(opts, nats.ClientCert(e.cfg.NatsCert, e.cfg.NatsKey))
		}
	}
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		e.stopEmbedded()
		return nil, fmt.Errorf("cluster: connect to NATS %s: %w", Redact(urls), err)
	}
	e.nc = nc
	if nc.IsConnected() {
		e.setConnected(true, nil)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		e.stopEmbedded()
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	e.js = js
	return e, nil
}

// startEmbedded starts the in-process server with JetStream on a file
// store under the state directory, which it locks against a second
// sequoia.
func (e *Engine) startEmbedded(storeMax int64, maxPayload int32) error {
	dir := e.cfg.StateDirectory()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("SEQUOIA_STATE_DIR=%s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return fmt.Errorf("SEQUOIA_STATE_DIR=%s: %w", dir, err)
	}
	if maxPayload <= 0 {
		maxPayload = 8 << 20
	}
	opts := &server.Options{
		ServerName:        "sequoia-" + e.cfg.Name,
		DontListen:        true,
		JetStream:         true,
		StoreDir:          dir,
		JetStreamMaxStore: storeMax,
		MaxPayload:        maxPayload,
		NoSigs:            true,
		NoLog:             true,
	}
	// Every write reaches the files before it is acknowledged; fsync runs
	// every interval, or on every write (SEQUOIA_STATE_SYNC=always).
	always, every, err := e.cfg.SyncPolicy()
	if err != nil {
		lock.release()
		return fmt.Errorf("SEQUOIA_STATE_SYNC=%s: %w", e.cfg.StateSync, err)
	}
	opts.SyncAlways, opts.SyncInterval = always, every
	srv, err := server.NewServer(opts)
	if err != nil {
		lock.release()
		return fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		lock.release()
		return errors.New("cluster: the embedded NATS server did not start within 30s")
	}
	e.srv, e.lock = srv, lock
	return nil
}

func (e *Engine) stopEmbedded() {
	if e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.lock.release()
}

// setConnected records a change of the connection's state and tells the
// watchers; err is why it went down, if known.
func (e *Engine) setConnected(up bool, err error) {
	e.mu.Lock()
	if e.closed || e.connected.Load() == up && err == nil {
		e.mu.Unlock()
		return
	}
	changed := e.connected.Swap(up) != up
	if changed {
		e.since = time.Now()
	}
	if err != nil {
		e.lastErr = err
	}
	watchers := e.watchers
	e.mu.Unlock()
	if !changed {
		return
	}
	if up {
		e.log.Info("NATS connected", "url", Redact(e.url()))
	} else {
		e.log.Warn("NATS connection lost", "url", Redact(e.url()), "err", err)
	}
	for _, w := range watchers {
		w(up)
	}
}

// Watch calls fn (from NATS's goroutine: it must not block) each time the
// connection goes up or down.
func (e *Engine) Watch(fn func(up bool)) {
	e.mu.Lock()
	e.watchers = append(e.watchers, fn)
	e.mu.Unlock()
}

// Conn is the NATS connection.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// JetStream is the JetStream context on Conn.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// StateDir is the embedded server's directory (SEQUOIA_STATE_DIR, locked
// by this process); "" with an external NATS.
func (e *Engine) StateDir() string {
	if e.srv == nil {
		return ""
	}
	return e.cfg.StateDirectory()
}

// Embedded says whether the server runs in this process.
func (e *Engine) Embedded() bool { return e.srv != nil }

// Connected says whether the connection is up now. Cost: one atomic load.
func (e *Engine) Connected() bool { return e.connected.Load() }

// Replica is this process's name in the cluster.
func (e *Engine) Replica() string { return e.replica }

// ClusterName is SEQUOIA_CLUSTER.
func (e *Engine) ClusterName() string { return e.cfg.Name }

// Name returns the name of the stream or bucket what stands for, in this
// cluster's namespace: several deployments may share one NATS.
func (e *Engine) Name(what string) string { return "sequoia_" + e.cfg.Name + "_" + what }

// Subject returns a subject under this cluster's namespace.
func (e *Engine) Subject(parts ...string) string {
	return "sequoia." + e.cfg.Name + "." + strings.Join(parts, ".")
}

func (e *Engine) url() string {
	if e.srv != nil {
		return "embedded"
	}
	return e.cfg.NatsURL
}

// Status is what /sequoia/v1/status shows of the engine.
type Status struct {
	Mode      string    `json:"mode"` // embedded or external
	URL       string    `json:"url,omitempty"`
	StateDir  string    `json:"state_dir,omitempty"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
	LastError string    `json:"last_error,omitempty"`
	Cluster   string    `json:"cluster"`
	Replica   string    `json:"replica"`
}

// Status returns the engine's state now.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Connected: e.connected.Load(), Since: e.since, Cluster: e.cfg.Name, Replica: e.replica}
	if e.srv != nil {
		st.Mode, st.StateDir = "embedded", e.cfg.StateDirectory()
	} else {
		st.Mode, st.URL = "external", Redact(e.cfg.NatsURL)
	}
	if e.lastErr != nil {
		st.LastError = e.lastErr.Error()
	}
	return st
}

// Close flushes and closes the connection, then stops the embedded server.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	var err error
	if e.nc.IsConnected() {
		err = e.nc.FlushTimeout(2 * time.Second)
	}
	e.nc.Close()
	e.stopEmbedded()
	return err
}

// Redact hides the passwords and tokens in a list of NATS URLs.
func Redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		u.User = url.User("xxxxx")
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

func newReplicaName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "sequoia"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
