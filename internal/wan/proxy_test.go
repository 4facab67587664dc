package wan

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestProxyCarriesTrafficThroughTheLink checks that a proxy's connections
// cross the link: bytes arrive intact, latency adds to every round trip, a
// cut blocks them and a heal lets them through again, and Close leaves no
// goroutine behind.
func TestProxyCarriesTrafficThroughTheLink(t *testing.T) {
	srv := startServer(t, true)
	base := runtime.NumGoroutine()
	l := New(Seed(3), Name(t.Name()), DialTimeout(200*time.Millisecond))
	p, err := l.Listen("127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	// Without an upstream a connection is closed at once.
	c0, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c0.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c0.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a proxy without upstream succeeded")
	}
	c0.Close()
	p.SetUpstream(srv.addr())
	if p.Upstream() != srv.addr() {
		t.Fatalf("upstream %q", p.Upstream())
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	msg := bytes.Repeat([]byte("kmt"), 10000)
	fast := roundTrip(t, c, msg)
	if err := l.Set(Conditions{Latency: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	slow := roundTrip(t, c, []byte("ping"))
	if slow < 100*time.Millisecond {
		t.Fatalf("round trip through a 50ms link took %s (healthy: %s)", slow, fast)
	}
	if err := l.Set(Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); err == nil {
		t.Fatalf("read %d bytes across a cut link", n)
	}
	l.Heal()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "held" {
		t.Fatalf("after heal: %q, %v", got, err)
	}
	// A new connection while cut waits for the dial timeout, then closes.
	l.Set(Conditions{Cut: true})
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("a connection opened across a cut link delivered bytes")
	}
	c2.Close()
	l.Heal()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the proxy closed")
	}
	c.Close()
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("proxy still listening after Close")
	}
	l.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("%d goroutines after Close, %d before", n, base)
	}
}
