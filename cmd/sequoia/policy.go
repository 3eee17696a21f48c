package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sequoia-qos/sequoia/policy"
)

const policyUsage = `usage:
  sequoia policy check DIR                      compile and validate DIR's .rego files, run their tests
  sequoia policy eval --input FILE [--dir DIR] [--timeout 1s]
                                                print the decision for an input document (DIR: the shipped defaults when absent)
`

// runPolicy is `sequoia policy`: checking and trying out policies without
// a running proxy.
func runPolicy(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, policyUsage)
		return errors.New("policy: no subcommand given")
	}
	switch args[0] {
	case "check":
		return runPolicyCheck(ctx, args[1:], stdout)
	case "eval":
		return runPolicyEval(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, policyUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, policyUsage)
	return fmt.Errorf("policy: unknown subcommand %q", args[0])
}

// runPolicyCheck compiles DIR as `sequoia serve` would load it, validates
// the decision and runs the Rego tests. Problems are printed one per line
// as DIR/file:line: message, and make the command fail.
func runPolicyCheck(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("policy check: want exactly one directory")
	}
	dir := args[0]
	files, err := policy.ReadFiles(os.DirFS(dir))
	if err != nil {
		return fmt.Errorf("policy check: %w", err)
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
	fs.SetOutput(io.Discard)
	input := fs.String("input", "", "the input document (JSON); - for stdin")
	dir := fs.String("dir", "", "the policy directory; the shipped defaults when empty")
	timeout := fs.Duration("timeout", time.Second, "bound on the evaluation")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("policy eval: %w", err)
	}
	if *input == "" || fs.NArg() > 0 {
		return errors.New("policy eval: want --input FILE and no other arguments")
	}
	var data []byte
	var err error
	if *input == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*input)
	}
	if err != nil {
		return fmt.Errorf("policy eval: %w", err)
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
