//go:build !linux

package proxy

import (
	"net"
	"time"
)

// connWatch is a no-op where sockets cannot be peeked at: queued clients
// that leave are noticed only when their wait ends.
type connWatch struct{}

func (w *connWatch) start(net.Conn) <-chan struct{} { return nil }
func (w *connWatch) stop()                          {}

// connGone cannot tell here: a client is taken to be there.
func connGone(net.Conn) bool { return false }

// receivedAt cannot tell here.
func receivedAt(net.Conn, time.Time) (received, sent time.Time) {
	return time.Time{}, time.Time{}
}
