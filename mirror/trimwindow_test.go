package mirror_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/mirror"
)

// TestTrimKeepsTheRecentWindow writes 60 records stamped ten minutes ago and
// 40 stamped now into one partition, lets the mirror commit past all of
// them, and trims with a one-minute window: exactly the 60 old records go,
// the 40 recent ones stay readable.
func TestTrimKeepsTheRecentWindow(t *testing.T) {
	src := startCluster(t, "source", 1)
	dst := startCluster(t, "destination", 1)
	topic := topicName(t)
	createTopic(t, src, topic, 1)
	old, now := time.Now().Add(-10*time.Minute), time.Now()
	var recs []*kgo.Record
	for i := range 100 {
		ts := now
		if i < 60 {
			ts = old
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Key: []byte(strconv.Itoa(i)), Value: []byte("v"), Timestamp: ts})
	}
	// Two produce calls, two batches: the embedded cluster looks timestamps
	// up per batch (inside a batch of mixed times it answers one record
	// early, which only keeps one more record).
	kafkatest.Produce(t, src.Addrs(), recs[:60]...)
	kafkatest.Produce(t, src.Addrs(), recs[60:]...)
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{Topics: []string{topic}, SessionTimeout: testSession,
		CommitInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runMirror(t, m)
	waitFor(t, 60*time.Second, "mirrored and committed", func() bool { return committed(t, src, "kmt-mirror", topic, 1) == 100 })
	stop()
	tr, err := mirror.NewTrimmer(context.Background(), conn(src))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	limit, err := tr.OlderThan([]string{topic}, time.Now().Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	n, err := tr.TrimBelow(context.Background(), "kmt-mirror", []string{topic}, limit)
	if err != nil || n != 60 {
		t.Fatalf("trimmed %d (%v), want the 60 records older than the window", n, err)
	}
	if c := count(t, src, topic); c != 40 {
		t.Fatalf("%d records left, want the 40 recent ones", c)
	}
}
