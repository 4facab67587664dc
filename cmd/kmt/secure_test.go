package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/producer"
)

// testPassword is the SASL password of the secured test clusters; no output
// of kmt may contain it.
const testPassword = "kmt-Pa55-w0rd"

// securedCluster starts a one-broker cluster that requires mutual TLS with
// certificates of pki and SASL, with user "kmt" for every mechanism.
func securedCluster(t *testing.T, pki *kafkatest.PKI) *embedded.Cluster {
	t.Helper()
	opts := []embedded.Option{embedded.Brokers(1), embedded.TLS(pki.ServerTLS(t, true))}
	for _, m := range kafkaconf.Mechanisms() {
		opts = append(opts, embedded.SASLUser(m, "kmt", testPassword))
	}
	c := kafkatest.Embedded(t, opts...)
	return c
}

// TestSecuredProduceConsume runs kmt produce and kmt consume over mutual
// TLS with each SASL mechanism, the password given once by flag, once by
// environment variable and once by file, and checks that the consumer
// received exactly what the producer had acknowledged.
func TestSecuredProduceConsume(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "kmt-client")
	c := securedCluster(t, pki)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(testPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mech     string
		password []string // flags giving the password
		env      string   // or KMT_SASL_PASSWORD
	}{
		{kafkaconf.Plain, []string{"--sasl-password", testPassword}, ""},
		{kafkaconf.ScramSHA256, nil, testPassword},
		{kafkaconf.ScramSHA512, []string{"--sasl-password-file", pwFile}, ""},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("KMT_SASL_PASSWORD", tc.env)
			}
			topic := "secured-" + strings.ToLower(tc.mech)
			security := append([]string{"--bootstrap-servers", strings.Join(c.Addrs(), ","),
				"--tls-ca-file", pki.CAFile, "--tls-cert-file", cert, "--tls-key-file", key,
				"--sasl-mechanism", strings.ToLower(tc.mech), "--sasl-username", "kmt", "--connect-timeout", "10s"}, tc.password...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err, out := runKmt(ctx, t, append([]string{"produce", "--topics", topic, "--create-topics", "--partitions", "2",
				"--replication-factor", "1", "--rate", "200", "--duration", "1s", "--id", "secured"}, security...)...)
			if err != nil {
				t.Fatalf("kmt produce: %v\n%s", err, out)
			}
			if flat := strings.Join(strings.Fields(out), " "); !strings.Contains(flat, "total 200 200 0 0 2/2") {
				t.Fatalf("producer summary:\n%s", out)
			}
			report := filepath.Join(t.TempDir(), "report.json")
			err, out = runKmt(ctx, t, append([]string{"consume", "--topics", topic, "--group", topic, "--duration", "4s",
				"--metrics-addr", "", "--report-json", report}, security...)...)
			if err != nil {
				t.Fatalf("kmt consume: %v\n%s", err, out)
			}
			raw, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			var rep consumer.Report
			if err := json.Unmarshal(raw, &rep); err != nil {
				t.Fatal(err)
			}
			if tot := rep.Totals; tot.Received != 200 || tot.Lost != 0 || tot.Duplicates != 0 || tot.EndMarkers != 2 || tot.Streams != 2 || tot.Foreign != 0 {
				t.Fatalf("consumer totals %+v, want 200 received on 2 streams, 2 end markers, nothing lost", tot)
			}
			if strings.Contains(out, testPassword) {
				t.Error("consumer output contains the password")
			}
		})
	}
}

// TestSecuredRejectedExit2 runs kmt as a separate process against a cluster
// requiring mutual TLS and SCRAM: a wrong password, an untrusted broker
// certificate and a missing client certificate each end it within seconds
// (its connect timeout is 30s) with exit 2 and a message saying what is
// wrong, and no output, at debug log level, contains a password.
func TestSecuredRejectedExit2(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	impostor := kafkatest.NewPKI(t, "impostor")
	cert, key := pki.Issue(t, "kmt-client")
	c := securedCluster(t, pki)
	const wrong = "not-the-Pa55-w0rd"
	brokers := strings.Join(c.Addrs(), ",")
	clientCert := []string{"--tls-cert-file", cert, "--tls-key-file", key}
	scram := []string{"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "kmt"}
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"produce wrong password", append(append([]string{"produce", "--topics", "t", "--tls-ca-file", pki.CAFile}, clientCert...), scram...),
			[]string{"KMT_SASL_PASSWORD=" + wrong}, "SASL authentication failed"},
		{"consume wrong password", append(append([]string{"consume", "--topics", "t", "--metrics-addr", "", "--tls-ca-file", pki.CAFile}, clientCert...),
			"--sasl-mechanism", "PLAIN", "--sasl-username", "kmt", "--sasl-password", wrong),
			nil, "SASL authentication failed"},
		{"untrusted broker certificate", append(append([]string{"produce", "--topics", "t", "--tls-ca-file", impostor.CAFile}, clientCert...), scram...),
			[]string{"KMT_SASL_PASSWORD=" + testPassword}, "not signed by a trusted CA"},
		{"missing client certificate", append([]string{"consume", "--topics", "t", "--metrics-addr", "", "--tls-ca-file", pki.CAFile}, scram...),
			[]string{"KMT_SASL_PASSWORD=" + testPassword}, "requires a client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"--log-level", "debug", tc.args[0], "--bootstrap-servers", brokers, "--connect-timeout", "30s"}, tc.args[1:]...)
			r := runKmtProcess(ctx, t, tc.env, args...)
			if r.code != exit.Usage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 saying %q", r.code, r.stderr, tc.want)
			}
			if r.took > 10*time.Second {
				t.Errorf("took %v with a 30s connect timeout: retried instead of failing fast", r.took)
			}
			for _, pw := range []string{testPassword, wrong} {
				if strings.Contains(r.stdout+r.stderr, pw) {
					t.Errorf("output contains a password:\n%s%s", r.stdout, r.stderr)
				}
			}
		})
	}
}

// TestSecuredProduceProcessHidesPassword runs a successful kmt produce
// process at debug log level with the password in a file and checks that
// nothing it prints contains the password.
func TestSecuredProduceProcessHidesPassword(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "kmt-client")
	c := securedCluster(t, pki)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(testPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := runKmtProcess(ctx, t, nil, "--log-level", "debug", "produce", "--bootstrap-servers", strings.Join(c.Addrs(), ","),
		"--topics", "hidden", "--create-topics", "--replication-factor", "1", "--partitions", "1", "--rate", "100", "--duration", "500ms",
		"--tls-ca-file", pki.CAFile, "--tls-cert-file", cert, "--tls-key-file", key,
		"--sasl-mechanism", "SCRAM-SHA-512", "--sasl-username", "kmt", "--sasl-password-file", pwFile)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "sasl SCRAM-SHA-512 user kmt") {
		t.Errorf("logs do not say how kmt connected:\n%s", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, testPassword) {
		t.Errorf("output contains the password:\n%s%s", r.stdout, r.stderr)
	}
}

func TestConnFlagsBadValues(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(testPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--sasl-mechanism", "GSSAPI", "--sasl-username", "u", "--sasl-password", testPassword}, `--sasl-mechanism: SASL mechanism "GSSAPI" is not supported`},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-password", testPassword}, "--sasl-username is required"},
		{[]string{"--sasl-mechanism", "SCRAM-SHA-256", "--sasl-username", "u"}, "needs a password: --sasl-password-file, --sasl-password or the environment variable KMT_SASL_PASSWORD"},
		{[]string{"--sasl-username", "u", "--sasl-password", testPassword}, "--sasl-mechanism is required"},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password", testPassword, "--sasl-password-file", pw}, "one way only"},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-file", missing}, "--sasl-password-file: read secret file"},
		{[]string{"--sasl-mechanism", "PLAIN", "--sasl-username", "u", "--sasl-password-file", empty}, "--sasl-password-file: secret file " + empty + " is empty"},
		{[]string{"--tls-cert-file", pw}, "--tls-cert-file and --tls-key-file go together"},
		{[]string{"--tls-ca-file", missing}, "--tls-ca-file: TLS CA file"},
		{[]string{"--tls-ca-file", pw}, "--tls-ca-file: TLS CA file " + pw + ": no PEM certificate"},
		{[]string{"--tls-cert-file", pw, "--tls-key-file", pw}, "--tls-cert-file: TLS client certificate"},
		{[]string{"--tls-insecure-skip-verify", "--tls-ca-file", pw}, "--tls-insecure-skip-verify: certificates are not verified"},
		{[]string{"--tls=false", "--tls-server-name", "kafka"}, "--tls=false contradicts"},
	} {
		for _, cmd := range []string{"produce", "consume"} {
			err, _ := runKmt(ctx, t, append([]string{cmd, "--bootstrap-servers", "h:1"}, tc.args...)...)
			if code := exit.Code(err); code != exit.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("kmt %s %v: exit %d, error %v; want exit 2 saying %q", cmd, tc.args, code, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), testPassword) {
				t.Errorf("kmt %s %v: error reveals the password: %v", cmd, tc.args, err)
			}
		}
	}
	// kmt mirror names the side.
	mirror := []string{"mirror", "--source", "h:1", "--destination", "h:2", "--topics", "t"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--source-sasl-mechanism", "PLAIN", "--source-sasl-password", testPassword}, "--source-sasl-username is required"},
		{[]string{"--destination-sasl-mechanism", "SCRAM-SHA-1", "--destination-sasl-username", "u"}, "--destination-sasl-mechanism"},
		{[]string{"--destination-tls-key-file", pw}, "--destination-tls-cert-file and --destination-tls-key-file go together"},
		{[]string{"--destination-sasl-mechanism", "PLAIN", "--destination-sasl-username", "u"}, "KMT_DESTINATION_SASL_PASSWORD"},
	} {
		expectUsage(ctx, t, tc.want, append(mirror, tc.args...)...)
	}
}

// TestSecuredMirror runs kmt mirror between two secured clusters with
// different settings on each side (mutual TLS and SCRAM-SHA-256 on the
// source, TLS and SCRAM-SHA-512 on the destination, one password from the
// environment and one from a file) and checks the destination, read back
// over TLS and SASL by another client, holds every message. With a wrong
// destination password kmt mirror exits 2 within seconds.
func TestSecuredMirror(t *testing.T) {
	srcPKI, dstPKI := kafkatest.NewPKI(t, "source-ca"), kafkatest.NewPKI(t, "destination-ca")
	cert, key := srcPKI.Issue(t, "kmt-mirror")
	const srcPass, dstPass = "source-Pa55", "destination-Pa55"
	src := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("source"), embedded.TLS(srcPKI.ServerTLS(t, true)),
		embedded.SASLUser(kafkaconf.ScramSHA256, "mirror", srcPass), embedded.SASLUser(kafkaconf.ScramSHA256, "producer", srcPass))
	dst := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("destination"), embedded.TLS(dstPKI.ServerTLS(t, false)),
		embedded.SASLUser(kafkaconf.ScramSHA512, "mirror", dstPass))
	srcTLS, err := kafkaconf.TLSFiles{CAFile: srcPKI.CAFile, CertFile: cert, KeyFile: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	dstTLS, err := kafkaconf.TLSFiles{CAFile: dstPKI.CAFile}.Config()
	if err != nil {
		t.Fatal(err)
	}

	// 200 kmt messages and their end markers in the source.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srcConn := kafkaconf.Conn{Brokers: src.Addrs(), ConnectTimeout: 10 * time.Second, TLS: srcTLS,
		SASL: kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA256, User: "producer", Password: srcPass}}
	if err := producer.EnsureTopics(ctx, srcConn, []string{"kmt-secure"}, 2, 1, 0); err != nil {
		t.Fatal(err)
	}
	p, err := producer.New(srcConn, producer.Config{ID: "secure", Topics: []string{"kmt-secure"}, Messages: 200, MessageSize: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}

	pwFile := filepath.Join(t.TempDir(), "destination-password")
	if err := os.WriteFile(pwFile, []byte(dstPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"mirror", "--source", strings.Join(src.Addrs(), ","), "--destination", strings.Join(dst.Addrs(), ","),
		"--topics", "kmt-secure", "--metrics-addr", "", "--connect-timeout", "30s",
		"--source-tls-ca-file", srcPKI.CAFile, "--source-tls-cert-file", cert, "--source-tls-key-file", key,
		"--source-sasl-mechanism", "SCRAM-SHA-256", "--source-sasl-username", "mirror",
		"--destination-tls-ca-file", dstPKI.CAFile, "--destination-sasl-mechanism", "SCRAM-SHA-512", "--destination-sasl-username", "mirror"}

	t.Run("wrong destination password", func(t *testing.T) {
		r := runKmtProcess(ctx, t, []string{"KMT_SOURCE_SASL_PASSWORD=" + srcPass, "KMT_DESTINATION_SASL_PASSWORD=wrong-" + dstPass}, args...)
		if r.code != exit.Usage || !strings.Contains(r.stderr, "SASL authentication failed") || r.took > 10*time.Second {
			t.Errorf("exit %d after %v, stderr:\n%s\nwant exit 2 within seconds saying SASL authentication failed", r.code, r.took, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, dstPass) || strings.Contains(r.stdout+r.stderr, srcPass) {
			t.Error("output contains a password")
		}
	})

	t.Setenv("KMT_SOURCE_SASL_PASSWORD", srcPass)
	mctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		err, _ := runKmt(mctx, t, append(args, "--destination-sasl-password-file", pwFile)...)
		done <- err
	}()
	dstOpts := kafkatest.Secured(dstTLS, kafkaconf.ScramSHA512, "mirror", dstPass)
	var tr *kafkatest.Truth
	for deadline := time.Now().Add(60 * time.Second); ; {
		tr = kafkatest.ReadTopic(t, dst.Addrs(), "kmt-secure", 300*time.Millisecond, dstOpts...)
		if tr.Records >= 202 || time.Now().After(deadline) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("kmt mirror ended early: %v", err)
		default:
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("kmt mirror: %v", err)
	}
	unique, dups, reordered, missing := tr.Counts()
	if unique != 200 || dups != 0 || reordered != 0 || len(missing) != 0 || len(tr.Ends) != 2 || tr.Foreign != 0 {
		t.Errorf("destination holds %d unique, %d duplicates, %d reordered, missing %v, %d end markers, %d foreign; want 200 and 2 end markers",
			unique, dups, reordered, missing, len(tr.Ends), tr.Foreign)
	}
}
