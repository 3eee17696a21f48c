package serve

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/warmpool"
)

// StartLocalPlatform starts an emulated platform on a free loopback port,
// for the demo and the benches (what names them in the error), with its
// logs discarded: their own output is the report.
func StartLocalPlatform(what string, cfg emulator.Config) (*emulator.Emulator, string, error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	emu, addr, err := emulator.Start(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("%s: start emulator: %w", what, err)
	}
	return emu, addr, nil
}

// StartLocal runs `sequoia serve` in-process on free loopback ports in front
// of the OpenWhisk-shaped platform at platformAddr, as the demo and the
// benches do. env is applied over those defaults (later entries win). It
// returns the server and a func that stops it and waits for it to end.
func StartLocal(ctx context.Context, platformAddr string, log *slog.Logger, env ...string) (*Server, func(), error) {
	return StartLocalWith(ctx, platformAddr, log, nil, env...)
}

// StartLocalWith is StartLocal with options for New.
func StartLocalWith(ctx context.Context, platformAddr string, log *slog.Logger, opts []Option, env ...string) (*Server, func(), error) {
	// A state directory of its own, so that a demo or bench runs beside a
	// sequoia serve of the same user; removed when it stops.
	state, err := os.MkdirTemp("", "sequoia-local-")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := config.LoadFrom(append([]string{
		"SEQUOIA_STATE_DIR=" + state,
		"SEQUOIA_LISTEN=127.0.0.1:0",
		"SEQUOIA_ADMIN_LISTEN=127.0.0.1:0",
		"SEQUOIA_BACKEND=openwhisk",
		"SEQUOIA_BACKEND_URL=http://" + platformAddr,
		"SEQUOIA_QUEUE_TIMEOUT=5m",
	}, env...))
	if err != nil {
		os.RemoveAll(state)
		return nil, nil, err
	}
	srv, err := New(cfg, log, opts...)
	if err != nil {
		os.RemoveAll(state)
		return nil, nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	return srv, func() { stop(); srv.localErr = <-done; os.RemoveAll(state) }, nil
}

// LocalError is what Run returned for a server StartLocal started, once
// its stop func has returned: nil, or an *AbandonedError when the
// shutdown gave up work (the exit status sequoia serve would have had is
// ExitCode of it).
func (s *Server) LocalError() error { return s.localErr }

// DataAddr is the data port's address.
func (s *Server) DataAddr() string { return s.dataLn.Addr().String() }

// AdminAddr is the admin port's address.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// SetBudget changes SEQUOIA_MAX_CONCURRENCY while serving, for benches
// that shrink the platform under a running server: the lease (alone, the
// whole budget) follows before it returns.
func (s *Server) SetBudget(n int) { s.cl.leases.SetBudget(n) }

// Scheduler is the server's worker pool and admission.
func (s *Server) Scheduler() *qos.Scheduler { return s.sched }

// Metrics is the server's metrics, as the admin port's /metrics serves them.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// WarmPool is the server's warm pool; nil when SEQUOIA_PREWARM is off.
func (s *Server) WarmPool() *warmpool.Pool { return s.warm }

// Config is the configuration the server runs with.
func (s *Server) Config() config.Config { return s.cfg }

// StatusListLimit bounds each list /sequoia/v1/status shows.
const StatusListLimit = statusListLimit

// Close releases what New opened, for a server that was built but never
// run: its listeners, the event store and the NATS engine. Run releases
// them itself.
func (s *Server) Close() {
	s.dataLn.Close()
	s.adminLn.Close()
	s.closeDurable()
	if s.sloNotify != nil {
		s.sloNotify.Close()
	}
}
