// Package cli owns what sequoia's commands share on the command line:
// parsing flags so that help goes to standard output and succeeds, and a
// usage error that the binary exits 2 for.
//
// Every command parses its flags with Parse:
//
//	fs := flag.NewFlagSet("bench chains", flag.ContinueOnError)
//	n := fs.Int("chains", 1000, "chains started at once")
//	if help, err := cli.Parse(fs, "usage: sequoia bench chains [flags]\n", args, stdout); help || err != nil {
//		return err // nil after printing the help
//	}
package cli
