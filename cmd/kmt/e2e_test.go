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
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestProduceConsumeEndToEnd runs `kmt produce` then `kmt consume` against
// the Kafka in KMT_TEST_BROKERS (host:port,...) when set, otherwise against
// an embedded cluster, and checks the consumer's accounting against the
// topic read back with another client.
func TestProduceConsumeEndToEnd(t *testing.T) {
	brokers := os.Getenv("KMT_TEST_BROKERS")
	rf := "-1"
	if brokers == "" {
		c, err := embedded.Start(embedded.Brokers(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		brokers = strings.Join(c.Addrs(), ",")
	} else {
		t.Logf("running against KMT_TEST_BROKERS=%s", brokers)
	}
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
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep consumer.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
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
