package proxy

import (
	"errors"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// connWatch notices, while an invocation is queued, that its client closed
// the connection. fasthttp's RequestCtx does not signal this, and reading
// the connection would steal a pipelined request, so the watch parks in the
// runtime's network poller until the socket is readable and then peeks:
// zero bytes (EOF) or an error means the client is gone; data means a
// pipelined request, so the client is alive and the watch ends.
type connWatch struct {
	conn net.Conn
	rc   syscall.RawConn
	gone chan struct{}
	done chan struct{}
}

// start begins watching c; it returns nil if c cannot be watched (not a
// socket, as with in-memory listeners).
func (w *connWatch) start(c net.Conn) <-chan struct{} {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	w.conn, w.rc = c, rc
	w.gone, w.done = make(chan struct{}), make(chan struct{})
	go w.run()
	return w.gone
}

func (w *connWatch) run() {
	defer close(w.done)
	var buf [1]byte
	closed := false
	err := w.rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			return false // nothing yet: park until readable
		case err != nil || n == 0:
			closed = true
		}
		return true
	})
	if closed || (err != nil && !errors.Is(err, unix.EAGAIN) && !isTimeout(err)) {
		close(w.gone)
	}
}

// stop ends the watch and restores the connection's read deadline.
func (w *connWatch) stop() {
	if w.conn == nil {
		return
	}
	// A past deadline wakes the parked read; fasthttp sets its own before
	// the next read, so clearing it afterwards is safe.
	_ = w.conn.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.conn.SetReadDeadline(time.Time{})
	*w = connWatch{}
}

// connGone reports, without waiting, whether the client of c has closed
// or reset the connection: a peek that finds end of file or an error.
// Unread data (a pipelined request) or nothing yet means it is still
// there, and so does a connection that cannot be peeked at. One system
// call.
func connGone(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	_ = rc.Control(func(fd uintptr) {
		var buf [1]byte
		n, _, err := unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = err == nil && n == 0 || err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR)
	})
	return gone
}

// receivedAt returns when the kernel last received data on c, which, read
// as a request's handling starts, is when that request reached the host
// (to the kernel's clock tick), measured back from now, and when the host
// last sent on c, which, before the first answer on a connection, is when
// its handshake reached the host (the kernel's reply to it, or a TLS
// handshake's last message): the client had begun to connect then. Zero
// when it cannot tell. One system call. A request that waited in the
// accept queue or in the socket's buffer has been on its client's clock
// all that time, and so has a connection its client was slow to write on.
func receivedAt(c net.Conn, now time.Time) (received, sent time.Time) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return time.Time{}, time.Time{}
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return time.Time{}, time.Time{}
	}
	var ti *unix.TCPInfo
	_ = rc.Control(func(fd uintptr) {
		ti, _ = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	})
	if ti == nil {
		return time.Time{}, time.Time{}
	}
	ago := func(ms uint32) time.Time {
		d := time.Duration(ms) * time.Millisecond
		if d > time.Minute {
			return time.Time{}
		}
		return now.Add(-d)
	}
	return ago(ti.Last_data_recv), ago(ti.Last_data_sent)
}
