package wan

import (
	"net"
	"os"
	"sync"
	"time"
)

// chunk is one write's bytes on their way across the link, or (err set) the
// far end's end of stream, delivered in band after the bytes before it.
type chunk struct {
	b   []byte
	due time.Time
	err error
}

// queue is one direction's bytes in flight.
type queue struct {
	chunks  []chunk
	bytes   int
	lastDue time.Time
}

func (q *queue) push(ch chunk) {
	if ch.due.Before(q.lastDue) {
		ch.due = q.lastDue // order is preserved: never overtake
	}
	q.lastDue = ch.due
	q.chunks = append(q.chunks, ch)
	q.bytes += len(ch.b)
}

func (q *queue) pop() {
	q.chunks[0] = chunk{}
	q.chunks = q.chunks[1:]
	if len(q.chunks) == 0 {
		q.chunks = nil
	}
}

// conn is one connection across the link. Three goroutines serve it: pumpUp
// delivers queued writes to the far end, readLoop reads the far end into the
// down queue, pumpDown delivers the down queue to the ready buffer Read
// drains. One mutex guards all state; notify is closed and replaced on every
// change so waiters re-check.
type conn struct {
	l   *Link
	raw net.Conn

	mu      sync.Mutex
	notify  chan struct{}
	up      queue
	down    queue
	ready   []byte
	roff    int
	readErr error // far end's end of stream, returned once ready is drained
	err     error // terminal: closed or reset
	rdl     time.Time
	wdl     time.Time

	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newConn(l *Link, raw net.Conn) *conn {
	return &conn{l: l, raw: raw, notify: make(chan struct{}), closed: make(chan struct{})}
}

func (c *conn) start() {
	c.wg.Add(3)
	go c.pumpUp()
	go c.readLoop()
	go c.pumpDown()
}

// broadcastLocked wakes every waiter. c.mu must be held.
func (c *conn) broadcastLocked() {
	close(c.notify)
	c.notify = make(chan struct{})
}

// waitLocked releases c.mu until something changes: a broadcast, the link's
// conditions (when link is non-nil), the time until (when non-zero), or the
// connection closing. It returns with c.mu held.
func (c *conn) waitLocked(until time.Time, link <-chan struct{}, tm **time.Timer) {
	ch := c.notify
	var tc <-chan time.Time
	if !until.IsZero() {
		d := time.Until(until)
		if d <= 0 {
			return
		}
		if *tm == nil {
			*tm = time.NewTimer(d)
		} else {
			(*tm).Reset(d)
		}
		tc = (*tm).C
	}
	c.mu.Unlock()
	select {
	case <-ch:
	case <-link:
	case <-tc:
	case <-c.closed:
	}
	if tc != nil {
		(*tm).Stop()
	}
	c.mu.Lock()
}

// failLocked ends the connection with err (unless it already ended) and
// closes the socket; reset discards the socket's unsent data (RST).
func (c *conn) failLocked(err error, reset bool) {
	if c.err != nil {
		return
	}
	c.err = err
	c.up = queue{}
	c.down = queue{}
	if reset {
		c.ready, c.roff = nil, 0
		if tc, ok := c.raw.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	c.closeOnce.Do(func() { close(c.closed) })
	_ = c.raw.Close()
	c.broadcastLocked()
	c.l.forget(c)
}

// resetLocked resets the connection as ResetPct asks.
func (c *conn) resetLocked() {
	if c.err == nil {
		c.l.resets.Add(1)
	}
	c.failLocked(errReset, true)
}

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.raw.LocalAddr(), Addr: c.raw.RemoteAddr(), Err: err}
}

// Read reads bytes that have crossed the link.
func (c *conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var tm *time.Timer
	for {
		if c.err != nil {
			return 0, c.opError("read", c.err)
		}
		if c.roff < len(c.ready) {
			n := copy(b, c.ready[c.roff:])
			c.roff += n
			if c.roff == len(c.ready) {
				c.ready, c.roff = c.ready[:0], 0
			}
			c.broadcastLocked()
			return n, nil
		}
		if c.readErr != nil {
			return 0, c.readErr
		}
		if !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		}
		c.waitLocked(c.rdl, nil, &tm)
	}
}

// Write queues b for the far end. It blocks only while the direction's
// buffer is full.
func (c *conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var tm *time.Timer
	for {
		if c.err != nil {
			return 0, c.opError("write", c.err)
		}
		if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
			return 0, c.opError("write", os.ErrDeadlineExceeded)
		}
		if c.up.bytes == 0 || c.up.bytes+len(b) <= c.l.buffer {
			break
		}
		c.waitLocked(c.wdl, nil, &tm)
	}
	delay, reset := c.l.draw(c.l.state.Load().cond, dirUp)
	if reset {
		c.resetLocked()
		return 0, c.opError("write", c.err)
	}
	c.up.push(chunk{b: append([]byte(nil), b...), due: time.Now().Add(delay)})
	c.broadcastLocked()
	return len(b), nil
}

// Close closes the connection, discarding bytes still in flight, and
// returns once its goroutines have exited.
func (c *conn) Close() error {
	c.mu.Lock()
	c.failLocked(net.ErrClosed, false)
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}

// LocalAddr returns the local address of the underlying connection.
func (c *conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr returns the far end's address.
func (c *conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline sets both deadlines.
func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.broadcastLocked()
	c.mu.Unlock()
	return nil
}

// SetReadDeadline sets the read deadline.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.broadcastLocked()
	c.mu.Unlock()
	return nil
}

// SetWriteDeadline sets the write deadline.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.broadcastLocked()
	c.mu.Unlock()
	return nil
}

// take waits until the head of q may cross the link (due, link not cut) and
// removes up to one bandwidth piece of it. It returns ok=false once the
// connection has ended; an in-band error chunk comes back as inband.
func (c *conn) take(q *queue, dir int) (piece []byte, inband error, ok bool) {
	var tm *time.Timer
	defer func() {
		if tm != nil {
			tm.Stop()
		}
	}()
	c.mu.Lock()
	for {
		if c.err != nil {
			c.mu.Unlock()
			return nil, nil, false
		}
		st := c.l.state.Load()
		if len(q.chunks) == 0 {
			c.waitLocked(time.Time{}, nil, &tm)
			continue
		}
		if st.cond.Cut {
			c.waitLocked(time.Time{}, st.changed, &tm)
			continue
		}
		h := &q.chunks[0]
		if time.Now().Before(h.due) {
			c.waitLocked(h.due, st.changed, &tm)
			continue
		}
		if h.err != nil {
			inband = h.err
			q.pop()
			c.mu.Unlock()
			return nil, inband, true
		}
		bw := st.cond.Bandwidth
		n := len(h.b)
		if bw > 0 {
			n = min(n, pieceSize(bw))
		}
		piece = h.b[:n:n]
		h.b = h.b[n:]
		q.bytes -= n
		if len(h.b) == 0 {
			q.pop()
		}
		c.broadcastLocked()
		c.mu.Unlock()
		if bw > 0 {
			if !c.sleepUntil(c.l.reserve(dir, n, bw), &tm) {
				return nil, nil, false
			}
		}
		// A cut that began while the piece was paced holds it back too.
		for {
			st := c.l.state.Load()
			if !st.cond.Cut {
				return piece, nil, true
			}
			select {
			case <-st.changed:
			case <-c.closed:
				return nil, nil, false
			}
		}
	}
}

func (c *conn) sleepUntil(t time.Time, tm **time.Timer) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	if *tm == nil {
		*tm = time.NewTimer(d)
	} else {
		(*tm).Reset(d)
	}
	select {
	case <-(*tm).C:
		return true
	case <-c.closed:
		return false
	}
}

// pumpUp delivers written bytes to the far end.
func (c *conn) pumpUp() {
	defer c.wg.Done()
	for {
		piece, _, ok := c.take(&c.up, dirUp)
		if !ok {
			return
		}
		// Counted as it is released to the far end, so a reply can never be
		// seen before the request is counted.
		c.l.bytes[dirUp].Add(uint64(len(piece)))
		if _, err := c.raw.Write(piece); err != nil {
			c.mu.Lock()
			c.failLocked(err, false)
			c.mu.Unlock()
			return
		}
	}
}

// readLoop reads what the far end sends into the down queue.
func (c *conn) readLoop() {
	defer c.wg.Done()
	buf := make([]byte, 32<<10)
	var tm *time.Timer
	for {
		n, err := c.raw.Read(buf)
		c.mu.Lock()
		if n > 0 {
			for c.err == nil && c.down.bytes > 0 && c.down.bytes+n > c.l.buffer {
				c.waitLocked(time.Time{}, nil, &tm)
			}
			if c.err != nil {
				c.mu.Unlock()
				return
			}
			delay, reset := c.l.draw(c.l.state.Load().cond, dirDown)
			if reset {
				c.resetLocked()
				c.mu.Unlock()
				return
			}
			c.down.push(chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(delay)})
			c.broadcastLocked()
		}
		if err != nil {
			if c.err == nil {
				eof := c.l.state.Load().cond
				if eof.UpOnly {
					eof.Latency = 0
				}
				c.down.push(chunk{err: err, due: time.Now().Add(eof.Latency)})
				c.broadcastLocked()
			}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
	}
}

// pumpDown delivers bytes from the far end to the ready buffer Read drains.
func (c *conn) pumpDown() {
	defer c.wg.Done()
	var tm *time.Timer
	for {
		piece, inband, ok := c.take(&c.down, dirDown)
		if !ok {
			return
		}
		c.mu.Lock()
		if inband != nil {
			if c.err == nil {
				c.readErr = inband
				c.broadcastLocked()
			}
			c.mu.Unlock()
			return
		}
		for c.err == nil && len(c.ready)-c.roff > c.l.buffer {
			c.waitLocked(time.Time{}, nil, &tm)
		}
		if c.err != nil {
			c.mu.Unlock()
			return
		}
		if c.roff > 0 && c.roff >= len(c.ready)/2 {
			n := copy(c.ready, c.ready[c.roff:])
			c.ready, c.roff = c.ready[:n], 0
		}
		c.ready = append(c.ready, piece...)
		c.l.bytes[dirDown].Add(uint64(len(piece)))
		c.broadcastLocked()
		c.mu.Unlock()
	}
}
