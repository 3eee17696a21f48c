// Command sequoia is a QoS admission-control proxy for FaaS platforms.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/loadtest/bench"
	"github.com/sequoia-qos/sequoia/serve"
)

// main exits 0 on success, 2 on a usage error, 3 when serve shut down
// with work abandoned (SEQUOIA_SHUTDOWN_TIMEOUT ran out), 1 on any other
// error.
func main() {
	os.Exit(exitCode(run(os.Args[1:], os.Stdout), os.Stderr))
}

const usage = `usage: sequoia <command> [flags]

commands:
  serve     the proxy, configured by SEQUOIA_* environment variables (serve --help lists them)
  config    print the configuration serve would run with here, or what is wrong with it
  emulate   a FaaS platform emulator on loopback
  demo      burst function chains at an emulator directly and through sequoia, print the comparison
  policy    check a policy directory, or print the decision for an input document
  bench     chains: the chain-burst benchmark against direct, HAProxy and sequoia (table or --json)
            coldstart: cold starts in a burst without and with the warm pool, and a steady run
            dags: DAG orchestration overhead and a burst of runs
            events: durable Lambda Events: acceptance cost, SIGKILLs during delivery, an async DAG run killed mid-run
            cluster: replicas sharing one budget against one replica, a SIGKILL, a NATS outage
  version   the build: module version, Go version, VCS revision

'sequoia <command> --help' describes a command and its flags.
`

func run(args []string, stdout io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		return errUsage{errors.New("no command given (sequoia --help lists them)")}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout)
	case "config":
		return runConfig(args[1:], stdout)
	case "emulate":
		return runEmulate(ctx, args[1:], stdout)
	case "demo":
		return bench.Demo(ctx, args[1:], stdout)
	case "policy":
		return runPolicy(ctx, args[1:], stdout)
	case "bench":
		return bench.Run(ctx, args[1:], stdout)
	case "version":
		return runVersion(args[1:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return errUsage{fmt.Errorf("unknown command %q (sequoia --help lists them)", args[0])}
}

// exitCode prints err, if any, and returns the process's exit status: 0
// without an error, 2 for a usage error, 1 otherwise. An error is one line;
// a configuration's problems are one line each.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	lines := []string{err.Error()}
	if isConfigError(err) {
		lines = strings.Split(err.Error(), "\n")
	}
	for _, l := range lines {
		fmt.Fprintln(stderr, "sequoia: "+strings.ReplaceAll(l, "\n", "; "))
	}
	var eu errUsage
	if cli.IsUsage(err) || errors.As(err, &eu) {
		return 2
	}
	return serve.ExitCode(err)
}

// errUsage is a command line the binary itself cannot make sense of.
type errUsage struct{ error }
