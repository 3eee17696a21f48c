// Package natstest starts real NATS servers with JetStream for tests: the
// server of the nats-server module, listening on a loopback port, each
// with its own store directory, which can be stopped and started again on
// the same port to play an outage; StartCluster starts several routed
// into one JetStream cluster (three for replicated buckets), and
// NewCluster does the same for the cluster bench. It ships in a non-test
// file so that every package's tests can use it.
package natstest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is one NATS server a test runs.
type Server struct {
	tb   testing.TB
	dir  string
	port int
	opts func(*server.Options) // a cluster node's name and routes; nil alone
	mu   sync.Mutex
	srv  *server.Server // nil while stopped
}

// Start starts a NATS server with JetStream on a free loopback port, and
// stops it when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{tb: tb, dir: tb.TempDir(), port: server.RANDOM_PORT}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func (s *Server) start() error {
	if err := s.startAsync(); err != nil {
		return err
	}
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if !srv.ReadyForConnections(30 * time.Second) {
		s.Stop()
		return fmt.Errorf("natstest: the server did not start within 30s")
	}
	_, port, _ := net.SplitHostPort(srv.Addr().String())
	s.port, _ = strconv.Atoi(port)
	return nil
}

// startAsync starts the server without waiting for it to take
// connections: the nodes of a cluster wait for one another.
func (s *Server) startAsync() error {
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      s.port,
		JetStream: true,
		StoreDir:  s.dir,
		NoSigs:    true,
		NoLog:     true,
	}
	if s.opts != nil {
		s.opts(o)
	}
	srv, err := server.NewServer(o)
	if err != nil {
		return fmt.Errorf("natstest: %w", err)
	}
	go srv.Start()
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	return nil
}

// URL is the server's client URL; it stays the same across Stop and Restart.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Stop shuts the server down (an outage); its files stay.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts the server again on the same port and files (a node of
// a cluster too: Cluster.Restart waits for the whole cluster).
func (s *Server) Restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatal(err)
	}
}
