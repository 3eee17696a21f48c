package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/policy"
)

const policyUsage = `usage:
  sequoia policy check DIR                      compile and validate DIR's .rego files, run their tests
  sequoia policy eval --input FILE [--dir DIR] [--timeout 1s]
                                                print the decision for an input document (DIR: the shipped defaults when absent)

'sequoia policy check --help' and 'sequoia policy eval --help' describe each (docs/policies.md).
`

const policyCheckUsage = `usage: sequoia policy check DIR

Compiles DIR's .rego files as 'sequoia serve' would load them, validates
the decision they make against its schema, and runs their Rego tests
(*_test.rego). Each problem is printed as DIR/file:line: message. Exits 1
when there is any problem.
`

const policyEvalUsage = `usage: sequoia policy eval --input FILE [--dir DIR] [--timeout 1s]

Prints the decision the policies make for one input document: the JSON a
policy sees as input, snapshot included (the fields of 'input' in
docs/policies.md). FILE - reads standard input.
`

// runPolicy is `sequoia policy`: checking and trying out policies without
// a running proxy.
func runPolicy(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return cli.Usagef("policy", "no subcommand given: check or eval")
	}
	switch args[0] {
	case "check":
		return runPolicyCheck(ctx, args[1:], stdout)
	case "eval":
		return runPolicyEval(ctx, args[1:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	return cli.Usagef("policy", "unknown subcommand %q: check or eval", args[0])
}

// runPolicyCheck compiles DIR as `sequoia serve` would load it, validates
// the decision and runs the Rego tests. Problems are printed one per line
// as DIR/file:line: message, and make the command fail.
func runPolicyCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	if help, err := cli.Parse(fs, policyCheckUsage, args, stdout); help || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.Usagef("policy check", "want exactly one directory")
	}
	dir := fs.Arg(0)
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("policy check: %w", pathError(err))
	} else if !st.IsDir() {
		return fmt.Errorf("policy check: %s: not a directory", dir)
	}
	files, err := policy.ReadFiles(os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("policy check: %s: %w", dir, err)
	}
	tests, err := policy.Check(ctx, files, nil)
	var perr *policy.Error
	if errors.As(err, &perr) {
		for _, p := range perr.Problems {
			if p.File != "" {
				p.File = filepath.Join(dir, p.File)
			}
			fmt.Fprintln(stdout, p)
		}
		return fmt.Errorf("policy check: %s: %d problem(s)", dir, len(perr.Problems))
	}
	if err != nil {
		return fmt.Errorf("policy check: %w", err)
	}
	e, err := policy.New(ctx, policy.Options{Dir: dir, CacheSize: -1, Timeout: time.Minute})
	if err != nil {
		return fmt.Errorf("policy check: %w", err)
	}
	fmt.Fprintf(stdout, "ok: %d files, %d tests passed, version %s\n", len(files), tests, e.Version())
	return nil
}

// runPolicyEval prints the decision for one input document (the JSON a
// policy sees as input, snapshot included).
func runPolicyEval(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	input := fs.String("input", "", "the input document (JSON); - for stdin")
	dir := fs.String("dir", "", "the policy directory; the shipped defaults when empty")
	timeout := fs.Duration("timeout", time.Second, "bound on the evaluation")
	if help, err := cli.Parse(fs, policyEvalUsage, args, stdout); help || err != nil {
		return err
	}
	if *input == "" || fs.NArg() > 0 {
		return cli.Usagef("policy eval", "want --input FILE and no other arguments")
	}
	var data []byte
	var err error
	if *input == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*input)
	}
	if err != nil {
		return fmt.Errorf("policy eval: %w", pathError(err))
	}
	in, snap, err := policy.ParseDocument(data)
	if err != nil {
		return fmt.Errorf("policy eval: %s: %w", *input, err)
	}
	e, err := policy.New(ctx, policy.Options{
		Dir: *dir, CacheSize: -1, Timeout: *timeout,
		Snapshot: func() policy.Snapshot { return snap },
	})
	if err != nil {
		return fmt.Errorf("policy eval: %w", err)
	}
	d, err := e.Decide(ctx, &in)
	if err != nil {
		return fmt.Errorf("policy eval: %w", err)
	}
	out, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// pathError is a file system error as one line that names the path once:
// os.PathError's own message is "open PATH: no such file or directory",
// which names the operation, not what the user gave.
func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
