package platform

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// errAborting refuses a dial once Abort has been called.
var errAborting = errors.New("platform: sequoia is shutting down")

// conns keeps the client's open connections so that Abort can close them:
// fasthttp's HostClient has no way to cut a call in progress, but a call
// whose connection closes returns at once. Dialling is rare (connections
// are kept alive), so the set costs a lock per connection, not per call.
type conns struct {
	dial    func(addr string) (net.Conn, error)
	aborted atomic.Bool
	mu      sync.Mutex
	set     map[*trackedConn]struct{} // REQUIRES: mu
}

func (s *conns) open(addr string) (net.Conn, error) {
	if s.aborted.Load() {
		return nil, errAborting
	}
	c, err := s.dial(addr)
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, set: s}
	s.mu.Lock()
	if s.aborted.Load() {
		s.mu.Unlock()
		_ = c.Close()
		return nil, errAborting
	}
	if s.set == nil {
		s.set = map[*trackedConn]struct{}{}
	}
	s.set[tc] = struct{}{}
	s.mu.Unlock()
	return tc, nil
}

func (s *conns) abort() int {
	s.mu.Lock()
	s.aborted.Store(true)
	open := s.set
	s.set = nil
	s.mu.Unlock()
	for c := range open {
		_ = c.Conn.Close()
	}
	return len(open)
}

// trackedConn leaves the set when it closes.
type trackedConn struct {
	net.Conn
	set  *conns
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.set, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}
