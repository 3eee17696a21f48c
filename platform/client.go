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

// Errors Invoke returns when the platform gave no answer.
var (
	ErrTimeout     = errors.New("platform: platform did not answer in time")
	ErrUnreachable = errors.New("platform: platform unreachable")
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
	hc := &fasthttp.HostClient{
		Addr:                          addr,
		Name:                          "sequoia",
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
	c := &Client{hc: hc, host: u.Host, setHost: cfg.Kind != invocation.HTTP, signer: cfg.Signer}
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
		if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) {
			return fmt.Errorf("%w: %v", ErrTimeout, err)
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	PrepareResponse(&resp.Header)
	return nil
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
