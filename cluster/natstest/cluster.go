package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a NATS cluster of JetStream servers a test runs, each on its
// own loopback client and route ports, routed to one another.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server
}

// StartCluster starts n routed JetStream servers (a JetStream cluster of
// n nodes: R3 buckets and streams need 3) and stops them when the test
// ends. It returns once JetStream has a meta leader.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	c, err := NewCluster(tb.TempDir(), n)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range c.Nodes {
		s.tb = tb
	}
	c.tb = tb
	tb.Cleanup(c.Stop)
	return c
}

// NewCluster starts n routed JetStream servers with their files under dir,
// for callers that are not tests (the cluster bench). Stop stops them.
func NewCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("natstest: a cluster needs at least one node")
	}
	c := &Cluster{}
	clientPorts, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routePorts, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	var routes []*url.URL
	for _, p := range routePorts {
		routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
	}
	for i := range n {
		s := &Server{dir: fmt.Sprintf("%s/n%d", dir, i), port: clientPorts[i]}
		if n > 1 {
			s.opts = func(o *server.Options) {
				o.ServerName = fmt.Sprintf("n%d", i)
				o.Cluster = server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: routePorts[i]}
				o.Routes = routes
			}
		}
		c.Nodes = append(c.Nodes, s)
	}
	for _, s := range c.Nodes {
		if err := s.startAsync(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.waitReady(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// URL is the comma-separated client URLs of every node.
func (c *Cluster) URL() string {
	var urls []string
	for _, s := range c.Nodes {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// Stop shuts every node down (an outage of the whole cluster); the files
// stay.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}

// Restart starts every stopped node again on its ports and files and
// waits until JetStream has a meta leader again.
func (c *Cluster) Restart() error {
	for _, s := range c.Nodes {
		s.mu.Lock()
		running := s.srv != nil
		s.mu.Unlock()
		if running {
			continue
		}
		if err := s.startAsync(); err != nil {
			return err
		}
	}
	return c.waitReady()
}

// waitReady waits for every running node to take connections, to be
// current with JetStream's meta group and, for a cluster, for one of them
// to lead it.
func (c *Cluster) waitReady() error {
	end := time.Now().Add(time.Minute)
	var running []*server.Server
	for _, s := range c.Nodes {
		s.mu.Lock()
		if s.srv != nil {
			running = append(running, s.srv)
		}
		s.mu.Unlock()
	}
	for _, srv := range running {
		if !srv.ReadyForConnections(time.Minute) {
			return fmt.Errorf("natstest: a node did not start within a minute")
		}
	}
	for {
		// The meta leader places a replicated stream only on the peers it
		// has current stats from: until it has them from every node, an
		// R3 stream is refused (no suitable peers for placement).
		ready, leader := true, len(c.Nodes) == 1
		for _, srv := range running {
			ready = ready && srv.JetStreamIsCurrent()
			leader = leader || (srv.JetStreamIsLeader() && len(srv.JetStreamClusterPeers()) == len(running))
		}
		if ready && leader {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("natstest: JetStream not ready within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePorts reserves n free loopback ports (by listening and closing).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
