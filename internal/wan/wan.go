// Package wan is a fault-injecting network link for the local target: a
// dialer whose connections carry bytes like a degraded wide-area link.
//
// A Link is used as a dialer (kafkaconf.Conn.Dialer), so every connection a
// client opens — bootstrap and every broker learned from metadata — crosses
// it. Each connection is a real TCP connection to the far end, with the link
// sitting in the middle of both directions:
//
//   - Latency and Jitter delay every chunk of bytes (one write by either end)
//     by Latency ± a uniform jitter, one way, per direction. Order is always
//     preserved: a chunk is never delivered before the one written ahead of
//     it, so jitter only ever adds delay. A round trip costs 2×Latency more,
//     and so does opening a connection (the TCP handshake).
//   - Bandwidth caps each direction at that many bytes per second, shared by
//     every connection of the link, like one WAN pipe.
//   - StallPct is the percentage of chunks that stall their direction: the
//     chunk and everything written behind it wait an extra Stall.
//   - ResetPct is the percentage of chunks (in either direction) on which the
//     connection is reset: the TCP connection is closed abruptly (RST), queued
//     bytes are discarded and both ends get an error.
//   - Cut is a network partition: no byte crosses in either direction. Open
//     connections stay open and keep their queued bytes (as TCP does while
//     retransmitting); writes queue until the per-direction buffer is full,
//     then block; reads wait. New dials wait for the link to heal, at most
//     the link's dial timeout, then fail. When the cut heals the queued bytes
//     flow again; clients that timed out in the meantime have closed their
//     connections, exactly as over a real partition.
//
// Conditions change at run time with Set and Heal and apply at once to open
// connections (latency to chunks written from then on). Closing a connection
// discards what it still had queued. The link never leaks goroutines: each
// connection runs three, all gone when Close returns.
package wan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conditions describe the state of a link. The zero value is a healthy link
// that adds nothing.
type Conditions struct {
	// Latency is the one-way delay added in each direction (only towards
	// the far end with UpOnly).
	Latency time.Duration `json:"latency,omitempty"`
	// UpOnly applies Latency and Jitter to the up direction only: the bytes
	// the dialing side writes towards the far end (its requests), as Chaos
	// Mesh's NetworkChaos delay does to the egress of the pods it selects.
	// A round trip then grows by Latency, not 2×Latency.
	UpOnly bool `json:"up_only,omitempty"`
	// Jitter spreads Latency uniformly over [Latency-Jitter, Latency+Jitter]
	// (never below zero) per chunk, order preserved.
	Jitter time.Duration `json:"jitter,omitempty"`
	// Bandwidth caps each direction at this many bytes per second, shared by
	// every connection of the link; 0 means unlimited.
	Bandwidth int64 `json:"bandwidth,omitempty"`
	// StallPct is the percentage (0-100) of chunks that stall their direction
	// for Stall.
	StallPct float64 `json:"stall_pct,omitempty"`
	// Stall is how long a stall holds a direction.
	Stall time.Duration `json:"stall,omitempty"`
	// ResetPct is the percentage (0-100) of chunks on which the connection is
	// reset.
	ResetPct float64 `json:"reset_pct,omitempty"`
	// Cut partitions the link: nothing crosses, new dials wait then fail.
	Cut bool `json:"cut,omitempty"`
}

// Validate reports the first field that is out of range.
func (c Conditions) Validate() error {
	switch {
	case c.Latency < 0:
		return fmt.Errorf("wan conditions: latency %s is negative", c.Latency)
	case c.Jitter < 0:
		return fmt.Errorf("wan conditions: jitter %s is negative", c.Jitter)
	case c.Bandwidth < 0:
		return fmt.Errorf("wan conditions: bandwidth %d bytes/s is negative", c.Bandwidth)
	case c.StallPct < 0 || c.StallPct > 100:
		return fmt.Errorf("wan conditions: stall percentage %g is not within 0-100", c.StallPct)
	case c.Stall < 0:
		return fmt.Errorf("wan conditions: stall %s is negative", c.Stall)
	case c.StallPct > 0 && c.Stall == 0:
		return fmt.Errorf("wan conditions: stall percentage %g needs a stall duration", c.StallPct)
	case c.ResetPct < 0 || c.ResetPct > 100:
		return fmt.Errorf("wan conditions: reset percentage %g is not within 0-100", c.ResetPct)
	}
	return nil
}

// Healthy reports whether c adds nothing to the link.
func (c Conditions) Healthy() bool { return c == Conditions{} }

// String summarizes the conditions for logs.
func (c Conditions) String() string {
	if c.Healthy() {
		return "healthy"
	}
	if c.Cut {
		return "cut"
	}
	dir := ""
	if c.UpOnly {
		dir = " (up only)"
	}
	return fmt.Sprintf("latency=%s%s jitter=%s bandwidth=%dB/s stall=%g%%x%s reset=%g%%",
		c.Latency, dir, c.Jitter, c.Bandwidth, c.StallPct, c.Stall, c.ResetPct)
}

// Dialer opens the link's connections to the far end; *net.Dialer satisfies
// it.
type Dialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// Option configures a Link.
type Option func(*options)

type options struct {
	name        string
	upstream    Dialer
	dialTimeout time.Duration
	buffer      int
	seed        uint64
	seeded      bool
}

// Name names the link in errors and logs. Default "wan".
func Name(s string) Option { return func(o *options) { o.name = s } }

// Upstream sets the dialer that reaches the far end. Default: a net.Dialer
// with a 5 s timeout.
func Upstream(d Dialer) Option { return func(o *options) { o.upstream = d } }

// DialTimeout bounds how long a dial waits for a cut link to heal before
// failing. Default 5 s (sarama's default dial timeout).
func DialTimeout(d time.Duration) Option { return func(o *options) { o.dialTimeout = d } }

// Buffer sets how many bytes each direction of a connection queues before
// writes block. Default 1 MiB.
func Buffer(n int) Option { return func(o *options) { o.buffer = n } }

// Seed makes the jitter, stall and reset draws reproducible. Default: a
// random seed.
func Seed(s uint64) Option { return func(o *options) { o.seed, o.seeded = s, true } }

// Stats are a link's cumulative counters.
type Stats struct {
	// BytesUp counts bytes delivered from the dialing side to the far end.
	BytesUp uint64 `json:"bytes_up"`
	// BytesDown counts bytes delivered from the far end to the dialing side.
	BytesDown uint64 `json:"bytes_down"`
	// Dials counts connections opened.
	Dials uint64 `json:"dials"`
	// DialFailures counts dials refused because the link was cut (or closed)
	// or the far end could not be reached.
	DialFailures uint64 `json:"dial_failures"`
	// Resets counts connections reset by ResetPct.
	Resets uint64 `json:"resets"`
	// Stalls counts chunks that stalled their direction.
	Stalls uint64 `json:"stalls"`
	// Open is the number of connections open now.
	Open int `json:"open"`
}

// ErrCut is returned (wrapped) by a dial that gave up waiting for a cut link
// to heal.
var ErrCut = errors.New("wan link is cut")

// ErrLinkClosed is returned (wrapped) by dials on a closed link.
var ErrLinkClosed = errors.New("wan link is closed")

const (
	dirUp   = 0 // dialing side -> far end
	dirDown = 1 // far end -> dialing side
)

// linkState is swapped atomically on every Set; changed is closed then.
type linkState struct {
	cond    Conditions
	changed chan struct{}
}

// Link is a fault-injecting link. Its zero value is not usable; call New.
type Link struct {
	name        string
	upstream    Dialer
	dialTimeout time.Duration
	buffer      int

	state atomic.Pointer[linkState]

	setMu sync.Mutex // serializes Set

	rndMu sync.Mutex
	rnd   *rand.Rand

	limMu sync.Mutex
	next  [2]time.Time // bandwidth: when each direction is free again

	connMu sync.Mutex
	conns  map[*conn]struct{}
	closed bool

	bytes                             [2]atomic.Uint64
	dials, dialFailures, resets, stls atomic.Uint64
}

// New returns a healthy link.
func New(opts ...Option) *Link {
	o := options{name: "wan", dialTimeout: 5 * time.Second, buffer: 1 << 20}
	for _, opt := range opts {
		opt(&o)
	}
	if o.upstream == nil {
		o.upstream = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	}
	if o.buffer < 1 {
		o.buffer = 1 << 20
	}
	if !o.seeded {
		o.seed = rand.Uint64()
	}
	l := &Link{
		name:        o.name,
		upstream:    o.upstream,
		dialTimeout: o.dialTimeout,
		buffer:      o.buffer,
		rnd:         rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		conns:       map[*conn]struct{}{},
	}
	l.state.Store(&linkState{changed: make(chan struct{})})
	return l
}

// Name returns the link's name.
func (l *Link) Name() string { return l.name }

// Set changes the link's conditions; open connections follow at once.
func (l *Link) Set(c Conditions) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("wan link %s: %w", l.name, err)
	}
	l.setMu.Lock()
	defer l.setMu.Unlock()
	old := l.state.Load()
	if old.cond == c {
		return nil
	}
	if c.Bandwidth != old.cond.Bandwidth {
		l.limMu.Lock()
		l.next = [2]time.Time{}
		l.limMu.Unlock()
	}
	l.state.Store(&linkState{cond: c, changed: make(chan struct{})})
	close(old.changed)
	slog.Info("wan link conditions changed", "link", l.name, "conditions", c.String())
	return nil
}

// Heal restores a healthy link.
func (l *Link) Heal() { _ = l.Set(Conditions{}) }

// Conditions returns the current conditions.
func (l *Link) Conditions() Conditions { return l.state.Load().cond }

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	l.connMu.Lock()
	open := len(l.conns)
	l.connMu.Unlock()
	return Stats{
		BytesUp:      l.bytes[dirUp].Load(),
		BytesDown:    l.bytes[dirDown].Load(),
		Dials:        l.dials.Load(),
		DialFailures: l.dialFailures.Load(),
		Resets:       l.resets.Load(),
		Stalls:       l.stls.Load(),
		Open:         open,
	}
}

// Dial opens a connection through the link (see DialContext).
func (l *Link) Dial(network, addr string) (net.Conn, error) {
	return l.DialContext(context.Background(), network, addr)
}

// DialContext opens a connection to addr through the link. While the link is
// cut it waits for a heal, at most the link's dial timeout; the handshake
// costs one round trip of latency.
func (l *Link) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	fail := func(err error) (net.Conn, error) {
		l.dialFailures.Add(1)
		return nil, fmt.Errorf("wan link %s: dial %s: %w", l.name, addr, err)
	}
	if l.isClosed() {
		return fail(ErrLinkClosed)
	}
	var deadline <-chan time.Time
	if l.dialTimeout > 0 {
		t := time.NewTimer(l.dialTimeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		st := l.state.Load()
		if !st.cond.Cut {
			break
		}
		select {
		case <-st.changed:
		case <-deadline:
			return fail(ErrCut)
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	// The TCP handshake is one round trip.
	hs := 2 * l.state.Load().cond.Latency
	if l.state.Load().cond.UpOnly {
		hs /= 2
	}
	if d := hs; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fail(ctx.Err())
		}
	}
	var raw net.Conn
	var err error
	if cd, ok := l.upstream.(interface {
		DialContext(context.Context, string, string) (net.Conn, error)
	}); ok {
		raw, err = cd.DialContext(ctx, network, addr)
	} else {
		raw, err = l.upstream.Dial(network, addr)
	}
	if err != nil {
		return fail(err)
	}
	c := newConn(l, raw)
	l.connMu.Lock()
	if l.closed {
		l.connMu.Unlock()
		raw.Close()
		return fail(ErrLinkClosed)
	}
	l.conns[c] = struct{}{}
	l.connMu.Unlock()
	l.dials.Add(1)
	c.start()
	return c, nil
}

// Close closes every open connection and makes further dials fail. It
// returns when every connection's goroutines have exited.
func (l *Link) Close() error {
	l.connMu.Lock()
	l.closed = true
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.connMu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func (l *Link) isClosed() bool {
	l.connMu.Lock()
	defer l.connMu.Unlock()
	return l.closed
}

func (l *Link) forget(c *conn) {
	l.connMu.Lock()
	delete(l.conns, c)
	l.connMu.Unlock()
}

// draw decides, for one chunk, its extra delay and whether it resets the
// connection.
func (l *Link) draw(c Conditions, dir int) (delay time.Duration, reset bool) {
	if c.UpOnly && dir != dirUp {
		c.Latency, c.Jitter = 0, 0
	}
	if c.Latency == 0 && c.Jitter == 0 && c.StallPct == 0 && c.ResetPct == 0 {
		return 0, false
	}
	l.rndMu.Lock()
	defer l.rndMu.Unlock()
	if c.ResetPct > 0 && l.rnd.Float64()*100 < c.ResetPct {
		return 0, true
	}
	delay = c.Latency
	if c.Jitter > 0 {
		delay += time.Duration(l.rnd.Int64N(int64(2*c.Jitter)+1)) - c.Jitter
		delay = max(delay, 0)
	}
	if c.StallPct > 0 && l.rnd.Float64()*100 < c.StallPct {
		delay += c.Stall
		l.stls.Add(1)
	}
	return delay, false
}

// reserve books n bytes of bandwidth in direction dir and returns when their
// transmission completes.
func (l *Link) reserve(dir int, n int, bw int64) time.Time {
	now := time.Now()
	l.limMu.Lock()
	defer l.limMu.Unlock()
	start := l.next[dir]
	if start.Before(now) {
		start = now
	}
	l.next[dir] = start.Add(time.Duration(float64(n) / float64(bw) * float64(time.Second)))
	return l.next[dir]
}

// pieceSize is how many bytes are paced at once under a bandwidth cap: about
// 20 ms worth, between 1 byte and 32 KiB.
func pieceSize(bw int64) int {
	return int(min(max(bw/50, 1), 32<<10))
}

var errReset = fmt.Errorf("connection reset by the wan link: %w", syscall.ECONNRESET)
