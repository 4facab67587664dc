package kafkaconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles are TLS settings as a user gives them: file paths (a Kubernetes
// secret mounted as a volume, or files on disk) and switches. The zero
// value verifies the broker against the system's trusted roots without a
// client certificate.
type TLSFiles struct {
	// CAFile is a PEM file of the certificate authorities that signed the
	// brokers' certificates. Default: the system's trusted roots.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its private
	// key, for brokers that require client authentication (mutual TLS).
	// Both or neither. Default: no client certificate.
	CertFile, KeyFile string
	// ServerName is the name the broker certificates must carry. Default:
	// the host part of each broker's address.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate: the connection is
	// encrypted but not authenticated, open to a man in the middle. For
	// tests only. Default false.
	InsecureSkipVerify bool
}

// Config loads the files and returns the client TLS configuration (TLS 1.2
// or newer). Errors name the file and what is wrong with it.
func (f TLSFiles) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify} //nolint:gosec // opt-in, documented as unsafe
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", f.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case f.CertFile != "" && f.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate %s with key %s: %w", f.CertFile, f.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case f.CertFile != "":
		return nil, errors.New("TLS client certificate given without its key file")
	case f.KeyFile != "":
		return nil, errors.New("TLS client key given without its certificate file")
	}
	return cfg, nil
}
