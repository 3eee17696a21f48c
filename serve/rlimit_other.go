//go:build !unix

package serve

// raiseNoFile has no limit to raise here; 0 means unknown.
func raiseNoFile() (uint64, error) { return 0, nil }
