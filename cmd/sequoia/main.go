// Command sequoia is a QoS admission-control proxy for FaaS platforms.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sequoia-qos/sequoia/loadtest/bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sequoia:", err)
		os.Exit(1)
	}
}

const usage = `usage: sequoia <command> [flags]

commands:
  serve     the proxy, configured by SEQUOIA_* environment variables
  emulate   a FaaS platform emulator on loopback
  demo      burst function chains at an emulator directly and through sequoia, print the comparison
  policy    check a policy directory, or print the decision for an input document
  bench     chains: the chain-burst benchmark against direct, HAProxy and sequoia (table or --json)
            coldstart: cold starts in a burst without and with the warm pool, and a steady run
            dags: DAG orchestration overhead and a burst of runs
            cluster: replicas sharing one budget against one replica, a SIGKILL, a NATS outage
`

func run(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:])
	case "emulate":
		return runEmulate(ctx, args[1:], os.Stdout)
	case "demo":
		return bench.Demo(ctx, args[1:], os.Stdout)
	case "policy":
		return runPolicy(ctx, args[1:], os.Stdout)
	case "bench":
		return bench.Run(ctx, args[1:], os.Stdout)
	case "help", "-h", "--help":
		fmt.Fprint(os.Stdout, usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
