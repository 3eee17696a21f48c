//go:build unix

package serve

import (
	"fmt"
	"syscall"
	"testing"
)

// freeAddr returns a loopback address where nothing listens, for a
// platform that is down: a socket bound to the port and never listening
// holds it for the test, so that a connection there is refused every time
// (a port merely found free could be taken meanwhile by another test's
// server, which would then answer for the platform that is down).
func freeAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}
