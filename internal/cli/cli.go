package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// UsageError is a command line a command cannot make sense of: an unknown
// flag, a bad flag value, a missing or extra argument. The binary exits 2
// for it.
type UsageError struct {
	Command string // e.g. "bench chains"
	Msg     string
}

func (e *UsageError) Error() string {
	return fmt.Sprintf("%s: %s (sequoia %s --help)", e.Command, e.Msg, e.Command)
}

// Usagef returns a UsageError of command.
func Usagef(command, format string, args ...any) error {
	return &UsageError{Command: command, Msg: fmt.Sprintf(format, args...)}
}

// IsUsage reports whether err is a UsageError.
func IsUsage(err error) bool {
	var ue *UsageError
	return errors.As(err, &ue)
}

// IsHelp reports whether args ask for help: -h, -help or --help anywhere
// before a "--", or a first argument "help".
func IsHelp(args []string) bool {
	for i, a := range args {
		switch {
		case a == "--":
			return false
		case a == "-h" || a == "-help" || a == "--help" || i == 0 && a == "help":
			return true
		}
	}
	return false
}

// Parse parses args into fs. When args ask for help it prints usage and
// the flags with their defaults to stdout and returns help true and no
// error; a flag error comes back as a one-line UsageError, with nothing
// printed.
func Parse(fs *flag.FlagSet, usage string, args []string, stdout io.Writer) (help bool, err error) {
	if IsHelp(args) {
		PrintUsage(stdout, fs, usage)
		return true, nil
	}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return false, &UsageError{Command: fs.Name(), Msg: strings.TrimSpace(err.Error())}
	}
	return false, nil
}

// PrintUsage prints usage, then fs's flags with their defaults when it has
// any.
func PrintUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, usage)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprint(w, "\nflags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
