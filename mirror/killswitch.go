package mirror

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// errKilled is what a killed worker's dials return.
var errKilled = errors.New("mirror worker killed")

// killSwitch is a worker's dialer: it remembers every connection it opened
// so an abrupt kill can cut them all at once, and refuses new ones after.
// Nothing the worker had in flight crosses the network once kill returns,
// as when a process dies.
type killSwitch struct {
	base kafkaconf.Dialer

	mu    sync.Mutex
	conns map[*switchConn]struct{}
	dead  bool
}

func newKillSwitch(base kafkaconf.Dialer) *killSwitch {
	if base == nil {
		base = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	return &killSwitch{base: base, conns: map[*switchConn]struct{}{}}
}

// Dial opens a connection through the base dialer unless killed.
func (k *killSwitch) Dial(network, addr string) (net.Conn, error) {
	k.mu.Lock()
	dead := k.dead
	k.mu.Unlock()
	if dead {
		return nil, errKilled
	}
	c, err := k.base.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	sc := &switchConn{Conn: c, k: k}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.dead {
		c.Close()
		return nil, errKilled
	}
	k.conns[sc] = struct{}{}
	return sc, nil
}

// kill closes every connection and refuses further dials.
func (k *killSwitch) kill() {
	k.mu.Lock()
	k.dead = true
	conns := make([]*switchConn, 0, len(k.conns))
	for c := range k.conns {
		conns = append(conns, c)
	}
	k.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

type switchConn struct {
	net.Conn
	k    *killSwitch
	once sync.Once
}

// Close closes the connection and forgets it.
func (c *switchConn) Close() error {
	c.once.Do(func() {
		c.k.mu.Lock()
		delete(c.k.conns, c)
		c.k.mu.Unlock()
	})
	return c.Conn.Close()
}
