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
	"strings"
	"time"

	"github.com/sequoia-qos/sequoia/internal/cli"
	"github.com/sequoia-qos/sequoia/policies"
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
(*_test.rego). Each problem is printed as DIR/file:line: message: a bad
decision field at the contribution that set it, a failing test at its
failing expression, followed by the input it gave, the value it expected
and the value it got, and whether it is a shipped test that checks the
shipped policies alone. Exits 1 when there is any problem.
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
		explainShippedTests(ctx, files, perr.Problems)
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

// explainShippedTests says which failing tests are shipped tests that
// check the shipped policies alone: a test of decision.rego's merge (or of
// one policy through the whole decision) expects exactly what the shipped
// files contribute, so a file added beside them fails it without anything
// being wrong. Such a test is one whose file is the shipped one unchanged
// and that passes with the directory's shipped files alone.
func explainShippedTests(ctx context.Context, files []policy.File, problems []policy.Problem) {
	shipped := map[string][]byte{}
	entries, err := fs.ReadDir(policies.FS, ".")
	if err != nil {
		return
	}
	for _, e := range entries {
		if b, err := fs.ReadFile(policies.FS, e.Name()); err == nil {
			shipped[e.Name()] = b
		}
	}
	var alone []policy.File
	var added []string
	for _, f := range files {
		if _, ok := shipped[f.Name]; ok {
			alone = append(alone, f)
		} else if !f.IsTest() {
			added = append(added, f.Name)
		}
	}
	if len(added) == 0 {
		return
	}
	failsAlone := map[string]bool{}
	if _, err := policy.Check(ctx, alone, nil); err != nil {
		var perr *policy.Error
		if !errors.As(err, &perr) {
			return // the shipped files do not even load alone: nothing to say
		}
		for _, p := range perr.Problems {
			if p.Test == "" {
				return
			}
			failsAlone[p.Test] = true
		}
	}
	for i, p := range problems {
		if p.Test == "" || failsAlone[p.Test] || !sameAsShipped(files, shipped, p.File) {
			continue
		}
		problems[i].Details = append(problems[i].Details, fmt.Sprintf(
			"a shipped test of the shipped policies alone: it passes without %s; change it to expect what they contribute, or delete it",
			strings.Join(added, ", ")))
	}
}

// sameAsShipped reports whether the file named name is a shipped file,
// unchanged.
func sameAsShipped(files []policy.File, shipped map[string][]byte, name string) bool {
	for _, f := range files {
		if f.Name == name {
			b, ok := shipped[name]
			return ok && string(b) == string(f.Data)
		}
	}
	return false
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
