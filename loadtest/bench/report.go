package bench

import (
	"encoding/json"
	"io"
	"log/slog"
)

// discardLog is the logger of the in-process platform and sequoia that the
// demo and the benches start: their own output is the report.
var discardLog = slog.New(slog.DiscardHandler)

// writeReport prints rep as indented JSON when asJSON, else as print's table.
func writeReport(out io.Writer, asJSON bool, rep any, print func()) error {
	if !asJSON {
		print()
		return nil
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
