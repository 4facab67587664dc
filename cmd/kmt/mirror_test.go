package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
)

func TestMirrorCommandBadFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok := []string{"--source", "h:1", "--destination", "h:2", "--topics", "t"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--source is required"},
		{[]string{"--source", "h:1"}, "--destination is required"},
		{[]string{"--source", "h:1", "--destination", "h:2"}, "--topics is required"},
		{[]string{"--source", "nohost", "--destination", "h:2", "--topics", "t"}, "--source"},
		{[]string{"--source", "h:1", "--destination", "h", "--topics", "t"}, "--destination"},
		{[]string{"--source", "h:1", "--destination", "h:2", "--topics", "re:("}, "TopicRegex"},
		{[]string{"--source", "h:1", "--destination", "h:2", "--topics", "re:"}, "--topics re:"},
		{[]string{"--source", "h:1", "--destination", "h:2", "--topics", "a,re:b"}, "--topics re:b"},
		{append(ok, "--workers", "0"), "--workers 0"},
		{append(ok, "--workers", "many"), "workers"},
		{append(ok, "--group", ""), "--group"},
		{append(ok, "--mode", "reckless"), "--mode"},
		{append(ok, "--topic-prefix", "a b"), "--topic-prefix"},
		{append(ok, "--commit-interval", "0s"), "--commit-interval"},
		{append(ok, "--connect-timeout", "0s"), "--connect-timeout"},
		{append(ok, "--metrics-addr", "256.0.0.1:x"), "--metrics-addr"},
		{append(ok, "extra"), "unexpected argument"},
	} {
		expectUsage(ctx, t, tc.want, append([]string{"mirror"}, tc.args...)...)
	}
}

// TestMirrorCommand mirrors topics selected by a regular expression between
// two embedded clusters, scrapes the metrics while it runs, stops it with
// the context (as SIGINT does) and checks the destination's contents.
func TestMirrorCommand(t *testing.T) {
	src := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("source"))
	dst := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("destination"))

	// 100 records on each of two matching topics, 10 on one that is not.
	cfg, err := kafkaconf.Conn{Brokers: src.Addrs()}.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	adm, err := sarama.NewClusterAdmin(src.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	p, err := sarama.NewSyncProducer(src.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for topic, n := range map[string]int{"kmt-cli-a": 100, "kmt-cli-b": 100, "other": 10} {
		if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
		var msgs []*sarama.ProducerMessage
		for i := 0; i < n; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2),
				Key:     sarama.ByteEncoder(message.AppendKey(nil, uint32(i%2))),
				Value:   sarama.StringEncoder("v"),
				Headers: message.NewHeaders("cli", "r1", uint64(i/2), time.Now().UnixNano(), false)})
		}
		if err := p.SendMessages(msgs); err != nil {
			t.Fatal(err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		err error
		out string
	}
	done := make(chan result, 1)
	go func() {
		err, out := runKmt(ctx, t, "mirror", "--source", strings.Join(src.Addrs(), ","), "--destination", strings.Join(dst.Addrs(), ","),
			"--topics", "re:kmt-cli-.*", "--topic-prefix", "src.", "--metrics-addr", metricsAddr, "--commit-interval", "200ms")
		done <- result{err, out}
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case r := <-done:
			t.Fatalf("kmt mirror ended early: %v\n%s", r.err, r.out)
		case <-deadline:
			t.Fatal("kmt mirror did not replicate both topics within 60s")
		case <-time.After(100 * time.Millisecond):
		}
		body := mirrorScrape(t, "http://"+metricsAddr+"/metrics")
		if strings.Contains(body, `kmt_mirror_messages_total{topic="kmt-cli-a"} 100`) &&
			strings.Contains(body, `kmt_mirror_messages_total{topic="kmt-cli-b"} 100`) {
			if !strings.Contains(body, "kmt_mirror_workers 1") {
				t.Fatalf("metrics do not show one worker:\n%s", body)
			}
			break
		}
	}
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("kmt mirror did not stop within 30s of its context ending")
	}
	if r.err != nil {
		t.Fatalf("kmt mirror: %v", r.err)
	}
	if !strings.Contains(r.out, "200 records replicated") {
		t.Errorf("summary does not say 200 records replicated:\n%s", r.out)
	}
	dcfg, _ := kafkaconf.Conn{Brokers: dst.Addrs()}.Sarama()
	client, err := sarama.NewClient(dst.Addrs(), dcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"src.kmt-cli-a", "src.kmt-cli-b"} {
		var total int64
		for p := int32(0); p < 2; p++ {
			hwm, err := client.GetOffset(want, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatalf("%s/%d: %v", want, p, err)
			}
			total += hwm
		}
		if total != 100 {
			t.Errorf("destination %s holds %d records, want 100", want, total)
		}
	}
	for _, topic := range topics {
		if strings.Contains(topic, "other") {
			t.Errorf("topic %s outside --topics was mirrored", topic)
		}
	}
}

func mirrorScrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return ""
	}
	return string(b)
}
