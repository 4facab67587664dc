package kafkaproc

import (
	"fmt"
	"io"
	"net"
	"sync"
)

// Dialer opens connections; *net.Dialer and *wan.Link satisfy it.
type Dialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// Proxy is a TCP forwarder on 127.0.0.1: every connection it accepts is
// joined to a new connection to its target opened through a Dialer. With a
// *wan.Link as the Dialer, a JVM that connects to the proxy (MirrorMaker 2
// reaching a broker's REPLICATOR listener advertised at the proxy's
// address) has its traffic degraded by the link.
type Proxy struct {
	ln     net.Listener
	target string
	d      Dialer
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewProxy listens on a free 127.0.0.1 port and forwards to target through
// d. The target need not be up yet: each accepted connection dials it.
func NewProxy(d Dialer, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy to %s: %w", target, err)
	}
	p := &Proxy{ln: ln, target: target, d: d, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// Addr returns the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Go(func() {
			defer p.untrack(in)
			out, err := p.d.Dial("tcp", p.target)
			if err != nil {
				return
			}
			if !p.track(out) {
				return
			}
			defer p.untrack(out)
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
			go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
			<-done
			// Either side ending ends both: Kafka never half-closes.
			in.Close()
			out.Close()
			<-done
		})
	}
}

// Close stops listening, closes every forwarded connection and waits for
// the forwarding goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}
