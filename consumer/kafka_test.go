package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// startCluster starts an embedded cluster, closed when the test ends.
func startCluster(t testing.TB, brokers int) *embedded.Cluster {
	t.Helper()
	return kafkatest.Embedded(t, embedded.Brokers(brokers), embedded.Name("destination"))
}

func testConn(c kafkatest.Cluster) kafkaconf.Conn {
	return kafkaconf.Conn{Brokers: c.Addrs(), ClientID: "kmt-test", ConnectTimeout: 10 * time.Second}
}

func createTopic(t testing.TB, c kafkatest.Cluster, topic string, partitions int32) {
	t.Helper()
	cfg, err := testConn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// newSyncProducer returns a plain sarama producer writing to explicit
// partitions, one request in flight so records keep their order.
func newSyncProducer(t testing.TB, c kafkatest.Cluster) sarama.SyncProducer {
	t.Helper()
	cfg, err := testConn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.MaxMessageBytes = 4 << 20
	p, err := sarama.NewSyncProducer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// kmtRecord builds a header-encoded kmt record.
func kmtRecord(topic string, part int32, producer, run string, key uint32, seq uint64, end bool, size int) *sarama.ProducerMessage {
	hs := message.NewHeaders(producer, run, seq, time.Now().UnixNano(), end)
	return &sarama.ProducerMessage{
		Topic: topic, Partition: part,
		Key:     sarama.ByteEncoder(message.AppendKey(nil, key)),
		Value:   sarama.ByteEncoder(make([]byte, size)),
		Headers: hs,
	}
}

func send(t testing.TB, p sarama.SyncProducer, msgs []*sarama.ProducerMessage) {
	t.Helper()
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("produce %d records: %v", len(msgs), err)
	}
}

// testConfig is a consumer config with fast group timings.
func testConfig(id string, topics ...string) Config {
	return Config{
		Topics: topics,
		Group:  "kmt-test",
		ID:     id,
		Tune: func(c *sarama.Config) {
			c.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
			c.Consumer.Group.Session.Timeout = 6 * time.Second
			c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
			c.Consumer.MaxWaitTime = 100 * time.Millisecond
		},
	}
}

// runConsumer starts a consumer in the background; the returned stop
// function cancels it and waits for Run to return.
func runConsumer(t testing.TB, c *Consumer) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("consumer %s: %v", c.ID(), err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("consumer %s did not stop", c.ID())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processed is how many records a ledger has looked at.
func processed(c Counters) uint64 {
	return c.Received + c.Duplicates + c.Foreign + c.EndMarkers + c.Rereads + c.Untracked
}

// truth is ground truth computed by reading a topic back with a plain
// sarama consumer and a map-based model, independently of the Tracker.
type truth struct {
	records int
	foreign int
	streams map[message.StreamID]*truthStream
}

type truthStream struct {
	arrived   map[uint64]bool
	maxSeen   uint64
	dups      int
	reordered int
	endCount  uint64
	hasEnd    bool
}

func (s *truthStream) seen() seqrange.Set {
	var out seqrange.Set
	for v := range s.arrived {
		out.Add(v)
	}
	return out
}

// lost is what must be declared lost once the grace expired: below the end
// marker's count (or the highest sequence seen) and never seen.
func (s *truthStream) lost() seqrange.Set {
	top := s.maxSeen
	if s.hasEnd {
		top = max(top, s.endCount)
	}
	all := seqrange.Of(seqrange.Range{Lo: 0, Hi: top})
	return all.Minus(s.seen())
}

func readBack(t testing.TB, c kafkatest.Cluster, topic, source string) truth {
	t.Helper()
	cfg, err := testConn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	defer client.Close()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	tr := truth{streams: map[message.StreamID]*truthStream{}}
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for msg := range pc.Messages() {
			tr.records++
			var m message.Meta
			if err := message.DecodeHeaders(msg.Key, msg.Headers, &m); err != nil {
				tr.foreign++
			} else {
				id := message.StreamID{Topic: source, Producer: string(m.Producer), Run: string(m.Run), Key: m.Key}
				s := tr.streams[id]
				if s == nil {
					s = &truthStream{arrived: map[uint64]bool{}}
					tr.streams[id] = s
				}
				switch {
				case m.End:
					s.hasEnd, s.endCount = true, max(s.endCount, m.Seq)
				case s.arrived[m.Seq]:
					s.dups++
				default:
					if m.Seq+1 < s.maxSeen { // a higher one came first
						s.reordered++
					}
					s.arrived[m.Seq] = true
					s.maxSeen = max(s.maxSeen, m.Seq+1)
				}
			}
			if msg.Offset == hwm-1 {
				break
			}
		}
		pc.Close()
	}
	return tr
}

// checkAgainstTruth compares a report with ground truth stream by stream.
func checkAgainstTruth(t *testing.T, rep Report, tr truth) {
	t.Helper()
	if len(rep.Streams) != len(tr.streams) {
		t.Errorf("report has %d streams, the topic %d", len(rep.Streams), len(tr.streams))
	}
	for _, s := range rep.Streams {
		want := tr.streams[s.Stream]
		if want == nil {
			t.Errorf("stream %v is not in the topic", s.Stream)
			continue
		}
		ws := want.seen()
		if s.Seen.String() != ws.String() {
			t.Errorf("%v: seen %s, topic has %s", s.Stream, s.Seen, ws.String())
		}
		if int(s.Duplicates) != want.dups || int(s.Reordered) != want.reordered {
			t.Errorf("%v: duplicates %d reordered %d, topic has %d and %d", s.Stream, s.Duplicates, s.Reordered, want.dups, want.reordered)
		}
		wl := want.lost()
		if s.Lost.String() != wl.String() {
			t.Errorf("%v: lost %s, topic says %s", s.Stream, s.Lost, wl.String())
		}
		if s.HasEnd != want.hasEnd || s.EndCount != want.endCount {
			t.Errorf("%v: end %v/%d, topic has %v/%d", s.Stream, s.HasEnd, s.EndCount, want.hasEnd, want.endCount)
		}
	}
}

// TestConsumeEndToEnd writes known records, including injected faults and
// foreign records, to a 4-partition topic; two consumers of one group
// account them in one ledger; the report must equal both the hand-computed
// expectations and the ground truth read back from the topic.
func TestConsumeEndToEnd(t *testing.T) {
	addrs, _ := kafkatest.Brokers(t, 3) // a real Kafka when KMT_TEST_BROKERS is set
	cl := kafkatest.BrokerList(addrs)
	src := fmt.Sprintf("orders-%08x", rand.Uint32())
	dst := "dst." + src
	createTopic(t, cl, dst, 4)
	prod := newSyncProducer(t, cl)

	// Producer p1/r1: K=8 keys (key k on partition k%4), 100 messages per
	// key, end markers with count 100. Injected:
	//   key 1: 10, 11, 12 and 50 dropped          -> 4 lost (2 gaps)
	//   key 2: 20..29 written twice               -> 10 duplicates
	//   key 3: 40 and 41 swapped                  -> 1 gap opened, 1 reordered
	//   key 5: tail 95..99 dropped                -> 5 lost (end marker)
	// Producer p2/r9: K=4, 30 per key, no end markers; key 0 seq 7 dropped
	// -> 1 lost after the loss grace.
	var msgs []*sarama.ProducerMessage
	drop := map[[2]uint64]bool{{1, 10}: true, {1, 11}: true, {1, 12}: true, {1, 50}: true}
	for s := uint64(95); s < 100; s++ {
		drop[[2]uint64{5, s}] = true
	}
	for n := uint64(0); n < 800; n++ {
		key, seq := n%8, n/8
		if drop[[2]uint64{key, seq}] {
			continue
		}
		if key == 3 && seq == 40 {
			continue // sent after 41
		}
		msgs = append(msgs, kmtRecord(dst, int32(key%4), "p1", "r1", uint32(key), seq, false, 100))
		if key == 3 && seq == 41 {
			msgs = append(msgs, kmtRecord(dst, 3, "p1", "r1", 3, 40, false, 100))
		}
		if key == 2 && seq == 29 {
			for d := uint64(20); d < 30; d++ {
				msgs = append(msgs, kmtRecord(dst, 2, "p1", "r1", 2, d, false, 100))
			}
		}
	}
	for k := uint32(0); k < 8; k++ {
		msgs = append(msgs, kmtRecord(dst, int32(k%4), "p1", "r1", k, 100, true, 0))
	}
	for n := uint64(0); n < 120; n++ {
		key, seq := n%4, n/4
		if key == 0 && seq == 7 {
			continue
		}
		msgs = append(msgs, kmtRecord(dst, int32(key), "p2", "r9", uint32(key), seq, false, 100))
	}
	// Foreign records: random bytes without a key, a key without headers, a
	// kmt header missing its timestamp, a bad sequence header, and an in-body
	// kmt message (the wrong encoding for this consumer).
	missing := []sarama.RecordHeader{{Key: []byte(message.Header), Value: []byte("p3/r;0")}}
	badSeq := []sarama.RecordHeader{{Key: []byte(message.Header), Value: []byte("p3/r;NaN;1")}}
	msgs = append(msgs,
		&sarama.ProducerMessage{Topic: dst, Partition: 0, Value: sarama.ByteEncoder([]byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x3b})},
		&sarama.ProducerMessage{Topic: dst, Partition: 1, Key: sarama.StringEncoder("3"), Value: sarama.StringEncoder("hello, world")},
		&sarama.ProducerMessage{Topic: dst, Partition: 2, Key: sarama.StringEncoder("2"), Value: sarama.StringEncoder("x"), Headers: missing},
		&sarama.ProducerMessage{Topic: dst, Partition: 3, Key: sarama.StringEncoder("3"), Value: sarama.StringEncoder("x"), Headers: badSeq},
		&sarama.ProducerMessage{Topic: dst, Partition: 0, Key: sarama.StringEncoder("0"),
			Value: sarama.ByteEncoder(message.AppendBody(nil, "p4", "r", 0, 1, 50, make([]byte, 50)))},
	)
	send(t, prod, msgs)
	written := uint64(len(msgs))

	l := NewLedger(nil, WithLossGrace(time.Second))
	var consumers []*Consumer
	for _, id := range []string{"c1", "c2"} {
		cfg := testConfig(id, src)
		cfg.TopicPrefix = "dst."
		cfg.Group = src
		c, err := New(testConn(cl), cfg, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, c)
		runConsumer(t, c)
	}
	waitFor(t, 60*time.Second, "every record accounted", func() bool { return processed(l.Counters()) >= written })
	// The loss grace (1s) declares p2's gap lost at a sweep.
	waitFor(t, 10*time.Second, "the loss grace to expire", func() bool { return l.Counters().InFlight == 0 })
	for _, c := range consumers {
		c.Close()
	}
	rep := l.Report()

	want := Totals{
		Received: 800 - 4 - 5 + 120 - 1, Duplicates: 10, Reordered: 1, Gaps: 2 + 1 + 1,
		Lost: 4 + 5 + 1, LostDeclared: 10, EndMarkers: 8, Foreign: 5, Streams: 12,
		ForeignByReason: map[string]uint64{"bad_key": 1, "no_metadata": 2, "bad_sequence": 1, "wrong_encoding": 1},
	}
	got := rep.Totals
	got.Rereads = 0 // checked below
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("totals\n got %+v\nwant %+v", rep.Totals, want)
	}
	if rep.Totals.Rereads != 0 {
		t.Logf("rereads %d (records processed again after a rebalance, skipped)", rep.Totals.Rereads)
	}
	byID := map[message.StreamID]StreamReport{}
	for _, s := range rep.Streams {
		byID[s.Stream] = s
	}
	id := func(p, r string, k uint32) message.StreamID {
		return message.StreamID{Topic: src, Producer: p, Run: r, Key: k}
	}
	for _, c := range []struct {
		id                    message.StreamID
		seen, lost            string
		dups, reordered, gaps uint64
	}{
		{id("p1", "r1", 0), "0-99", "", 0, 0, 0},
		{id("p1", "r1", 1), "0-9,13-49,51-99", "10-12,50", 0, 0, 2},
		{id("p1", "r1", 2), "0-99", "", 10, 0, 0},
		{id("p1", "r1", 3), "0-99", "", 0, 1, 1},
		{id("p1", "r1", 5), "0-94", "95-99", 0, 0, 0},
		{id("p2", "r9", 0), "0-6,8-29", "7", 0, 0, 1},
		{id("p2", "r9", 3), "0-29", "", 0, 0, 0},
	} {
		s, ok := byID[c.id]
		if !ok {
			t.Errorf("stream %v missing", c.id)
			continue
		}
		if s.Seen.String() != c.seen || s.Lost.String() != c.lost || s.Duplicates != c.dups || s.Reordered != c.reordered || s.Gaps != c.gaps {
			t.Errorf("%v: seen %s lost %s dups %d reordered %d gaps %d; want %s / %s / %d / %d / %d",
				c.id, s.Seen, s.Lost, s.Duplicates, s.Reordered, s.Gaps, c.seen, c.lost, c.dups, c.reordered, c.gaps)
		}
		if s.Adopted || !s.Pending.Empty() {
			t.Errorf("%v: adopted %v pending %s", c.id, s.Adopted, s.Pending)
		}
	}
	tr := readBack(t, cl, dst, src)
	if uint64(tr.records) != written || tr.foreign != 5 {
		t.Fatalf("read back %d records (%d foreign), wrote %d", tr.records, tr.foreign, written)
	}
	checkAgainstTruth(t, rep, tr)
	if consumers[0].Records()+consumers[1].Records() < written {
		t.Errorf("consumers accounted %d + %d records, fewer than the %d written", consumers[0].Records(), consumers[1].Records(), written)
	}
	if n := l.Latency().Total().Count; n != int64(rep.Totals.Received) {
		t.Errorf("latency recorded %d times for %d unique messages", n, rep.Totals.Received)
	}
}

// TestConsumeBodyEncoding reads in-body messages (the kafka-mirror-tester
// format) including malformed ones.
func TestConsumeBodyEncoding(t *testing.T) {
	cl := startCluster(t, 1)
	createTopic(t, cl, "plain", 2)
	prod := newSyncProducer(t, cl)
	var msgs []*sarama.ProducerMessage
	for n := uint64(0); n < 200; n++ {
		key, seq := uint32(n%2), n/2
		if key == 1 && seq == 60 {
			continue // dropped; the end marker declares it lost
		}
		v := message.AppendBody(nil, "bp", "run1", seq, time.Now().UnixNano(), 200, make([]byte, 200))
		msgs = append(msgs, &sarama.ProducerMessage{Topic: "plain", Partition: int32(key), Key: sarama.ByteEncoder(message.AppendKey(nil, key)), Value: sarama.ByteEncoder(v)})
	}
	for k := uint32(0); k < 2; k++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: "plain", Partition: int32(k), Key: sarama.ByteEncoder(message.AppendKey(nil, k)),
			Value: sarama.ByteEncoder(message.AppendEndBody(nil, "bp", "run1", 100, time.Now().UnixNano()))})
	}
	msgs = append(msgs,
		&sarama.ProducerMessage{Topic: "plain", Partition: 0, Key: sarama.StringEncoder("0"), Value: sarama.StringEncoder("bp/run1;5")},        // wrong field count
		&sarama.ProducerMessage{Topic: "plain", Partition: 1, Key: sarama.StringEncoder("1"), Value: sarama.StringEncoder("just some text")},   // not kmt
		&sarama.ProducerMessage{Topic: "plain", Partition: 1, Key: sarama.StringEncoder("1"), Value: sarama.StringEncoder("bp;5;6;no run id")}, // bad identity
	)
	send(t, prod, msgs)
	l := NewLedger(nil)
	cfg := testConfig("body", "plain")
	cfg.Encoding = message.Body
	c, err := New(testConn(cl), cfg, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runConsumer(t, c)
	waitFor(t, 60*time.Second, "every record accounted", func() bool { return processed(l.Counters()) >= uint64(len(msgs)) })
	stop()
	rep := l.Report()
	want := map[string]uint64{"no_metadata": 2, "bad_identity": 1}
	if fmt.Sprint(rep.Totals.ForeignByReason) != fmt.Sprint(want) || rep.Totals.Received != 199 || rep.Totals.Lost != 1 || rep.Totals.EndMarkers != 2 {
		t.Fatalf("totals %+v", rep.Totals)
	}
	if s := rep.Streams[1]; s.Lost.String() != "60" || s.Stream.Key != 1 || s.Stream.Run != "run1" {
		t.Fatalf("stream %+v", s)
	}

	// The dropped message turns up after all, after it was declared lost:
	// late, and no longer lost.
	c2, err := New(testConn(cl), cfg, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	runConsumer(t, c2)
	v := message.AppendBody(nil, "bp", "run1", 60, time.Now().UnixNano(), 200, make([]byte, 200))
	send(t, prod, []*sarama.ProducerMessage{{Topic: "plain", Partition: 1, Key: sarama.StringEncoder("1"), Value: sarama.ByteEncoder(v)}})
	waitFor(t, 30*time.Second, "the late message", func() bool { return l.Counters().Late == 1 })
	c2.Close()
	rep = l.Report()
	if s := rep.Streams[1]; s.Late != 1 || !s.Lost.Empty() || s.LostDeclared.String() != "60" || s.Seen.String() != "0-99" {
		t.Fatalf("after the late arrival: %+v", s)
	}
	if rep.Totals.Rereads != 0 || rep.Totals.Duplicates != 0 || rep.Totals.Received != 200 {
		t.Fatalf("restarted consumer re-read or duplicated: %+v", rep.Totals)
	}
}

// TestConsumeRebalance produces continuously while a second consumer joins
// the group and later leaves. Whatever the rebalances do, the accounting
// must show every message exactly once, in order, nothing lost.
func TestConsumeRebalance(t *testing.T) {
	cases := []struct {
		name string
		// separate: the second consumer has its own ledger (another
		// process); its report is merged with the first one's.
		separate bool
		// noCommit: the second consumer never commits (as if it crashed),
		// so the first re-reads what it processed.
		noCommit bool
	}{
		{name: "graceful"},
		{name: "uncommitted", noCommit: true},
		{name: "separate processes", separate: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cl := startCluster(t, 3)
			const topic = "events"
			const parts, keys = 6, 12
			createTopic(t, cl, topic, parts)
			prod := newSyncProducer(t, cl)

			l1 := NewLedger(nil, WithLossGrace(2*time.Second))
			l2 := l1
			if tc.separate {
				l2 = NewLedger(nil, WithLossGrace(2*time.Second))
			}
			c1, err := New(testConn(cl), testConfig("c1", topic), l1, nil)
			if err != nil {
				t.Fatal(err)
			}
			cfg2 := testConfig("c2", topic)
			if tc.noCommit {
				tune := cfg2.Tune
				cfg2.Tune = func(c *sarama.Config) { tune(c); c.Consumer.Offsets.AutoCommit.Enable = false }
			}
			c2, err := New(testConn(cl), cfg2, l2, nil)
			if err != nil {
				t.Fatal(err)
			}
			runConsumer(t, c1)

			// Produce 12 messages (one per key) every 10ms for ~5s: c2
			// joins after 1.5s and leaves after 3.5s.
			var sent uint64
			start := time.Now()
			var stop2 func()
			for time.Since(start) < 5*time.Second {
				batch := make([]*sarama.ProducerMessage, keys)
				for k := range batch {
					batch[k] = kmtRecord(topic, int32(k%parts), "p", "r", uint32(k), sent, false, 50)
				}
				send(t, prod, batch)
				sent++
				switch {
				case stop2 == nil && time.Since(start) > 1500*time.Millisecond:
					stop2 = runConsumer(t, c2)
				case stop2 != nil && time.Since(start) > 3500*time.Millisecond:
					stop2()
				}
				time.Sleep(10 * time.Millisecond)
			}
			markers := make([]*sarama.ProducerMessage, keys)
			for k := range markers {
				markers[k] = kmtRecord(topic, int32(k%parts), "p", "r", uint32(k), sent, true, 0)
			}
			send(t, prod, markers)
			total := sent * keys

			waitFor(t, 60*time.Second, "every message accounted", func() bool {
				if !tc.separate {
					c := l1.Counters()
					return c.Received >= total && c.EndMarkers >= keys
				}
				m := Merge(l1.Report(), l2.Report())
				return m.Totals.Received >= total && m.Totals.EndMarkers >= keys
			})
			c1.Close()
			if c2.Records() == 0 {
				t.Fatal("the second consumer accounted nothing: no rebalance happened")
			}
			rep := l1.Report()
			if tc.separate {
				r2 := l2.Report()
				// Neither process reports false loss or duplicates on its own.
				for _, r := range []Report{rep, r2} {
					if r.Totals.Lost != 0 || r.Totals.Duplicates != 0 || r.Totals.Pending != 0 {
						t.Errorf("consumer %v alone: %+v", r.Consumers, r.Totals)
					}
				}
				if rep.Totals.Elsewhere == 0 {
					t.Errorf("the first consumer never saw offsets read elsewhere: %+v", rep.Partitions)
				}
				rep = Merge(rep, r2)
				if rep.Totals.Elsewhere != 0 {
					t.Errorf("after merging, %d sequences are still elsewhere", rep.Totals.Elsewhere)
				}
			}
			tt := rep.Totals
			t.Logf("sent %d, c1 accounted %d records, c2 %d; rereads %d", total, c1.Records(), c2.Records(), tt.Rereads)
			if tt.Received != total || tt.Duplicates != 0 || tt.Reordered != 0 || tt.Gaps != 0 || tt.Lost != 0 ||
				tt.LostDeclared != 0 || tt.Late != 0 || tt.Pending != 0 || tt.Foreign != 0 || tt.Streams != keys {
				t.Errorf("totals %+v, want %d received and nothing else", tt, total)
			}
			for _, s := range rep.Streams {
				if want := fmt.Sprintf("0-%d", sent-1); s.Seen.String() != want || s.EndCount != sent {
					t.Errorf("%v: seen %s end %d, want %s end %d", s.Stream, s.Seen, s.EndCount, want, sent)
				}
			}
			switch {
			case tc.noCommit && tt.Rereads == 0:
				t.Error("no re-reads although the second consumer never committed")
			case !tc.noCommit && !tc.separate && tt.Rereads != 0:
				t.Errorf("%d re-reads after graceful rebalances", tt.Rereads)
			}
		})
	}
}

func TestConsumeUnreachable(t *testing.T) {
	conn := kafkaconf.Conn{Brokers: []string{"127.0.0.1:1"}, ConnectTimeout: time.Second}
	c, err := New(conn, Config{Topics: []string{"t"}, ID: "x"}, NewLedger(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = c.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %s with a 1s connect timeout", d)
	}
}

func TestConfigValidate(t *testing.T) {
	l := NewLedger(nil)
	for _, tc := range []struct {
		cfg   Config
		field string
	}{
		{Config{}, "Topics"},
		{Config{Topics: []string{"a b"}}, "Topics"},
		{Config{Topics: []string{"a", "a"}}, "Topics"},
		{Config{Topics: []string{strings.Repeat("x", 250)}}, "Topics"},
		{Config{Topics: []string{"a"}, TopicPrefix: "src/"}, "TopicPrefix"},
		{Config{Topics: []string{"a"}, Encoding: 7}, "Encoding"},
		{Config{Topics: []string{"a"}, Group: " g"}, "Group"},
	} {
		_, err := New(kafkaconf.Conn{Brokers: []string{"127.0.0.1:9092"}}, tc.cfg, l, nil)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: err %v, want a ConfigError on %s", tc.cfg, err, tc.field)
		}
	}
	if _, err := New(kafkaconf.Conn{Brokers: []string{"nohost"}}, Config{Topics: []string{"a"}}, l, nil); err == nil {
		t.Error("bad broker address accepted")
	}
	if _, err := New(kafkaconf.Conn{Brokers: []string{"h:1"}}, Config{Topics: []string{"a"}}, nil, nil); err == nil {
		t.Error("nil ledger accepted")
	}
	c, err := New(kafkaconf.Conn{Brokers: []string{"h:1"}}, Config{Topics: []string{"a"}, TopicPrefix: "mm2."}, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.Group != DefaultGroup || c.cfg.ID == "" || c.topics[0] != "mm2.a" || c.sources["mm2.a"] != "a" {
		t.Fatalf("defaults: %+v topics %v", c.cfg, c.topics)
	}
	c.Close()
}

// BenchmarkConsume compares kmt's validated read rate with bare sarama
// consumer groups (the same sarama configuration) reading the same topic in
// the same run: 3 embedded brokers, 6 partitions, 200,000 1000-byte
// messages. "bare" is the usual minimal consumer, counting and marking each
// message; "bare-nomark" only counts (the read ceiling: it never commits).
// Each read is timed from the first to the last message of the topic, by a
// new group. Every iteration is one round of the three in A B C C B A
// order, so drift in the machine's speed cancels out within a round, and
// the ratios reported (kmt/bare, kmt/bare-nomark) are medians over the
// rounds of the per-round ratio: a burst of load from elsewhere spoils a
// round, not the figure. Also reported: each consumer's messages/s over all
// rounds. Run with a fixed number of rounds:
//
//	go test -run '^$' -bench 'BenchmarkConsume$' -benchtime 5x -count 3 ./consumer/
func BenchmarkConsume(b *testing.B) {
	const topic, parts, n, size = "bench", 6, 200000, 1000
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(old) })
	cl := startCluster(b, 3)
	createTopic(b, cl, topic, parts)
	prod := newSyncProducer(b, cl)
	for i := 0; i < n; i += 1000 {
		batch := make([]*sarama.ProducerMessage, 1000)
		for j := range batch {
			k := i + j
			batch[j] = kmtRecord(topic, int32(k%parts), "bench", "r", uint32(k%(parts*4)), uint64(k/(parts*4)), false, size)
		}
		send(b, prod, batch)
	}
	type reader struct {
		read         func(group int) time.Duration
		total, round time.Duration
	}
	kmt := &reader{read: func(g int) time.Duration { return benchKMT(b, cl, topic, n, g) }}
	bare := &reader{read: func(g int) time.Duration { return benchBare(b, cl, topic, n, g, true) }}
	nomark := &reader{read: func(g int) time.Duration { return benchBare(b, cl, topic, n, g, false) }}
	order := []*reader{kmt, bare, nomark, nomark, bare, kmt}
	var toBare, toNomark []float64
	b.ResetTimer()
	for i := range b.N {
		for _, r := range order {
			r.round = 0
		}
		for j, r := range order {
			d := r.read(i*len(order) + j)
			r.round += d
			r.total += d
		}
		// Same message count on every side: rate ratio = inverse time ratio.
		toBare = append(toBare, bare.round.Seconds()/kmt.round.Seconds())
		toNomark = append(toNomark, nomark.round.Seconds()/kmt.round.Seconds())
	}
	b.StopTimer()
	rate := func(d time.Duration) float64 { return float64(2*n*b.N) / d.Seconds() }
	b.ReportMetric(rate(kmt.total), "kmt-msgs/s")
	b.ReportMetric(rate(bare.total), "bare-msgs/s")
	b.ReportMetric(rate(nomark.total), "bare-nomark-msgs/s")
	b.ReportMetric(median(toBare), "kmt/bare")
	b.ReportMetric(median(toNomark), "kmt/bare-nomark")
}

// median returns the median of xs (the mean of the middle two for an even
// count). It sorts xs.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	m := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[m-1] + xs[m]) / 2
	}
	return xs[m]
}

// pollSpan polls count until it reaches n and returns the time from the
// first message to the last.
func pollSpan(b *testing.B, count func() uint64, n uint64) time.Duration {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var first time.Time
	for {
		c := count()
		now := time.Now()
		if c > 0 && first.IsZero() {
			first = now
		}
		if c >= n {
			return now.Sub(first)
		}
		if now.After(deadline) {
			b.Fatalf("read %d of %d messages in 2 minutes", c, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func benchKMT(b *testing.B, cl *embedded.Cluster, topic string, n, i int) time.Duration {
	l := NewLedger(nil)
	cfg := testConfig("bench", topic)
	cfg.Group = fmt.Sprintf("kmt-bench-%d", i)
	c, err := New(testConn(cl), cfg, l, nil)
	if err != nil {
		b.Fatal(err)
	}
	stop := runConsumer(b, c)
	d := pollSpan(b, c.Records, uint64(n))
	stop()
	if got := l.Counters(); got.InOrder != uint64(n) {
		b.Fatalf("kmt accounted %+v", got)
	}
	return d
}

// bareHandler counts every message and, when mark is set, marks it.
type bareHandler struct {
	count *atomic.Uint64
	mark  bool
}

func (bareHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (bareHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h bareHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		h.count.Add(1)
		if h.mark {
			sess.MarkMessage(msg, "")
		}
	}
	return nil
}

func benchBare(b *testing.B, cl *embedded.Cluster, topic string, n, i int, mark bool) time.Duration {
	// The same sarama configuration kmt's consumer uses.
	ref, err := New(testConn(cl), testConfig("bare", topic), NewLedger(nil), nil)
	if err != nil {
		b.Fatal(err)
	}
	group, err := sarama.NewConsumerGroup(cl.Addrs(), fmt.Sprintf("bare-bench-%v-%d", mark, i), ref.sarama)
	if err != nil {
		b.Fatal(err)
	}
	defer group.Close()
	go func() {
		for range group.Errors() {
		}
	}()
	var count atomic.Uint64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, bareHandler{&count, mark}); err != nil && ctx.Err() == nil {
				b.Errorf("bare consume: %v", err)
				return
			}
		}
	}()
	d := pollSpan(b, count.Load, uint64(n))
	cancel()
	<-done
	return d
}
