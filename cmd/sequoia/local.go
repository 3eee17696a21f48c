package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// discardLog is the logger of the in-process platform and sequoia that the
// demo and the benches start: their own output is the report.
var discardLog = slog.New(slog.DiscardHandler)

// startLocalPlatform starts the emulated platform the demo or a bench
// (named by what, for the error) runs against, on a free loopback port.
func startLocalPlatform(what string, cfg emulator.Config) (*emulator.Emulator, string, error) {
	cfg.Logger = discardLog
	emu, addr, err := emulator.Start(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("%s: start emulator: %w", what, err)
	}
	return emu, addr, nil
}

// startLocal runs `sequoia serve` in-process on free loopback ports in front
// of the OpenWhisk-shaped platform at platformAddr, as the demo and the
// benches do. env is applied over those defaults (later entries win). It
// returns the server and a func that stops it and waits for it to end.
func startLocal(ctx context.Context, platformAddr string, log *slog.Logger, env ...string) (*server, func(), error) {
	cfg, err := config.LoadFrom(append([]string{
		"SEQUOIA_LISTEN=127.0.0.1:0",
		"SEQUOIA_ADMIN_LISTEN=127.0.0.1:0",
		"SEQUOIA_BACKEND=openwhisk",
		"SEQUOIA_BACKEND_URL=http://" + platformAddr,
		"SEQUOIA_QUEUE_TIMEOUT=5m",
	}, env...))
	if err != nil {
		return nil, nil, err
	}
	srv, err := newServer(cfg, log)
	if err != nil {
		return nil, nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.run(sctx) }()
	return srv, func() { stop(); <-done }, nil
}

// writeReport prints rep as indented JSON when asJSON, else as print's table.
func writeReport(out io.Writer, asJSON bool, rep any, print func()) error {
	if !asJSON {
		print()
		return nil
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
