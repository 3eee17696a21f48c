//go:build !unix

package serve

import (
	"net"
	"testing"
)

// freeAddr returns a loopback address where nothing listens (a moment
// ago), for a platform that is down.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
