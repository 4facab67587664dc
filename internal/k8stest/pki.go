package k8stest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the control plane's certificates and keys, written as PEM files
// into one folder: a CA, the API server's serving certificate, an admin
// client certificate (group system:masters) and the service account
// token signing key.
type pki struct {
	dir                          string
	caCert, caKey                string
	serverCert, serverKey        string
	adminCert, adminKey          string
	saKey, saPub                 string
	caPEM, adminPEM, adminKeyPEM []byte
}

func newPKI(dir string) (*pki, error) {
	p := &pki{dir: dir}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca key: %w", err)
	}
	now := time.Now().Add(-time.Hour)
	caTpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kmt-test-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("ca certificate: %w", err)
	}
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if p.caCert, err = p.write("ca.crt", p.caPEM); err != nil {
		return nil, err
	}
	if p.caKey, err = p.writeKey("ca.key", caKey); err != nil {
		return nil, err
	}
	leaf := func(name string, serial int64, tpl x509.Certificate) (string, string, []byte, []byte, error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", nil, nil, fmt.Errorf("%s key: %w", name, err)
		}
		tpl.SerialNumber = big.NewInt(serial)
		tpl.NotBefore, tpl.NotAfter = now, now.Add(48*time.Hour)
		tpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, &tpl, ca, &k.PublicKey, caKey)
		if err != nil {
			return "", "", nil, nil, fmt.Errorf("%s certificate: %w", name, err)
		}
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return "", "", nil, nil, fmt.Errorf("%s key: %w", name, err)
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
		c, err := p.write(name+".crt", certPEM)
		if err != nil {
			return "", "", nil, nil, err
		}
		kf, err := p.write(name+".key", keyPEM)
		return c, kf, certPEM, keyPEM, err
	}
	if p.serverCert, p.serverKey, _, _, err = leaf("apiserver", 2, x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(serviceIP)},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}); err != nil {
		return nil, err
	}
	if p.adminCert, p.adminKey, p.adminPEM, p.adminKeyPEM, err = leaf("admin", 3, x509.Certificate{
		Subject:     pkix.Name{CommonName: "kmt-test-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	if p.saKey, err = p.writeKey("sa.key", saKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	if p.saPub, err = p.write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pki) write(name string, b []byte) (string, error) {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, nil
}

func (p *pki) writeKey(name string, k *ecdsa.PrivateKey) (string, error) {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return p.write(name, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: b}))
}
