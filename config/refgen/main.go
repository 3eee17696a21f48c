// Command refgen writes config/reference_gen.go and docs/configuration.md
// from the configuration structs' doc comments and tags. Run it with
// `go generate ./config`.
package main

import (
	"fmt"
	"os"

	"github.com/sequoia-qos/sequoia/config/internal/refgen"
)

func main() {
	files, err := refgen.Generate(".")
	if err == nil {
		err = refgen.Write(".", files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
