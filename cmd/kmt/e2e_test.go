package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestProduceConsumeEndToEnd runs `kmt produce` then `kmt consume` against
// the Kafka in KMT_TEST_BROKERS (host:port,...) when set, otherwise against
// an embedded cluster, and checks the consumer's accounting against the
// topic read back with another client.
func TestProduceConsumeEndToEnd(t *testing.T) {
	addrs, _ := kafkatest.Brokers(t, 3)
	brokers := strings.Join(addrs, ",")
	rf := "-1"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("kmt-e2e-%08x", rand.Uint32())
	err, out := runKmt(ctx, t, "produce", "--bootstrap-servers", brokers, "--topics", topic, "--create-topics",
		"--partitions", "3", "--replication-factor", rf, "--rate", "500", "--duration", "2s", "--id", "e2e")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	report := filepath.Join(t.TempDir(), "consumer.json")
	err, out = runKmt(ctx, t, "consume", "--bootstrap-servers", brokers, "--topics", topic, "--group", topic,
		"--duration", "6s", "--metrics-addr", "", "--report-json", report)
	if err != nil {
		t.Fatalf("consume: %v\n%s", err, out)
	}
	rep := readConsumerReport(t, report)
	tr := kafkatest.ReadTopic(t, strings.Split(brokers, ","), topic, time.Second)
	unique, dups, reordered, missing := tr.Counts()
	if unique < 900 || len(missing) != 0 || dups != 0 || reordered != 0 {
		t.Fatalf("read back: unique %d dups %d reordered %d missing %v", unique, dups, reordered, missing)
	}
	tot := rep.Totals
	if tot.Received != uint64(unique) || tot.Duplicates != 0 || tot.Reordered != 0 || tot.Lost != 0 || tot.EndMarkers != 3 {
		t.Fatalf("consumer totals %+v, read back %d unique", tot, unique)
	}
}

// TestProduceMirrorConsumeEndToEnd runs the three commands a user points at
// a replicator, as separate runs of the CLI against one cluster (the Kafka
// in KMT_TEST_BROKERS when set, otherwise an embedded one): `kmt produce`
// writes a topic, `kmt mirror` copies it to copy.<topic> on the same
// cluster, and `kmt consume --topic-prefix copy.` validates the copy. The
// consumer's totals must equal what the copy holds, read back with another
// client, and the copy must hold every message the source holds.
func TestProduceMirrorConsumeEndToEnd(t *testing.T) {
	addrs, _ := kafkatest.Brokers(t, 3)
	brokers := strings.Join(addrs, ",")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	topic := fmt.Sprintf("kmt-e2e-mirror-%08x", rand.Uint32())
	copyTopic := "copy." + topic
	err, out := runKmt(ctx, t, "produce", "--bootstrap-servers", brokers, "--topics", topic, "--create-topics",
		"--partitions", "3", "--replication-factor", "-1", "--rate", "500", "--duration", "2s", "--id", "e2e-mirror")
	if err != nil {
		t.Fatalf("produce: %v\n%s", err, out)
	}
	source := kafkatest.ReadTopic(t, addrs, topic, time.Second)
	srcUnique, _, _, srcMissing := source.Counts()
	if srcUnique < 900 || len(srcMissing) != 0 || len(source.Ends) != 3 {
		t.Fatalf("source read back: %d unique, missing %v, %d end markers", srcUnique, srcMissing, len(source.Ends))
	}

	mctx, stopMirror := context.WithCancel(ctx)
	mirrored := make(chan error, 1)
	go func() {
		err, out := runKmt(mctx, t, "mirror", "--source", brokers, "--destination", brokers, "--topics", topic,
			"--topic-prefix", "copy.", "--group", topic+"-mirror", "--commit-interval", "200ms", "--metrics-addr", "")
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		mirrored <- err
	}()
	// Wait until the copy holds as many records as the source.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if n := kafkatest.Records(t, addrs, copyTopic); n >= int64(source.Records) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not reach %d records in 90s", copyTopic, source.Records)
		}
		time.Sleep(200 * time.Millisecond)
	}
	stopMirror()
	if err := <-mirrored; err != nil {
		t.Fatalf("mirror: %v", err)
	}

	report := filepath.Join(t.TempDir(), "consumer.json")
	err, out = runKmt(ctx, t, "consume", "--bootstrap-servers", brokers, "--topics", topic, "--topic-prefix", "copy.",
		"--group", topic+"-check", "--duration", "5s", "--metrics-addr", "", "--report-json", report)
	if err != nil {
		t.Fatalf("consume: %v\n%s", err, out)
	}
	rep := readConsumerReport(t, report)
	dest := kafkatest.ReadTopic(t, addrs, copyTopic, time.Second)
	unique, dups, reordered, missing := dest.Counts()
	if unique != srcUnique || len(missing) != 0 {
		t.Fatalf("copy read back: %d unique (source %d), missing %v", unique, srcUnique, missing)
	}
	tot := rep.Totals
	if tot.Received != uint64(unique) || tot.Duplicates != uint64(dups) || tot.Reordered != uint64(reordered) ||
		tot.Lost != 0 || tot.EndMarkers != 3 || tot.Foreign != 0 {
		t.Fatalf("consumer totals %+v; copy read back: %d unique, %d duplicates, %d reordered", tot, unique, dups, reordered)
	}
	for _, s := range rep.Streams {
		if s.Stream.Topic != topic {
			t.Fatalf("stream %+v: named after %q, want the source topic %q", s.Stream, s.Stream.Topic, topic)
		}
	}
}

// readConsumerReport reads the file `kmt consume --report-json` wrote.
func readConsumerReport(t *testing.T, path string) consumer.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep consumer.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rep
}
