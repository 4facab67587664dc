package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
)

func TestConsumeCommandBadFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--bootstrap-servers is required"},
		{[]string{"--bootstrap-servers", "localhost"}, "--bootstrap-servers"},
		{[]string{"--bootstrap-servers", "h:1", "--topics", "no spaces"}, "--topics"},
		{[]string{"--bootstrap-servers", "h:1", "--topics", "a,a"}, "--topics"},
		{[]string{"--bootstrap-servers", "h:1", "--topic-prefix", "a/b"}, "--topic-prefix"},
		{[]string{"--bootstrap-servers", "h:1", "--group", ""}, "--group"},
		{[]string{"--bootstrap-servers", "h:1", "--loss-grace", "0s"}, "--loss-grace"},
		{[]string{"--bootstrap-servers", "h:1", "--loss-grace", "soon"}, "loss-grace"},
		{[]string{"--bootstrap-servers", "h:1", "--max-streams", "0"}, "--max-streams"},
		{[]string{"--bootstrap-servers", "h:1", "--duration", "-1s"}, "--duration"},
		{[]string{"--bootstrap-servers", "h:1", "--connect-timeout", "0s"}, "--connect-timeout"},
		{[]string{"--bootstrap-servers", "h:1", "--id", "a;b"}, "--id"},
		{[]string{"--bootstrap-servers", "h:1", "--metrics-addr", "256.0.0.1:x"}, "--metrics-addr"},
		{[]string{"--bootstrap-servers", "h:1", "--no-such-flag"}, "no-such-flag"},
		{[]string{"--bootstrap-servers", "h:1", "extra"}, "unexpected argument"},
	} {
		expectUsage(ctx, t, tc.want, append([]string{"consume"}, tc.args...)...)
	}
}

// TestConsumeCommandRun consumes a topic renamed by a replicator
// ("src." prefix) with one dropped message and a foreign record, for a
// fixed duration, and checks the summary and the JSON report.
func TestConsumeCommandRun(t *testing.T) {
	cl := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("destination"))
	conn := kafkaconf.Conn{Brokers: cl.Addrs(), ConnectTimeout: 10 * time.Second}
	cfg, err := conn.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(cl.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic("src.orders", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	prod, err := sarama.NewSyncProducer(cl.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for n := uint64(0); n < 100; n++ {
		if n == 41 {
			continue // key 1, seq 20
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: "src.orders", Partition: int32(n % 2),
			Key: sarama.ByteEncoder(message.AppendKey(nil, uint32(n%2))), Value: sarama.ByteEncoder(make([]byte, 100)),
			Headers: message.NewHeaders("cli", "r1", n/2, time.Now().UnixNano(), false)})
	}
	for k := uint32(0); k < 2; k++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: "src.orders", Partition: int32(k),
			Key: sarama.ByteEncoder(message.AppendKey(nil, k)), Value: sarama.ByteEncoder(nil),
			Headers: message.NewHeaders("cli", "r1", 50, time.Now().UnixNano(), true)})
	}
	msgs = append(msgs, &sarama.ProducerMessage{Topic: "src.orders", Partition: 0, Value: sarama.StringEncoder("not kmt")})
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err, out := runKmt(ctx, t, "consume", "--bootstrap-servers", strings.Join(cl.Addrs(), ","),
		"--topics", "orders", "--topic-prefix", "src.", "--group", "cli-test", "--id", "cli-consumer",
		"--duration", "4s", "--metrics-addr", "127.0.0.1:0", "--report-json", path)
	if err != nil {
		t.Fatalf("kmt consume: %v\n%s", err, out)
	}
	for _, want := range []string{"consumer cli-consumer", "orders", "total", "foreign records by reason: bad_key 1", "end-to-end latency (99 messages)"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	rep := readConsumerReport(t, path)
	tot := rep.Totals
	if tot.Received != 99 || tot.Lost != 1 || tot.Foreign != 1 || tot.EndMarkers != 2 || tot.Streams != 2 || tot.Duplicates != 0 {
		t.Fatalf("report totals %+v\n%s", tot, out)
	}
	if s := rep.Streams[1]; s.Stream.Topic != "orders" || s.Lost.String() != "20" {
		t.Fatalf("stream %+v", s)
	}
}
