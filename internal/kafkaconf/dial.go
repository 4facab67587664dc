package kafkaconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// Errors that retrying cannot fix. Connect returns at once when it meets
// one, wrapped with what went wrong and what to check.
var (
	// ErrAuthentication: the brokers rejected the SASL credentials or
	// mechanism.
	ErrAuthentication = errors.New("SASL authentication failed")
	// ErrTLS: the TLS handshake failed (untrusted or mismatched
	// certificate, missing client certificate, or a listener that does not
	// speak TLS).
	ErrTLS = errors.New("TLS handshake failed")
)

// Kafka request keys the connection watcher recognises.
const (
	keyApiVersions      = 18
	keySASLHandshake    = 17
	keySASLAuthenticate = 36
)

// requestNames names the requests a broker may close a connection after.
var requestNames = map[int16]string{0: "Produce", 1: "Fetch", 3: "Metadata", 10: "FindCoordinator", keyApiVersions: "ApiVersions",
	keySASLHandshake: "SaslHandshake", keySASLAuthenticate: "SaslAuthenticate"}

// dialer opens every broker connection of one sarama configuration: TCP
// (through Conn.Dialer when set), then the TLS handshake with a deadline,
// then a watcher that recognises the failures retrying cannot fix. It
// records them for Connect, which then gives up at once instead of
// retrying until its timeout.
type dialer struct {
	base Dialer      // nil: a net.Dialer from cfg
	tls  *tls.Config // nil: plaintext
	cfg  *sarama.Config

	mu    sync.Mutex
	final error     // last failure retrying cannot fix
	at    time.Time // when it was recorded
	hint  string    // what the last closed connection suggests
}

// Dial implements sarama's proxy dialer.
func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	var raw net.Conn
	var err error
	if d.base != nil {
		raw, err = d.base.Dial(network, addr)
	} else {
		nd := &net.Dialer{Timeout: d.cfg.Net.DialTimeout, KeepAlive: d.cfg.Net.KeepAlive, LocalAddr: d.cfg.Net.LocalAddr}
		raw, err = nd.Dial(network, addr)
	}
	if err != nil {
		return nil, err
	}
	conn := raw
	if d.tls != nil {
		cfg := d.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			host, _, herr := net.SplitHostPort(addr)
			if herr != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		timeout := d.cfg.Net.DialTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			raw.Close()
			return nil, d.handshakeFailed(addr, timeout, err)
		}
		conn = tc
	}
	w := &watchConn{Conn: conn, d: d, addr: addr}
	w.lastKey.Store(-1)
	return w, nil
}

// handshakeFailed classifies a failed TLS handshake. Certificate problems
// and a listener that never answers the handshake are final; a connection
// closed during the handshake is retried (a restarting broker does that
// too) with a hint.
func (d *dialer) handshakeFailed(addr string, timeout time.Duration, err error) error {
	var final error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		final = fmt.Errorf("%w with %s: no TLS answer within %s (is this a plaintext listener?)", ErrTLS, addr, timeout)
	case isCertError(err):
		final = fmt.Errorf("%w with %s: %s: %w", ErrTLS, addr, certAdvice(err), err)
	case isTLSAlert(err):
		final = fmt.Errorf("%w with %s: the broker refused the handshake: %w", ErrTLS, addr, err)
	}
	if final != nil {
		d.record(final, "")
		return final
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		d.record(nil, "the broker closed the connection during the TLS handshake (is this a plaintext listener?)")
	}
	return fmt.Errorf("TLS handshake with %s: %w", addr, err)
}

func (d *dialer) record(final error, hint string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if final != nil {
		d.final, d.at = final, time.Now()
	}
	if hint != "" {
		d.hint = hint
	}
}

// finalSince returns the last final failure recorded at or after t.
func (d *dialer) finalSince(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.final != nil && !d.at.Before(t) {
		return d.final
	}
	return nil
}

func (d *dialer) lastHint() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hint
}

// isCertError reports whether err is a certificate the client could not
// verify.
func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// certAdvice says what to check for a certificate error.
func certAdvice(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return "the broker's certificate is not signed by a trusted CA (give the CA that signed it as the TLS CA file)"
	case errors.As(err, &he):
		return "the broker's certificate is not valid for this address (set the TLS server name to a name in the certificate)"
	case errors.As(err, &ci):
		return "the broker's certificate is invalid (expired, not yet valid, or not for server use)"
	}
	return "the broker's certificate did not verify"
}

// isTLSAlert reports whether err is an alert the peer sent during or right
// after the handshake (e.g. "certificate required": the broker wants a
// client certificate).
func isTLSAlert(err error) bool {
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" || strings.Contains(err.Error(), "remote error: tls:")
}

// watchConn notes the key of each request written (sarama writes whole,
// length-prefixed frames) and how much was read since, so that a broker
// closing the connection right after a SASL request, or a TLS alert on the
// first read, can be told from an ordinary broker failure.
type watchConn struct {
	net.Conn
	d    *dialer
	addr string

	// written by Write (sarama's single writer per connection)
	hdr  [6]byte
	hn   int
	skip int

	lastKey   atomic.Int32 // key of the last request started, -1 none
	readSince atomic.Int64 // bytes read since that request
	noted     atomic.Bool
}

// Write tracks request frames and writes p.
func (w *watchConn) Write(p []byte) (int, error) {
	for q := p; len(q) > 0; {
		if w.skip > 0 {
			n := min(w.skip, len(q))
			w.skip -= n
			q = q[n:]
			continue
		}
		n := copy(w.hdr[w.hn:], q)
		w.hn += n
		q = q[n:]
		if w.hn == len(w.hdr) {
			size := int64(int32(binary.BigEndian.Uint32(w.hdr[:4])))
			w.lastKey.Store(int32(int16(binary.BigEndian.Uint16(w.hdr[4:]))))
			w.readSince.Store(0)
			w.skip = int(max(size-2, 0))
			w.hn = 0
		}
	}
	return w.Conn.Write(p)
}

// Read reads and classifies a failed read.
func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	w.readSince.Add(int64(n))
	if err != nil && !w.noted.Load() {
		w.classify(err)
	}
	return n, err
}

func (w *watchConn) classify(err error) {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ETIMEDOUT) {
		return // closed by sarama, or a read timeout: nothing learned
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return
	}
	w.noted.Store(true)
	if isTLSAlert(err) {
		hasCert := w.d.tls != nil && (len(w.d.tls.Certificates) > 0 || w.d.tls.GetClientCertificate != nil)
		advice := "the broker refused the TLS session"
		switch msg := err.Error(); {
		case strings.Contains(msg, "certificate required") && !hasCert:
			advice = "the broker requires a client certificate (give a TLS client certificate and key)"
		case strings.Contains(msg, "certificate"):
			// Go offers no certificate whose issuer the broker does not
			// list as trusted, so that shows up as "certificate required".
			advice = "the broker rejected the client certificate (is it signed by a CA the broker trusts?)"
		}
		w.d.record(fmt.Errorf("%w with %s: %s: %w", ErrTLS, w.addr, advice, err), "")
		return
	}
	closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
	if !closed {
		return
	}
	key := int16(w.lastKey.Load())
	switch {
	case (key == keySASLAuthenticate || key == keySASLHandshake) && w.readSince.Load() == 0:
		w.d.record(fmt.Errorf("%w with %s: the broker closed the connection in answer to %s (wrong user name or password, or the mechanism is not enabled for this user)",
			ErrAuthentication, w.addr, requestNames[key]), "")
	case key >= 0:
		name := requestNames[key]
		if name == "" {
			name = fmt.Sprintf("request %d", key)
		}
		w.d.record(nil, fmt.Sprintf("the broker closed the connection in answer to %s (does it require TLS or SASL?)", name))
	}
}
