package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/syncbuf"
	"github.com/kmtproject/kmt/producer"
)

// hostileCluster starts a one-broker cluster with topic of 3 partitions.
func hostileCluster(t *testing.T, topic string) (*embedded.Cluster, kafkaconf.Conn) {
	t.Helper()
	c := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name("destination"))
	conn := kafkaconf.Conn{Brokers: c.Addrs(), ConnectTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := producer.EnsureTopics(ctx, conn, []string{topic}, 3, 1, 0); err != nil {
		t.Fatal(err)
	}
	return c, conn
}

// startConsumer runs a consumer of topic into ledger; stop (also called at
// the end of the test) stops it and waits until it has returned.
func startConsumer(t *testing.T, conn kafkaconf.Conn, topic string, ledger *consumer.Ledger) (cons *consumer.Consumer, stop func()) {
	t.Helper()
	cons, err := consumer.New(conn, consumer.Config{Topics: []string{topic}, Group: topic, ID: "validator"}, ledger, ledger.Metrics())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return cons, stop
}

// waitFor polls cond every 50ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heapAfterGC returns the live heap after a full collection.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestForeignFlood floods a topic with 100,000 records written by kcat (a
// client kmt did not write: librdkafka) while a kmt producer writes 3,000
// messages into it and a validating consumer reads it. Every foreign record
// is counted by reason, the kmt streams are validated exactly, and the
// ledger keeps nothing per foreign record: what it retains after the flood
// is a few hundred kilobytes at most.
func TestForeignFlood(t *testing.T) {
	kcat := kafkatest.Kcat(t)
	const topic = "flood"
	c, conn := hostileCluster(t, topic)
	ledger := consumer.NewLedger(nil, consumer.WithLossGrace(5*time.Second))
	cons, stop := startConsumer(t, conn, topic, ledger)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := producer.New(conn, producer.Config{ID: "kmt-flood", Topics: []string{topic}, Rate: 1000, Messages: 3000, Keys: 3, MessageSize: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	prodDone := make(chan error, 1)
	go func() { prodDone <- p.Run(ctx) }()

	// Four kinds of foreign records, 25,000 each, written concurrently
	// with the kmt messages.
	const perKind = 25000
	floods := []struct {
		reason string
		args   []string
		line   func(i int) string
	}{
		{"bad_key", nil, func(i int) string { return fmt.Sprintf("junk line %d from a client kmt did not write", i) }},
		{"no_metadata", []string{"-K", ":"}, func(i int) string { return fmt.Sprintf("%d:a keyed record without kmt headers", i%3) }},
		{"bad_sequence", []string{"-K", ":", "-H", "kmt=evil/r;NaN;1"},
			func(i int) string { return fmt.Sprintf("%d:forged sequence", i%3) }},
		{"bad_time", []string{"-K", ":", "-H", "kmt=evil/r;1;yesterday"},
			func(i int) string { return fmt.Sprintf("%d:forged timestamp", i%3) }},
	}
	var wg sync.WaitGroup
	for _, f := range floods {
		var in strings.Builder
		for i := 0; i < perKind; i++ {
			in.WriteString(f.line(i))
			in.WriteByte('\n')
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-P", "-b", strings.Join(c.Addrs(), ","), "-t", topic, "-X", "broker.address.family=v4"}, f.args...)
			cmd := exec.CommandContext(ctx, kcat, args...)
			cmd.Stdin = strings.NewReader(in.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("kcat %s: %v\n%s", f.reason, err, out)
			}
		}()
	}
	wg.Wait()
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	const foreign = 4 * perKind
	waitFor(t, 60*time.Second, "every record accounted", func() bool {
		c := ledger.Counters()
		return c.Received >= 3000 && c.EndMarkers >= 3 && c.Foreign >= foreign
	})

	// Ground truth: the topic read back with yet another client.
	tr := kafkatest.ReadTopic(t, c.Addrs(), topic, time.Second)
	var kmtData, kmtEnds int
	for s, arr := range tr.Streams {
		if s.Producer == "kmt-flood" {
			kmtData += len(arr)
		}
	}
	for s := range tr.Ends {
		if s.Producer == "kmt-flood" {
			kmtEnds++
		}
	}
	if got := tr.Records - kmtData - kmtEnds; got != foreign || kmtData != 3000 || kmtEnds != 3 {
		t.Fatalf("topic holds %d records: %d kmt data, %d end markers, %d others; want 3000, 3, %d", tr.Records, kmtData, kmtEnds, got, foreign)
	}

	rep := ledger.Report()
	tot := rep.Totals
	t.Logf("totals %+v; consumer accounted %d records", tot, cons.Records())
	if tot.Received != 3000 || tot.Lost != 0 || tot.Duplicates != 0 || tot.Reordered != 0 || tot.Gaps != 0 ||
		tot.Pending != 0 || tot.EndMarkers != 3 || tot.Streams != 3 || tot.Foreign != foreign || tot.Untracked != 0 {
		t.Errorf("totals %+v; want 3000 received on 3 streams, %d foreign, nothing else", tot, foreign)
	}
	for _, f := range floods {
		if n := tot.ForeignByReason[f.reason]; n != perKind {
			t.Errorf("foreign %s: %d, want %d", f.reason, n, perKind)
		}
	}
	for _, s := range rep.Streams {
		if s.Seen.String() != "0-999" || s.EndCount != 1000 {
			t.Errorf("%v: seen %s, end %d", s.Stream, s.Seen, s.EndCount)
		}
	}

	// Memory: the ledger retains nothing per foreign record.
	stop()
	withLedger := heapAfterGC()
	runtime.KeepAlive(ledger)
	without := heapAfterGC()
	if retained := int64(withLedger) - int64(without); retained > 1<<20 {
		t.Errorf("the ledger retains %d bytes after %d foreign records", retained, foreign)
	} else {
		t.Logf("the ledger retains %d bytes after %d foreign records", retained, foreign)
	}
}

// TestHostileProducerIDs writes a million records, each a valid kmt message
// of a new producer id, into a topic a consumer with a cap of 1000 streams
// validates. The consumer tracks 1000 streams and counts the rest as
// untracked (report, counters, kmt_consumer_untracked_messages_total) with
// one warning; the kmt streams it tracked before stay validated exactly;
// the producer label of the metrics keeps at most 100 values plus "other";
// and what the ledger retains stays in the megabytes, not the hundreds of
// megabytes a million streams would take.
func TestHostileProducerIDs(t *testing.T) {
	const topic, limit, hostile = "hostile", 1000, 1_000_000
	c, conn := hostileCluster(t, topic)
	logs := &syncbuf.Buffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() { slog.SetDefault(prev) })

	reg := prometheus.NewRegistry()
	ledger := consumer.NewLedger(consumer.NewMetrics(reg), consumer.WithMaxStreams(limit))
	_, stop := startConsumer(t, conn, topic, ledger)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := producer.New(conn, producer.Config{ID: "kmt-real", Topics: []string{topic}, Messages: 600, Keys: 3, MessageSize: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the kmt messages", func() bool { c := ledger.Counters(); return c.Received == 600 && c.EndMarkers == 3 })

	// The hostile writer: another client, a new producer id per record.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(100_000), kgo.ProducerBatchMaxBytes(1<<20), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	start := time.Now()
	ts := strconv.FormatInt(time.Now().UnixNano(), 10)
	var failed atomic.Int64
	for i := 0; i < hostile; i++ {
		key := i % 3
		rec := &kgo.Record{Topic: topic, Partition: int32(key), Key: []byte(strconv.Itoa(key)), Headers: []kgo.RecordHeader{
			{Key: "kmt", Value: []byte("hostile-" + strconv.Itoa(i) + "/r;0;" + ts)}}}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil || failed.Load() != 0 {
		t.Fatalf("hostile writer: %v, %d records failed", err, failed.Load())
	}
	t.Logf("wrote %d hostile records in %v", hostile, time.Since(start).Round(time.Millisecond))
	waitFor(t, 90*time.Second, "every hostile record accounted", func() bool {
		c := ledger.Counters()
		return c.Received+c.Untracked >= 600+hostile
	})
	stop()
	ledger.Sweep(time.Now())
	t.Logf("accounted in %v", time.Since(start).Round(time.Millisecond))

	rep := ledger.Report()
	tot := rep.Totals
	tracked := uint64(limit - 3) // the kmt producer's 3 streams came first
	if tot.Streams != limit || tot.Untracked != hostile-tracked || tot.Received != 600+tracked || tot.Lost != 0 || tot.Duplicates != 0 || tot.Foreign != 0 {
		t.Errorf("totals %+v; want %d streams, %d untracked, %d received", tot, limit, hostile-tracked, 600+tracked)
	}
	for _, s := range rep.Streams {
		if s.Stream.Producer == "kmt-real" && (s.Seen.String() != "0-199" || s.EndCount != 200 || !s.Lost.Empty()) {
			t.Errorf("kmt stream %v: seen %s, end %d, lost %s", s.Stream, s.Seen, s.EndCount, s.Lost)
		}
	}
	if n := strings.Count(logs.String(), "consumer stream limit reached"); n != 1 {
		t.Errorf("%d stream-limit warnings, want 1:\n%.2000s", n, logs.String())
	}
	if v := testutil.ToFloat64(ledger.Metrics().Untracked.WithLabelValues(topic)); v != float64(hostile-tracked) {
		t.Errorf("kmt_consumer_untracked_messages_total = %v, want %d", v, hostile-tracked)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		producers := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "producer" {
					producers[lp.GetValue()] = true
				}
			}
		}
		if len(producers) > consumer.MaxProducerLabels+1 {
			t.Errorf("%s has %d producer label values, want at most %d", mf.GetName(), len(producers), consumer.MaxProducerLabels+1)
		}
		if mf.GetName() == "kmt_consumer_messages_total" && (!producers[consumer.OtherProducer] || !producers["kmt-real"]) {
			t.Errorf("%s producer labels lack %q or kmt-real", mf.GetName(), consumer.OtherProducer)
		}
	}

	withLedger := heapAfterGC()
	runtime.KeepAlive(ledger)
	without := heapAfterGC()
	retained := int64(withLedger) - int64(without)
	t.Logf("the ledger retains %d bytes after %d hostile records", retained, hostile)
	if retained > 16<<20 {
		t.Errorf("the ledger retains %d bytes: state grows with the hostile producer ids", retained)
	}
}
