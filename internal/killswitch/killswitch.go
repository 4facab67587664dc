// Package killswitch is a dialer that can cut every connection it opened at
// once and refuse new ones: a Kafka client behind it then behaves as if its
// process had died (nothing in flight crosses the network, nothing is
// committed, no group is left), while the process itself lives on to be
// inspected. The local target uses it to kill producers and consumers
// abruptly.
package killswitch

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrKilled is what dials return once the switch was thrown.
var ErrKilled = errors.New("connection refused: client killed")

// Dialer opens network connections; *net.Dialer satisfies it.
type Dialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// Switch is a dialer with a kill switch. The zero value is not usable; call
// New.
type Switch struct {
	base Dialer

	mu    sync.Mutex
	conns map[*conn]struct{}
	dead  bool
}

// New returns a switch dialing through base (nil: a net.Dialer with a 5s
// timeout).
func New(base Dialer) *Switch {
	if base == nil {
		base = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	return &Switch{base: base, conns: map[*conn]struct{}{}}
}

// Dial opens a connection through the base dialer unless the switch was
// thrown.
func (s *Switch) Dial(network, addr string) (net.Conn, error) {
	if s.Killed() {
		return nil, ErrKilled
	}
	c, err := s.base.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	sc := &conn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		c.Close()
		return nil, ErrKilled
	}
	s.conns[sc] = struct{}{}
	return sc, nil
}

// Kill closes every open connection with a reset (as the kernel does for a
// dead process) and refuses further dials. It returns how many connections
// it cut.
func (s *Switch) Kill() int {
	s.mu.Lock()
	s.dead = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	return len(conns)
}

// Killed reports whether Kill was called.
func (s *Switch) Killed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// Open returns how many connections are open.
func (s *Switch) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

type conn struct {
	net.Conn
	s    *Switch
	once sync.Once
}

// Close closes the connection and forgets it.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}
