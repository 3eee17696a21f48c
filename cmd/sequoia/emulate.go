package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

const emulateUsage = `usage: sequoia emulate [flags]

A FaaS platform emulator (OpenWhisk, Lambda and Knative/HTTP API shapes at
once) on loopback, for demos, tests and load tests: an account-wide
concurrency limit answered with the platform's own throttle, warm
instances with a keep-alive, cold starts, and counters at /emulator/stats
(docs/emulator.md).
`

// runEmulate serves a FaaS platform emulator until ctx is cancelled.
func runEmulate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	def := emulator.DefaultConfig()
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve on")
	limit := fs.Int("limit", def.Limit, "account-wide concurrency limit")
	exec := fs.Duration("exec", def.ExecTime, "execution time of each invocation (a payload's exec_ms overrides it)")
	coldStart := fs.Duration("cold-start", def.ColdStart, "cold start paid by each new instance")
	keepAlive := fs.Duration("keepalive", def.KeepAlive, "how long an idle instance stays warm")
	rate := fs.Int("rate-per-minute", 0, "per-namespace OpenWhisk invocations per minute (0 = no limit)")
	failWarmups := fs.Bool("fail-warmups", false, "make warm-up invocations fail")
	modeName := fs.String("mode", "account", "how a call over --limit is answered: account (the platform's throttle), refuse (429, as OpenFaaS's of-watchdog with max_inflight), queue (wait in a queue of --queue, then 503, as Knative's queue-proxy), serial (one at a time, 400 beyond, as the Lambda Runtime Interface Emulator)")
	queue := fs.Int("queue", 0, "with --mode queue: how many calls may wait for a slot (0 = 10 x --limit)")
	if help, err := cli.Parse(fs, emulateUsage, args, stdout); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("emulate", "unexpected argument %q", fs.Arg(0))
	case *limit < 1:
		return cli.Usagef("emulate", "--limit must be at least 1, got %d", *limit)
	case *exec < 0:
		return cli.Usagef("emulate", "--exec must not be negative, got %v", *exec)
	case *coldStart < 0:
		return cli.Usagef("emulate", "--cold-start must not be negative, got %v", *coldStart)
	case *keepAlive <= 0:
		return cli.Usagef("emulate", "--keepalive must be positive, got %v", *keepAlive)
	case *rate < 0:
		return cli.Usagef("emulate", "--rate-per-minute must not be negative, got %d", *rate)
	case *queue < 0:
		return cli.Usagef("emulate", "--queue must not be negative, got %d", *queue)
	}
	mode, err := emulator.ParseMode(*modeName)
	if err != nil {
		return cli.Usagef("emulate", "--mode: %v", err)
	}

	log := slog.Default().With("component", "emulator")
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("emulate: --listen %s: %w", *listen, err)
	}
	e := emulator.New(emulator.Config{
		Limit:         *limit,
		ExecTime:      *exec,
		ColdStart:     *coldStart,
		KeepAlive:     *keepAlive,
		RatePerMinute: *rate,
		FailWarmups:   *failWarmups,
		Mode:          mode,
		Queue:         *queue,
		Logger:        log,
	})
	fmt.Fprintf(stdout, "sequoia emulate: listening on http://%s (mode %s, limit %d, exec %v, cold start %v, keep-alive %v, rate/min/namespace %d)\n",
		ln.Addr(), mode, e.Config().Limit, *exec, *coldStart, *keepAlive, *rate)

	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-served:
		// Serve only returns early on a listener failure.
		_ = e.Shutdown()
		if err != nil {
			return fmt.Errorf("emulate: %w", err)
		}
		return nil
	}
	log.Info("shutting down")
	start := time.Now()
	if err := e.Shutdown(); err != nil {
		return fmt.Errorf("emulate: shutdown: %w", err)
	}
	if err := <-served; err != nil {
		return fmt.Errorf("emulate: %w", err)
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}
