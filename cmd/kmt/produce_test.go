package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// runKmt runs the kmt app with args and returns its error and stdout.
func runKmt(ctx context.Context, t *testing.T, args ...string) (error, string) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = io.Discard
	err := app.RunContext(ctx, append([]string{"kmt"}, args...))
	return err, out.String()
}

// expectUsage runs kmt with args and fails the test unless it ends with
// exit code 2 and an error saying want.
func expectUsage(ctx context.Context, t *testing.T, want string, args ...string) {
	t.Helper()
	err, _ := runKmt(ctx, t, args...)
	if code := exit.Code(err); code != exit.Usage || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("kmt %v: exit %d, error %v; want exit 2 saying %q", args, code, err, want)
	}
}

func TestProduceCommandBadFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--bootstrap-servers is required"},
		{[]string{"--bootstrap-servers", "localhost"}, "--bootstrap-servers"},
		{[]string{"--bootstrap-servers", "h:1", "--rate", "-5"}, "--rate -5"},
		{[]string{"--bootstrap-servers", "h:1", "--rate", "fast"}, "rate"},
		{[]string{"--bootstrap-servers", "h:1", "--acks", "2"}, "--acks 2"},
		{[]string{"--bootstrap-servers", "h:1", "--message-size", "0"}, "--message-size 0"},
		{[]string{"--bootstrap-servers", "h:1", "--headers=false", "--message-size", "20"}, "--message-size 20"},
		{[]string{"--bootstrap-servers", "h:1", "--partitions", "3", "--keys", "4"}, "--keys 4"},
		{[]string{"--bootstrap-servers", "h:1", "--id", "a/b"}, "--id a/b"},
		{[]string{"--bootstrap-servers", "h:1", "--topics", "no spaces"}, "--topics no spaces"},
		{[]string{"--bootstrap-servers", "h:1", "--idempotent", "--acks", "1"}, "--acks 1"},
		{[]string{"--bootstrap-servers", "h:1", "--duration", "-1s"}, "--duration -1s"},
		{[]string{"--bootstrap-servers", "h:1", "--connect-timeout", "0s"}, "--connect-timeout"},
		{[]string{"--bootstrap-servers", "h:1", "--create-topics", "--replication-factor", "0"}, "--replication-factor 0"},
		{[]string{"--bootstrap-servers", "h:1", "--create-topics", "--keys", "4"}, "--keys 4"},
		{[]string{"--bootstrap-servers", "h:1", "--metrics-addr", "256.0.0.1:x"}, "--metrics-addr"},
		{[]string{"--bootstrap-servers", "h:1", "extra"}, "unexpected argument"},
	} {
		expectUsage(ctx, t, tc.want, append([]string{"produce"}, tc.args...)...)
	}
}

// TestProduceCommand runs kmt produce against an embedded cluster with topic
// creation and a metrics endpoint, scrapes the endpoint while it runs, and
// checks the summary against the topic's contents.
func TestProduceCommand(t *testing.T) {
	c := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("source"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		err error
		out string
	}
	done := make(chan result, 1)
	go func() {
		err, out := runKmt(ctx, t, "produce", "--bootstrap-servers", strings.Join(c.Addrs(), ","),
			"--topics", "cli1,cli2", "--create-topics", "--partitions", "2", "--replication-factor", "1",
			"--rate", "200", "--duration", "1500ms", "--id", "cli", "--metrics-addr", metricsAddr, "--headers=false")
		done <- result{err, out}
	}()
	var scraped string
	for scraped == "" {
		select {
		case r := <-done:
			t.Fatalf("kmt produce ended before its metrics were scraped: %v\n%s", r.err, r.out)
		case <-ctx.Done():
			t.Fatal("metrics never showed the producer up")
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `kmt_producer_up{producer="cli"} 1`) {
			scraped = string(b)
		}
	}
	for _, want := range []string{`kmt_producer_target_rate{topic="cli1"} 200`, `kmt_producer_messages_sent_total{topic="cli2"}`} {
		if !strings.Contains(scraped, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("kmt produce: %v", r.err)
	}
	// 1.5 s at 200/s = 300 per topic, 2 keys each.
	flat := strings.Join(strings.Fields(r.out), " ")
	for _, want := range []string{"cli1 2 2 300 300 0 0 2/2", "cli2 2 2 300 300 0 0 2/2", "total 600 600 0 0 4/4", "ack latency from scheduled send (600 acks)"} {
		if !strings.Contains(flat, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.out)
		}
	}
	// The topic holds what the summary says.
	conn := kafkaconf.Conn{Brokers: c.Addrs()}
	sc, _ := conn.Sarama()
	client, err := sarama.NewClient(conn.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var total int64
	for _, p := range []int32{0, 1} {
		hwm, err := client.GetOffset("cli1", p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		total += hwm
	}
	if total != 302 { // 300 data messages + 2 end markers
		t.Errorf("topic cli1 holds %d records, want 302", total)
	}
}
