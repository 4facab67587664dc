package wan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a loopback TCP server that echoes (or discards) what it reads.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	read  chan int // bytes read per call, when counting
}

func startServer(t *testing.T, echo bool) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &server{ln: ln, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				if echo {
					_, _ = io.Copy(c, c)
				} else {
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *server) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *server) addr() string { return s.ln.Addr().String() }

func newLink(t *testing.T, opts ...Option) *Link {
	t.Helper()
	l := New(append([]Option{Seed(1), Name(t.Name())}, opts...)...)
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l *Link, addr string) net.Conn {
	t.Helper()
	c, err := l.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial through link: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func roundTrip(t *testing.T, c net.Conn, msg []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo differs: sent %d bytes, got different bytes back", len(msg))
	}
	return time.Since(start)
}

func TestHealthyLinkCarriesBytesIntact(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	c := dial(t, l, srv.addr())
	msg := make([]byte, 3<<20)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := c.Write(msg); err != nil {
			t.Errorf("write: %v", err)
		}
	}()
	got := make([]byte, len(msg))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	wg.Wait()
	if !bytes.Equal(got, msg) {
		t.Fatal("bytes changed crossing the link")
	}
	st := l.Stats()
	if st.BytesUp != uint64(len(msg)) || st.BytesDown != uint64(len(msg)) {
		t.Fatalf("stats: up %d down %d, want %d each", st.BytesUp, st.BytesDown, len(msg))
	}
	if st.Dials != 1 || st.Open != 1 {
		t.Fatalf("stats: dials %d open %d, want 1 and 1", st.Dials, st.Open)
	}
}

func TestLatencyAddsToEveryRoundTrip(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	const lat = 40 * time.Millisecond
	if err := l.Set(Conditions{Latency: lat}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c := dial(t, l, srv.addr())
	if d := time.Since(start); d < 2*lat {
		t.Errorf("dial took %s, want at least the handshake round trip %s", d, 2*lat)
	}
	for i := 0; i < 3; i++ {
		if rtt := roundTrip(t, c, []byte("ping")); rtt < 2*lat {
			t.Errorf("round trip %d took %s, want at least %s", i, rtt, 2*lat)
		}
	}
	l.Heal()
	// Healed: no more added delay (loose: far below the added latency).
	var best time.Duration = time.Hour
	for i := 0; i < 5; i++ {
		best = min(best, roundTrip(t, c, []byte("ping")))
	}
	if best >= 2*lat {
		t.Errorf("after heal the best round trip is %s, want below %s", best, 2*lat)
	}
}

func TestJitterPreservesOrder(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	if err := l.Set(Conditions{Latency: 3 * time.Millisecond, Jitter: 3 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l, srv.addr())
	const n = 500
	go func() {
		var b [4]byte
		for i := 0; i < n; i++ {
			binary.BigEndian.PutUint32(b[:], uint32(i))
			if _, err := c.Write(b[:]); err != nil {
				return
			}
		}
	}()
	got := make([]byte, 4*n)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	for i := 0; i < n; i++ {
		if v := binary.BigEndian.Uint32(got[4*i:]); v != uint32(i) {
			t.Fatalf("position %d holds %d: order not preserved", i, v)
		}
	}
}

func TestStallHoldsADirection(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	c := dial(t, l, srv.addr())
	const stall = 60 * time.Millisecond
	if err := l.Set(Conditions{StallPct: 100, Stall: stall}); err != nil {
		t.Fatal(err)
	}
	if rtt := roundTrip(t, c, []byte("x")); rtt < 2*stall {
		t.Errorf("round trip %s, want at least two stalls %s", rtt, 2*stall)
	}
	if st := l.Stats(); st.Stalls != 2 {
		t.Errorf("stalls counted %d, want 2 (one chunk each way)", st.Stalls)
	}
}

func TestBandwidthCapsThroughput(t *testing.T) {
	srv := startServer(t, false)
	l := newLink(t)
	const bw = 200_000
	if err := l.Set(Conditions{Bandwidth: bw}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l, srv.addr())
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 16<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	sent := l.Stats().BytesUp
	elapsed := time.Since(start)
	c.Close()
	<-done
	// The limiter never lets more than bw*elapsed (plus one paced piece)
	// through; a loaded machine may deliver less, so the lower bound is loose.
	limit := uint64(bw*elapsed.Seconds()) + uint64(pieceSize(bw))
	if sent > limit {
		t.Fatalf("%d bytes crossed in %s, cap allows at most %d", sent, elapsed, limit)
	}
	if sent < limit/10 {
		t.Fatalf("only %d bytes crossed in %s under a %d B/s cap", sent, elapsed, bw)
	}
	t.Logf("%d bytes in %s (cap %d B/s)", sent, elapsed, bw)
}

func TestCutBlocksAndHealRestores(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t, DialTimeout(150*time.Millisecond))
	c := dial(t, l, srv.addr())
	roundTrip(t, c, []byte("before"))
	before := l.Stats()

	if err := l.Set(Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("during")); err != nil {
		t.Fatalf("write during cut should queue, got %v", err)
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	buf := make([]byte, 6)
	_, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read during cut: got %v, want a timeout", err)
	}
	if _, err := l.Dial("tcp", srv.addr()); !errors.Is(err, ErrCut) {
		t.Fatalf("dial during cut: got %v, want ErrCut", err)
	}
	if st := l.Stats(); st.BytesUp != before.BytesUp || st.BytesDown != before.BytesDown {
		t.Fatalf("bytes crossed a cut link: before %+v after %+v", before, st)
	}

	// A dial that starts during the cut succeeds if the link heals in time.
	l2 := newLink(t, DialTimeout(10*time.Second))
	if err := l2.Set(Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	dialed := make(chan error, 1)
	go func() {
		c2, err := l2.Dial("tcp", srv.addr())
		if err == nil {
			c2.Close()
		}
		dialed <- err
	}()
	time.Sleep(50 * time.Millisecond)
	l2.Heal()

	l.Heal()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "during" {
		t.Fatalf("after heal: read %q, %v; want the queued %q", buf, err, "during")
	}
	roundTrip(t, c, []byte("after"))
	c3 := dial(t, l, srv.addr())
	roundTrip(t, c3, []byte("new connection"))
	if err := <-dialed; err != nil {
		t.Fatalf("dial waiting across a heal: %v", err)
	}
	if st := l.Stats(); st.DialFailures != 1 {
		t.Fatalf("dial failures %d, want 1", st.DialFailures)
	}
}

func TestResetsCloseConnections(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	c := dial(t, l, srv.addr())
	if err := l.Set(Conditions{ResetPct: 100}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Write([]byte("x"))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write: got %v, want connection reset", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: got %v, want connection reset", err)
	}
	if st := l.Stats(); st.Resets != 1 || st.Open != 0 {
		t.Fatalf("stats %+v, want 1 reset and 0 open", st)
	}

	// A fraction: every reset the link counts is one a client observed.
	if err := l.Set(Conditions{ResetPct: 30}); err != nil {
		t.Fatal(err)
	}
	observed := 0
	for i := 0; i < 60; i++ {
		c, err := l.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Write([]byte("ping"))
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadFull(c, make([]byte, 4))
		}
		if errors.Is(err, syscall.ECONNRESET) {
			observed++
		} else if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		c.Close()
	}
	st := l.Stats()
	if uint64(observed) != st.Resets-1 {
		t.Fatalf("clients saw %d resets, link counted %d", observed, st.Resets-1)
	}
	if observed == 0 || observed == 60 {
		t.Fatalf("%d of 60 connections reset at 30%% per chunk", observed)
	}
}

func TestDeadlinesAndBackpressure(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t, Buffer(1024))
	c := dial(t, l, srv.addr())
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v", err)
	}
	if err := l.Set(Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	var err error
	written := 0
	for written < 1<<20 && err == nil {
		var n int
		n, err = c.Write(make([]byte, 512))
		written += n
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes into a full buffer on a cut link: got %v after %d bytes, want a timeout", err, written)
	}
	if written > 1024 {
		t.Fatalf("%d bytes queued, buffer is 1024", written)
	}
}

func TestFarEndCloseReachesReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("bye"))
		c.Close()
	}()
	l := newLink(t)
	if err := l.Set(Conditions{Latency: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l, ln.Addr().String())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v; want %q then EOF", got, err, "bye")
	}
}

func TestValidateNamesTheField(t *testing.T) {
	l := New()
	for _, tc := range []struct {
		c    Conditions
		want string
	}{
		{Conditions{Latency: -1}, "latency"},
		{Conditions{Jitter: -1}, "jitter"},
		{Conditions{Bandwidth: -1}, "bandwidth"},
		{Conditions{StallPct: 101, Stall: time.Second}, "stall percentage"},
		{Conditions{StallPct: 5}, "stall duration"},
		{Conditions{ResetPct: -3}, "reset percentage"},
	} {
		err := l.Set(tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Set(%+v) = %v, want an error naming %q", tc.c, err, tc.want)
		}
	}
	if !l.Conditions().Healthy() {
		t.Fatal("rejected conditions were applied")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	srv := startServer(t, true)
	settle := func(limit int) int {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= limit || time.Now().After(deadline) {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	base := runtime.NumGoroutine()
	l := New(Seed(7), DialTimeout(50*time.Millisecond))
	if err := l.Set(Conditions{Latency: 2 * time.Millisecond, Jitter: time.Millisecond, Bandwidth: 10 << 20, StallPct: 5, Stall: 5 * time.Millisecond, ResetPct: 5}); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c, err := l.Dial("tcp", srv.addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		c.Write([]byte("hello"))
		c.SetReadDeadline(time.Now().Add(time.Second))
		io.ReadFull(c, make([]byte, 5))
	}
	for _, c := range conns[:20] {
		c.Close()
	}
	// A connection blocked in Read and one blocked in Write on a cut link.
	if err := l.Set(Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	go conns[30].Read(make([]byte, 10))
	go func() {
		for {
			if _, err := conns[31].Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	}()
	if _, err := l.DialContext(context.Background(), "tcp", srv.addr()); !errors.Is(err, ErrCut) {
		t.Fatalf("dial on cut link: %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	l.Close() // closes the other 20
	if st := l.Stats(); st.Open != 0 {
		t.Fatalf("%d connections open after Close", st.Open)
	}
	if _, err := l.Dial("tcp", srv.addr()); !errors.Is(err, ErrLinkClosed) {
		t.Fatalf("dial on closed link: %v", err)
	}
	if n := settle(base); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after closing, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// BenchmarkThroughput compares bulk transfer over a healthy link with the
// same transfer over plain loopback TCP.
func BenchmarkThroughput(b *testing.B) {
	for _, viaLink := range []bool{false, true} {
		name := "direct"
		if viaLink {
			name = "link"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(io.Discard, c)
				c.Close()
			}()
			var c net.Conn
			if viaLink {
				l := New()
				defer l.Close()
				c, err = l.Dial("tcp", ln.Addr().String())
			} else {
				c, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 64<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestUpOnlyDelaysRequestsOnly checks UpOnly, the delay the local target
// injects for a scenario's network latency (as Chaos Mesh does on the
// kubernetes target): the bytes written towards the far end wait Latency,
// the answers come straight back, so a round trip grows by Latency, not
// 2×Latency. Best of five round trips, so a loaded machine only adds.
func TestUpOnlyDelaysRequestsOnly(t *testing.T) {
	srv := startServer(t, true)
	l := newLink(t)
	const lat = 150 * time.Millisecond
	if err := l.Set(Conditions{Latency: lat, UpOnly: true}); err != nil {
		t.Fatal(err)
	}
	c := dial(t, l, srv.addr())
	best := time.Hour
	for i := 0; i < 5; i++ {
		best = min(best, roundTrip(t, c, []byte("ping")))
	}
	if best < lat || best >= 2*lat-lat/3 {
		t.Errorf("best round trip %s with %s up only; want at least %s and well under %s", best, lat, lat, 2*lat)
	}
}
