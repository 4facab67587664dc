package kafkaconf

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

type netConn = net.Conn

// SASL mechanisms kmt supports.
const (
	// Plain sends the user and password in the clear (use it over TLS).
	Plain = "PLAIN"
	// ScramSHA256 is SCRAM with SHA-256 (RFC 7677): the password never
	// crosses the wire.
	ScramSHA256 = "SCRAM-SHA-256"
	// ScramSHA512 is SCRAM with SHA-512.
	ScramSHA512 = "SCRAM-SHA-512"
)

// Mechanisms lists the supported SASL mechanisms.
func Mechanisms() []string { return []string{Plain, ScramSHA256, ScramSHA512} }

// ParseMechanism returns the canonical name of a SASL mechanism given in
// any letter case ("scram-sha-512" is ScramSHA512), or an error listing the
// supported ones. An empty string is returned unchanged: SASL off.
func ParseMechanism(s string) (string, error) {
	m := strings.ToUpper(strings.TrimSpace(s))
	switch m {
	case "", Plain, ScramSHA256, ScramSHA512:
		return m, nil
	}
	return "", fmt.Errorf("SASL mechanism %q is not supported (use %s)", s, strings.Join(Mechanisms(), ", "))
}

// ReadSecretFile reads a credential from a file, such as a Kubernetes
// secret mounted as a volume, without one trailing newline. An empty file
// is an error. The error names the file, never its content.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

func (s SASL) validate() error {
	if _, err := ParseMechanism(s.Mechanism); err != nil {
		return err
	}
	if s.Mechanism == "" {
		if s.User != "" || s.Password != "" {
			return fmt.Errorf("SASL user or password given without a SASL mechanism (use %s)", strings.Join(Mechanisms(), ", "))
		}
		return nil
	}
	if s.User == "" {
		return fmt.Errorf("SASL %s needs a user name", s.Mechanism)
	}
	if s.Password == "" {
		return fmt.Errorf("SASL %s needs a password", s.Mechanism)
	}
	return nil
}

func applySASL(cfg *sarama.Config, s SASL) error {
	mech, err := ParseMechanism(s.Mechanism)
	if err != nil {
		return err
	}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.Version = sarama.SASLHandshakeV1
	cfg.Net.SASL.User = s.User
	cfg.Net.SASL.Password = s.Password
	switch mech {
	case Plain:
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case ScramSHA256:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha256.New)} }
	case ScramSHA512:
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.HashGeneratorFcn(sha512.New)} }
	}
	return nil
}

// scramClient is sarama's SCRAM client interface over xdg-go/scram: one
// conversation per broker connection.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts a conversation for user.
func (c *scramClient) Begin(user, password, authzID string) error {
	cl, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	c.conv = cl.NewConversation()
	return nil
}

// Step answers the server's challenge. A wrong password shows up here as a
// server signature that does not verify, or earlier as the broker's
// rejection.
func (c *scramClient) Step(challenge string) (string, error) {
	resp, err := c.conv.Step(challenge)
	if err != nil {
		return "", fmt.Errorf("%w: scram: %w", ErrAuthentication, err)
	}
	return resp, nil
}

// Done reports whether the conversation finished.
func (c *scramClient) Done() bool { return c.conv.Done() }
