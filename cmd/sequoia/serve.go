package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/serve"
)

const serveUsage = `usage: sequoia serve

The proxy. It takes no arguments: it is configured by the SEQUOIA_*
environment variables below (docs/configuration.md). An unknown SEQUOIA_*
variable or a bad value stops start-up, naming it; 'sequoia config' prints
the configuration an environment gives without starting.

`

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	if cli.IsHelp(args) {
		fmt.Fprint(stdout, serveUsage)
		return config.WriteReference(stdout)
	}
	if len(args) > 0 {
		return cli.Usagef("serve", "takes no arguments: it is configured by SEQUOIA_* variables")
	}
	cfg, err := config.Load()
	if err != nil {
		return configError{err}
	}
	s, err := serve.New(cfg, serve.NewLogger(cfg.Serving, os.Stderr))
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

const configUsage = `usage: sequoia config

Prints the configuration 'sequoia serve' would run with in this
environment: every SEQUOIA_* variable with its value, meaning and default,
as KEY=value lines a shell can read back. Secrets and URL passwords are
hidden. Exits 1, listing each problem, when the configuration is not valid
(an unknown variable, a bad value), as 'sequoia serve' would refuse it.
`

// runConfig is `sequoia config`: the effective configuration, or the
// problems that would stop `sequoia serve`.
func runConfig(args []string, stdout io.Writer) error {
	if cli.IsHelp(args) {
		fmt.Fprint(stdout, configUsage)
		return nil
	}
	if len(args) > 0 {
		return cli.Usagef("config", "takes no arguments")
	}
	environ := os.Environ()
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		return configError{err}
	}
	return config.WriteSettings(stdout, config.Settings(cfg, environ))
}

// configError is a configuration that is not valid: one line per problem.
type configError struct{ err error }

func (e configError) Error() string { return "configuration: " + e.err.Error() }
func (e configError) Unwrap() error { return e.err }

var _ error = configError{}

// isConfigError reports whether err is a configuration's problems.
func isConfigError(err error) bool {
	var ce configError
	return errors.As(err, &ce)
}
