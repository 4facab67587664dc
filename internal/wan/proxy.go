package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
)

// Proxy is a TCP listener whose connections cross the link: every
// connection accepted is forwarded through the link to the upstream
// address. It puts the link in front of a program kmt does not dial for
// (a JVM such as MirrorMaker 2): a Kafka broker that advertises the
// proxy's address gets its clients' traffic through the link.
type Proxy struct {
	link   *Link
	ln     net.Listener
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	upstream string
	conns    map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// Listen starts a proxy listening on addr (e.g. "127.0.0.1:0") that
// forwards through the link to upstream. upstream may be "" and set later
// with SetUpstream; connections accepted before that are closed at once.
func (l *Link) Listen(addr, upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wan link %s: proxy listen %s: %w", l.name, addr, err)
	}
	p := &Proxy{link: l, ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream returns the address connections are forwarded to.
func (p *Proxy) Upstream() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.upstream
}

// SetUpstream sets the address new connections are forwarded to.
func (p *Proxy) SetUpstream(addr string) {
	p.mu.Lock()
	p.upstream = addr
	p.mu.Unlock()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Warn("wan proxy accept failed", "link", p.link.name, "addr", p.Addr(), "err", err)
			}
			return
		}
		if !p.track(c) {
			c.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.serve(c)
		}()
	}
}

// serve forwards one accepted connection through the link until either
// side closes or fails; a failure on one side closes the other.
func (p *Proxy) serve(c net.Conn) {
	defer c.Close()
	up := p.Upstream()
	if up == "" {
		return
	}
	// Close cancels a dial waiting for a cut link to heal.
	far, err := p.link.DialContext(p.ctx, "tcp", up)
	if err != nil {
		slog.Debug("wan proxy dial failed", "link", p.link.name, "upstream", up, "err", err)
		return
	}
	if !p.track(far) {
		far.Close()
		return
	}
	defer p.untrack(far)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			// An abrupt end on one side is an abrupt end on the other.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(far, c)
	go pipe(c, far)
	<-done
	<-done
}

// Close stops listening, closes every forwarded connection and returns
// once their goroutines have exited. The link stays open.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
	return err
}
