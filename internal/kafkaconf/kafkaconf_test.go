package kafkaconf_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// secret is the password of every test user; no error may contain it.
const secret = "s3cret-Pa55"

// startCluster starts a one-broker embedded cluster with opts.
func startCluster(t *testing.T, opts ...embedded.Option) *embedded.Cluster {
	t.Helper()
	c, err := embedded.Start(append([]embedded.Option{embedded.Brokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// tlsConfig builds a client TLS configuration from files.
func tlsConfig(t *testing.T, f kafkaconf.TLSFiles) kafkaconf.Conn {
	t.Helper()
	cfg, err := f.Config()
	if err != nil {
		t.Fatal(err)
	}
	return kafkaconf.Conn{TLS: cfg}
}

// roundTrip connects with conn, creates a topic, writes a record and reads
// it back: every request kind kmt uses goes over the secured connection.
func roundTrip(t *testing.T, conn kafkaconf.Conn) {
	t.Helper()
	cfg, err := conn.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Return.Successes = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic("secured", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "secured", Value: sarama.StringEncoder("hello")}); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition("secured", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if string(m.Value) != "hello" {
			t.Fatalf("read %q", m.Value)
		}
	case <-ctx.Done():
		t.Fatal("no record read back")
	}
}

func TestSecuredConnections(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "client")
	for _, tc := range []struct {
		name    string
		cluster []embedded.Option
		conn    func() kafkaconf.Conn
	}{
		{"tls", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			func() kafkaconf.Conn { return tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile}) }},
		{"mutual tls", []embedded.Option{embedded.TLS(pki.ServerTLS(t, true))},
			func() kafkaconf.Conn {
				return tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: cert, KeyFile: key})
			}},
		{"tls server name", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			func() kafkaconf.Conn {
				return tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, ServerName: "localhost"})
			}},
		{"tls insecure skip verify", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			func() kafkaconf.Conn { return tlsConfig(t, kafkaconf.TLSFiles{InsecureSkipVerify: true}) }},
		{"sasl plain", []embedded.Option{embedded.SASLUser(kafkaconf.Plain, "kmt", secret)},
			func() kafkaconf.Conn {
				return kafkaconf.Conn{SASL: kafkaconf.SASL{Mechanism: kafkaconf.Plain, User: "kmt", Password: secret}}
			}},
		{"sasl scram-sha-256", []embedded.Option{embedded.SASLUser(kafkaconf.ScramSHA256, "kmt", secret)},
			func() kafkaconf.Conn {
				return kafkaconf.Conn{SASL: kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA256, User: "kmt", Password: secret}}
			}},
		{"sasl scram-sha-512 over mutual tls", []embedded.Option{embedded.TLS(pki.ServerTLS(t, true)), embedded.SASLUser(kafkaconf.ScramSHA512, "kmt", secret)},
			func() kafkaconf.Conn {
				c := tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: cert, KeyFile: key})
				c.SASL = kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA512, User: "kmt", Password: secret}
				return c
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.cluster...)
			conn := tc.conn()
			conn.Brokers = c.Addrs()
			roundTrip(t, conn)
		})
	}
}

// TestRejectedFast checks that failures retrying cannot fix end Connect at
// once, well before its timeout, with an error saying what to check and
// never containing the password.
func TestRejectedFast(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	other := kafkatest.NewPKI(t, "impostor")
	cert, key := pki.Issue(t, "client")
	otherCert, otherKey := other.Issue(t, "client")
	sasl := func(mech, user, pass string) kafkaconf.Conn {
		return kafkaconf.Conn{SASL: kafkaconf.SASL{Mechanism: mech, User: user, Password: pass}}
	}
	for _, tc := range []struct {
		name    string
		cluster []embedded.Option
		conn    kafkaconf.Conn
		is      error
		want    string
	}{
		{"plain wrong password", []embedded.Option{embedded.SASLUser(kafkaconf.Plain, "kmt", secret)},
			sasl(kafkaconf.Plain, "kmt", secret+"x"), kafkaconf.ErrAuthentication, "wrong user name or password"},
		{"scram-sha-256 wrong password", []embedded.Option{embedded.SASLUser(kafkaconf.ScramSHA256, "kmt", secret)},
			sasl(kafkaconf.ScramSHA256, "kmt", "x"+secret), kafkaconf.ErrAuthentication, "wrong user name or password"},
		{"scram-sha-512 wrong password", []embedded.Option{embedded.SASLUser(kafkaconf.ScramSHA512, "kmt", secret)},
			sasl(kafkaconf.ScramSHA512, "kmt", secret[1:]), kafkaconf.ErrAuthentication, "wrong user name or password"},
		{"scram-sha-512 unknown user", []embedded.Option{embedded.SASLUser(kafkaconf.ScramSHA512, "kmt", secret)},
			sasl(kafkaconf.ScramSHA512, "nobody", secret), kafkaconf.ErrAuthentication, "wrong user name or password"},
		{"mechanism not enabled for the user", []embedded.Option{embedded.SASLUser(kafkaconf.ScramSHA256, "kmt", secret)},
			sasl(kafkaconf.ScramSHA512, "kmt", secret), kafkaconf.ErrAuthentication, "mechanism is not enabled"},
		{"untrusted certificate", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			tlsConfig(t, kafkaconf.TLSFiles{CAFile: other.CAFile}), kafkaconf.ErrTLS, "not signed by a trusted CA"},
		{"system roots only", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			tlsConfig(t, kafkaconf.TLSFiles{}), kafkaconf.ErrTLS, "not signed by a trusted CA"},
		{"wrong server name", []embedded.Option{embedded.TLS(pki.ServerTLS(t, false))},
			tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, ServerName: "kafka.example"}), kafkaconf.ErrTLS, "not valid for this address"},
		{"missing client certificate", []embedded.Option{embedded.TLS(pki.ServerTLS(t, true))},
			tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile}), kafkaconf.ErrTLS, "requires a client certificate"},
		{"client certificate from another CA", []embedded.Option{embedded.TLS(pki.ServerTLS(t, true))},
			tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: otherCert, KeyFile: otherKey}), kafkaconf.ErrTLS, "rejected the client certificate"},
		{"tls to a plaintext listener", nil,
			tlsConfig(t, kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: cert, KeyFile: key}), kafkaconf.ErrTLS, "plaintext listener"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.cluster...)
			conn := tc.conn
			conn.Brokers = c.Addrs()
			conn.ConnectTimeout = 20 * time.Second
			cfg, err := conn.Sarama()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Net.DialTimeout = time.Second // bounds the plaintext listener's silence
			start := time.Now()
			client, err := kafkaconf.Connect(context.Background(), conn, cfg)
			took := time.Since(start)
			if err == nil {
				client.Close()
				t.Fatal("connected")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want %v saying %q", err, tc.is, tc.want)
			}
			if strings.Contains(err.Error(), secret[1:len(secret)-1]) {
				t.Errorf("error reveals the password: %v", err)
			}
			if took > 3*time.Second {
				t.Errorf("took %v with a 20s connect timeout: retried instead of failing fast", took)
			}
		})
	}
}

// TestNoSASLHint checks that a client without credentials against a SASL
// cluster is retried (a broker closing connections may be restarting) and
// then told what the closed connections suggest.
func TestNoSASLHint(t *testing.T) {
	c := startCluster(t, embedded.SASLUser(kafkaconf.Plain, "kmt", secret))
	conn := kafkaconf.Conn{Brokers: c.Addrs(), ConnectTimeout: 500 * time.Millisecond}
	cfg, err := conn.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	_, err = kafkaconf.Connect(context.Background(), conn, cfg)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka brokers") || !strings.Contains(err.Error(), "does it require TLS or SASL?") {
		t.Fatalf("error %v; want a timeout with the TLS/SASL hint", err)
	}
}

func TestConnValidate(t *testing.T) {
	for _, tc := range []struct {
		sasl kafkaconf.SASL
		want string
	}{
		{kafkaconf.SASL{Mechanism: "GSSAPI", User: "u", Password: "p"}, `SASL mechanism "GSSAPI" is not supported`},
		{kafkaconf.SASL{Mechanism: kafkaconf.Plain, Password: "p"}, "needs a user name"},
		{kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA256, User: "u"}, "needs a password"},
		{kafkaconf.SASL{User: "u", Password: "p"}, "without a SASL mechanism"},
	} {
		err := kafkaconf.Conn{Brokers: []string{"h:1"}, SASL: tc.sasl}.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.sasl.Mechanism, err, tc.want)
		}
		if err != nil && tc.sasl.Password != "" && strings.Contains(err.Error(), tc.sasl.Password+"\"") {
			t.Errorf("error reveals the password: %v", err)
		}
	}
	for _, in := range []string{"plain", "scram-sha-256", "Scram-Sha-512", ""} {
		if _, err := kafkaconf.ParseMechanism(in); err != nil {
			t.Errorf("ParseMechanism(%q): %v", in, err)
		}
	}
	c := kafkaconf.Conn{Brokers: []string{"h:1"}, SASL: kafkaconf.SASL{Mechanism: kafkaconf.Plain, User: "u", Password: secret}}
	if s := c.String(); strings.Contains(s, secret) || !strings.Contains(s, "user u") {
		t.Errorf("String() = %q", s)
	}
}

func TestTLSFilesErrors(t *testing.T) {
	dir := t.TempDir()
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "client")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		f    kafkaconf.TLSFiles
		want string
	}{
		{kafkaconf.TLSFiles{CAFile: filepath.Join(dir, "missing.pem")}, "missing.pem: no such file"},
		{kafkaconf.TLSFiles{CAFile: junk}, "junk.pem: no PEM certificate"},
		{kafkaconf.TLSFiles{CertFile: cert}, "without its key file"},
		{kafkaconf.TLSFiles{KeyFile: key}, "without its certificate file"},
		{kafkaconf.TLSFiles{CertFile: cert, KeyFile: junk}, "junk.pem"},
	} {
		if _, err := tc.f.Config(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.f, err, tc.want)
		}
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := kafkaconf.ReadSecretFile(write("nl", secret+"\n")); err != nil || s != secret {
		t.Errorf("with newline: %q %v", s, err)
	}
	if s, err := kafkaconf.ReadSecretFile(write("crlf", secret+"\r\n")); err != nil || s != secret {
		t.Errorf("with CRLF: %q %v", s, err)
	}
	if s, err := kafkaconf.ReadSecretFile(write("bare", " "+secret)); err != nil || s != " "+secret {
		t.Errorf("bare: %q %v", s, err)
	}
	if _, err := kafkaconf.ReadSecretFile(write("empty", "\n")); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty: %v", err)
	}
	if _, err := kafkaconf.ReadSecretFile(filepath.Join(dir, "none")); err == nil {
		t.Error("missing file read")
	}
}
