// Package kafkaconf turns kmt's connection settings (brokers, TLS, SASL,
// timeouts) into sarama configuration, and connects with bounded retries so an
// unreachable cluster fails with a clear message instead of hanging.
package kafkaconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// DefaultVersion is the Kafka protocol version kmt speaks unless told
// otherwise: 3.6, understood by every Kafka 3.x/4.x broker and by kfake.
var DefaultVersion = sarama.V3_6_0_0

// Conn is how to reach one Kafka cluster.
type Conn struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// ClientID is sent to the brokers. Default "kmt".
	ClientID string
	// ConnectTimeout bounds the whole connect-with-retries. Default 30s.
	ConnectTimeout time.Duration
	// TLS, when non-nil, enables TLS with this configuration.
	TLS *tls.Config
	// SASL, when Mechanism is set, enables SASL authentication.
	SASL SASL
	// Dialer, when non-nil, opens every broker connection (kmt's WAN link
	// uses it to sit between the replicator and the source cluster).
	Dialer Dialer
}

// Dialer opens network connections; *net.Dialer satisfies it.
type Dialer interface {
	Dial(network, addr string) (netConn, error)
}

// SASL holds SASL credentials. Mechanism is "PLAIN", "SCRAM-SHA-256" or
// "SCRAM-SHA-512".
type SASL struct {
	Mechanism string
	User      string
	Password  string
}

// String describes c without secrets.
func (c Conn) String() string {
	s := strings.Join(c.Brokers, ",")
	if c.TLS != nil {
		s += " (tls)"
	}
	if c.SASL.Mechanism != "" {
		s += " (sasl " + c.SASL.Mechanism + " user " + c.SASL.User + ")"
	}
	return s
}

// Validate checks the settings without connecting.
func (c Conn) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("no bootstrap brokers given")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			return fmt.Errorf("broker address %q is not host:port", b)
		}
	}
	return c.SASL.validate()
}

// Sarama returns a sarama configuration for c with kmt's defaults. Callers
// then set producer or consumer specifics.
func (c Conn) Sarama() (*sarama.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cfg := sarama.NewConfig()
	cfg.Version = DefaultVersion
	cfg.ClientID = "kmt"
	if c.ClientID != "" {
		cfg.ClientID = c.ClientID
	}
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 5
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	// Partition changes (topics grown at run time) are noticed at this pace,
	// also by consumer groups.
	cfg.Metadata.RefreshFrequency = 5 * time.Second
	if c.SASL.Mechanism != "" {
		if err := applySASL(cfg, c.SASL); err != nil {
			return nil, err
		}
	}
	// kmt's dialer does TLS itself (with a handshake deadline) and watches
	// for failures that retrying cannot fix; sarama sees plain connections.
	cfg.Net.Proxy.Enable = true
	cfg.Net.Proxy.Dialer = &dialer{base: c.Dialer, tls: c.TLS, cfg: cfg}
	return cfg, nil
}

// Connect opens a sarama client, retrying with exponential backoff until
// ConnectTimeout. Failures that retrying cannot fix (rejected SASL
// credentials, a TLS certificate that does not verify, a missing client
// certificate) end it at once with an error wrapping ErrAuthentication or
// ErrTLS. Other errors name the brokers, the last cause and, when the
// brokers closed connections, what that suggests.
func Connect(ctx context.Context, c Conn, cfg *sarama.Config) (sarama.Client, error) {
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	start := time.Now()
	deadline := start.Add(timeout)
	d, _ := cfg.Net.Proxy.Dialer.(*dialer)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if d != nil && (d.tls != nil || cfg.Net.SASL.Enable) {
			// One connection first: a rejection shows up here in
			// milliseconds, before sarama's metadata retries.
			if err := probe(c.Brokers[0], cfg); err != nil {
				if f := d.finalSince(start); f != nil {
					return nil, fmt.Errorf("connect to %s: %w", c, f)
				}
				if isAuthError(err) {
					return nil, fmt.Errorf("connect to %s: %w: %w", c, ErrAuthentication, err)
				}
			}
		}
		client, err := sarama.NewClient(c.Brokers, cfg)
		if err == nil {
			return client, nil
		}
		if d != nil {
			if f := d.finalSince(start); f != nil {
				return nil, fmt.Errorf("connect to %s: %w", c, f)
			}
		}
		if isAuthError(err) {
			return nil, fmt.Errorf("connect to %s: %w: %w", c, ErrAuthentication, err)
		}
		if time.Now().Add(backoff).After(deadline) {
			hint := ""
			if d != nil && d.lastHint() != "" {
				hint = "; " + d.lastHint()
			}
			return nil, fmt.Errorf("cannot reach Kafka brokers %s within %s (%d attempts): %w%s", c, timeout, attempt, err, hint)
		}
		slog.Warn("kafka connect retry", "brokers", c.String(), "attempt", attempt, "backoff", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to %s: %w", c, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// probe opens one connection to addr the way the client will (TLS, SASL,
// API versions) and closes it.
func probe(addr string, cfg *sarama.Config) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return err
	}
	_, err := b.Connected()
	_ = b.Close()
	return err
}

// isAuthError reports whether err is a SASL error code from a broker.
func isAuthError(err error) bool {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		return kerr == sarama.ErrSASLAuthenticationFailed || kerr == sarama.ErrIllegalSASLState || kerr == sarama.ErrUnsupportedSASLMechanism
	}
	return false
}
