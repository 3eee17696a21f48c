package main

import (
	"fmt"
	"io"
	"runtime/debug"

	"github.com/sequoia-qos/sequoia/internal/cli"
)

const versionUsage = `usage: sequoia version

Prints the build: the module's version, the Go version, the target, and
the VCS revision, its time and whether the tree had local changes.
`

// runVersion is `sequoia version`: the build information the Go toolchain
// embeds in the binary.
func runVersion(args []string, stdout io.Writer) error {
	if cli.IsHelp(args) {
		fmt.Fprint(stdout, versionUsage)
		return nil
	}
	if len(args) > 0 {
		return cli.Usagef("version", "takes no arguments")
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fmt.Errorf("version: the binary carries no build information")
	}
	_, err := io.WriteString(stdout, versionText(info))
	return err
}

func versionText(info *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	version := info.Main.Version
	if version == "" {
		version = "(unknown)"
	}
	out := fmt.Sprintf("sequoia %s\n  module   %s\n  go       %s\n  target   %s/%s\n", version, info.Main.Path, info.GoVersion,
		settings["GOOS"], settings["GOARCH"])
	if rev := settings["vcs.revision"]; rev != "" {
		modified := ""
		if settings["vcs.modified"] == "true" {
			modified = " (with local changes)"
		}
		out += fmt.Sprintf("  revision %s%s\n  time     %s\n", rev, modified, settings["vcs.time"])
	}
	return out
}
