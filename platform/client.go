package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
)

// Errors Invoke returns when the platform gave no answer. Each says what
// became of the request, because that decides whether it may be sent
// again: ErrUnreachable was never sent (no connection could be made);
// ErrSendFailed was not sent in full (the platform closed the connection
// while the request was being written: it may have refused the upload);
// ErrClosed was sent, and the platform closed the connection before its
// answer was complete (the function may have run); ErrTimeout got no
// answer in time; ErrAborted was cut at shutdown (Abort).
var (
	ErrTimeout     = errors.New("platform: platform did not answer in time")
	ErrUnreachable = errors.New("platform: platform unreachable")
	ErrSendFailed  = errors.New("platform: the platform closed the connection while the request was being sent")
	ErrClosed      = errors.New("platform: the platform closed the connection before its answer was complete")
	ErrAborted     = errors.New("platform: call abandoned at shutdown")
)

// Config configures a Client.
type Config struct {
	URL      string              // base URL of the platform
	Kind     invocation.Platform // the platform's API
	Timeout  time.Duration       // one invocation, connection included
	MaxConns int                 // connections to the platform
	// Signer re-signs every request (Lambda); nil sends them as they are.
	Signer *Signer
	// Authorization, when set, replaces every request's Authorization
	// header: sequoia's own credentials (an overflow OpenWhisk's API key).
	Authorization string
	// Dial opens a connection to the platform's address; nil dials TCP
	// (fasthttp.Dial). Every connection goes to the address of URL,
	// whatever a request says.
	Dial fasthttp.DialFunc
}

// Client forwards invocations to one platform.
type Client struct {
	hc *fasthttp.HostClient
	// host is what the Host header becomes. Knative and other http
	// backends route by the client's Host, so it is kept for them.
	host    string
	setHost bool
	signer  *Signer
	auth    []byte // replaces the client's Authorization; nil keeps it
	conns   conns  // open connections, for Abort (abort.go)
}

// New returns a Client for cfg.URL.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("platform: bad backend URL %q", cfg.URL)
	}
	addr := u.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		if u.Scheme == "https" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		} else {
			addr = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	c := &Client{host: u.Host, setHost: cfg.Kind != invocation.HTTP, signer: cfg.Signer}
	c.conns.dial = cfg.Dial
	if c.conns.dial == nil {
		c.conns.dial = fasthttp.Dial
	}
	hc := &fasthttp.HostClient{
		Addr: addr,
		// No Name and no default User-Agent: a request the client sent
		// without one reaches the platform without one.
		Dial:                          c.conns.open,
		IsTLS:                         u.Scheme == "https",
		MaxConns:                      cfg.MaxConns,
		MaxConnWaitTimeout:            cfg.Timeout,
		ReadTimeout:                   cfg.Timeout,
		WriteTimeout:                  cfg.Timeout,
		MaxIdleConnDuration:           30 * time.Second,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
		// The first attempt is the only one: retrying is qos's decision.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
	}
	if hc.IsTLS {
		hc.TLSConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	c.hc = hc
	if cfg.Authorization != "" {
		c.auth = []byte(cfg.Authorization)
	}
	return c, nil
}

// Invoke sends inv.Req to the platform and reads the answer into inv.Resp.
// The caller has already checked the request target; Invoke makes the
// request fit to forward and the answer fit to return.
func (c *Client) Invoke(inv *invocation.Invocation) error {
	req, resp := inv.Req, inv.Resp
	clientClose := req.Header.ConnectionClose()
	if inv.Attempt == 0 {
		PrepareRequest(&req.Header)
	}
	if c.setHost {
		// Every time: a request that overflows to a second platform
		// was prepared for the first.
		req.Header.SetHost(c.host)
		req.URI().SetHost(c.host)
	}
	if c.auth != nil {
		req.Header.SetBytesV(fasthttp.HeaderAuthorization, c.auth)
	}
	if c.signer != nil {
		// Signed again on every attempt: the signature carries the time.
		if err := c.signer.Sign(context.Background(), req); err != nil {
			resp.Reset()
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
	}
	err := c.hc.Do(req, resp)
	if clientClose {
		// The client asked to close its connection: the server reads
		// this flag after the handler, so give it back.
		req.Header.SetConnectionClose()
	}
	if err != nil {
		resp.Reset()
		return c.failure(err)
	}
	PrepareResponse(&resp.Header)
	return nil
}

// failure names what became of a request fasthttp could not complete: a
// failed dial never sent it, a failed write did not send it in full (the
// platform closed the connection early, as one that refuses an upload
// does), anything else happened after it was sent.
func (c *Client) failure(err error) error {
	var op *net.OpError
	switch {
	case c.conns.aborted.Load():
		return fmt.Errorf("%w: %v", ErrAborted, err)
	case errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, errAborting):
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	case errors.As(err, &op) && op.Op == "write":
		return fmt.Errorf("%w: %v", ErrSendFailed, err)
	}
	return fmt.Errorf("%w: %v", ErrClosed, err)
}

// Forward sends a request that is not an invocation (the platform's other
// API calls) the same way.
func (c *Client) Forward(req *fasthttp.Request, resp *fasthttp.Response) error {
	var inv invocation.Invocation
	inv.Req, inv.Resp = req, resp
	return c.Invoke(&inv)
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Abort cuts every call in progress and refuses new ones: their Invoke
// returns ErrAborted. It is for shutdown, once the time given to calls in
// flight has run out. It returns how many connections it closed.
func (c *Client) Abort() int { return c.conns.abort() }
