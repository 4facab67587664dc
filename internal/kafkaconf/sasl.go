package kafkaconf

import (
	"fmt"
	"net"

	"github.com/IBM/sarama"
)

type netConn = net.Conn

type proxyDialer struct{ d Dialer }

func (p proxyDialer) Dial(network, addr string) (net.Conn, error) { return p.d.Dial(network, addr) }

func applySASL(cfg *sarama.Config, s SASL) error {
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Handshake = true
	cfg.Net.SASL.User = s.User
	cfg.Net.SASL.Password = s.Password
	switch s.Mechanism {
	case "PLAIN":
		cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	default:
		return fmt.Errorf("SASL mechanism %q is not supported (use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism)
	}
	return nil
}
