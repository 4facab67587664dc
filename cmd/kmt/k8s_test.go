package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// k8sConns parses args as `kmt controller run` flags of the kubernetes
// target and returns the Kafka connections k8sKafkaConns builds from them.
func k8sConns(t *testing.T, args ...string) (src, dst kafkaconf.Conn, err error) {
	t.Helper()
	app := &cli.App{Name: "kmt", Commands: []*cli.Command{{
		Name: "run", Flags: k8sTargetFlags(),
		Action: func(c *cli.Context) error {
			src, dst, err = k8sKafkaConns(c)
			return nil
		},
	}}}
	if e := app.Run(append([]string{"kmt", "run"}, args...)); e != nil {
		t.Fatalf("parse %v: %v", args, e)
	}
	return src, dst, err
}

// TestK8sTargetSecuredKafka gives the kubernetes target's admin
// connections mutual TLS and SASL by flag and checks they reach a secured
// embedded cluster, and that a wrong password fails fast.
func TestK8sTargetSecuredKafka(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "kmt-controller")
	c := securedCluster(t, pki)
	addr := c.Addrs()[0]
	secured := func(prefix, password string) []string {
		return []string{"--" + prefix + "bootstrap", addr, "--" + prefix + "tls-ca-file", pki.CAFile,
			"--" + prefix + "tls-cert-file", cert, "--" + prefix + "tls-key-file", key,
			"--" + prefix + "sasl-mechanism", kafkaconf.ScramSHA512, "--" + prefix + "sasl-username", "kmt",
			"--" + prefix + "sasl-password", password}
	}
	src, dst, err := k8sConns(t, append(secured(k8sSourcePrefix, testPassword), secured(k8sDestinationPrefix, testPassword)...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, conn := range map[string]kafkaconf.Conn{"source": src, "destination": dst} {
		if conn.TLS == nil || conn.SASL.Mechanism != kafkaconf.ScramSHA512 {
			t.Fatalf("%s: TLS %v SASL %q", name, conn.TLS != nil, conn.SASL.Mechanism)
		}
		cfg, err := conn.Sarama()
		if err != nil {
			t.Fatal(err)
		}
		client, err := kafkaconf.Connect(ctx, conn, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(client.Brokers()) != 1 {
			t.Errorf("%s: %d brokers in the metadata, want 1", name, len(client.Brokers()))
		}
		client.Close()
	}

	src, _, err = k8sConns(t, secured(k8sSourcePrefix, "Xq9-not-it")...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := src.Sarama()
	start := time.Now()
	if client, err := kafkaconf.Connect(ctx, src, cfg); err == nil {
		client.Close()
		t.Fatal("connected with a wrong password")
	} else if strings.Contains(err.Error(), "Xq9-not-it") {
		t.Fatalf("the error reveals the password: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a wrong password took %v to fail", d)
	}
}

func TestK8sTargetKafkaFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--k8s-source-tls-ca-file", "ca.pem"}, "--k8s-source-tls-ca-file needs --k8s-source-bootstrap"},
		{[]string{"--k8s-destination-sasl-mechanism", "PLAIN"}, "--k8s-destination-sasl-mechanism needs --k8s-destination-bootstrap"},
		{[]string{"--k8s-destination-bootstrap", "h:1", "--k8s-destination-sasl-mechanism", "PLAIN", "--k8s-destination-sasl-password", testPassword},
			"--k8s-destination-sasl-username is required"},
		{[]string{"--k8s-source-bootstrap", "h:1", "--k8s-source-tls-key-file", "k.pem"}, "--k8s-source-tls-cert-file and --k8s-source-tls-key-file go together"},
		{[]string{"--k8s-source-bootstrap", "nocolon"}, "--k8s-source-bootstrap"},
	} {
		_, _, err := k8sConns(t, tc.args...)
		if exit.Code(err) != exit.Usage || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: exit %d, error %v; want exit 2 saying %q", tc.args, exit.Code(err), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), testPassword) {
			t.Errorf("%v: error reveals the password: %v", tc.args, err)
		}
	}
	src, dst, err := k8sConns(t)
	if err != nil || len(src.Brokers) != 0 || len(dst.Brokers) != 0 {
		t.Fatalf("no Kafka flags: %+v %+v %v", src, dst, err)
	}
}
