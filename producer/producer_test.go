package producer

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// startCluster starts an embedded cluster closed at the end of the test.
func startCluster(t testing.TB, brokers int) *embedded.Cluster {
	t.Helper()
	return kafkatest.Embedded(t, embedded.Brokers(brokers), embedded.Name("source"))
}

func connOf(c kafkatest.Cluster) kafkaconf.Conn {
	return kafkaconf.Conn{Brokers: c.Addrs(), ConnectTimeout: 10 * time.Second}
}

// createTopics creates topics with the given partitions through EnsureTopics.
func createTopics(t testing.TB, c kafkatest.Cluster, partitions int, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, connOf(c), topics, partitions, 1, 0); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
}

// runProducer runs p to completion (bounded by a 60 s context) and returns
// the wall-clock window it ran in.
func runProducer(t *testing.T, p *Producer) (start, end time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start = time.Now()
	if err := p.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run did not finish before the test timeout")
	}
	return start, time.Now()
}

// readRecord is a record read back from a topic.
type readRecord struct {
	partition int32
	offset    int64
	key       []byte
	value     []byte
	headers   []*sarama.RecordHeader
}

// readBack reads every record of topic with a plain sarama consumer, in
// partition then offset order.
func readBack(t testing.TB, c kafkatest.Cluster, topic string) []readRecord {
	t.Helper()
	conn := connOf(c)
	sc, err := conn.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Consumer.MaxWaitTime = 20 * time.Millisecond // closing waits out a pending long poll
	client, err := sarama.NewClient(conn.Brokers, sc)
	if err != nil {
		t.Fatalf("read back: client: %v", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatalf("read back: consumer: %v", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("read back: partitions of %s: %v", topic, err)
	}
	var out []readRecord
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("read back: high watermark of %s/%d: %v", topic, p, err)
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("read back: consume %s/%d: %v", topic, p, err)
		}
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case m := <-pc.Messages():
				out = append(out, readRecord{partition: m.Partition, offset: m.Offset, key: m.Key, value: m.Value, headers: m.Headers})
				if m.Offset >= hwm-1 {
					break read
				}
			case err := <-pc.Errors():
				t.Fatalf("read back %s/%d: %v", topic, p, err)
			case <-timeout:
				t.Fatalf("read back %s/%d: timed out before offset %d", topic, p, hwm-1)
			}
		}
		pc.Close()
	}
	return out
}

func decode(enc message.Encoding, key, value []byte, headers []*sarama.RecordHeader) (message.Meta, error) {
	var m message.Meta
	var err error
	if enc == message.Body {
		err = message.DecodeBody(key, value, &m)
	} else {
		err = message.DecodeHeaders(key, headers, &m)
	}
	return m, err
}

type streamKey struct {
	topic string
	key   uint32
}

// groundTruth is what a topic read back by hand says about one producer run.
type groundTruth struct {
	seen map[streamKey]*seqrange.Set
	ends map[streamKey][]uint64 // end-marker counts in arrival order
}

// inspect decodes every record of topic, checks each one's shape and
// returns what was seen. It fails on a duplicate, an out-of-order sequence,
// a wrong partition or size, or data after an end marker.
func inspect(t *testing.T, cfg Config, run string, topic string, partitions, keys uint32, recs []readRecord, from, to time.Time) groundTruth {
	t.Helper()
	g := groundTruth{seen: map[streamKey]*seqrange.Set{}, ends: map[streamKey][]uint64{}}
	for _, r := range recs {
		m, err := decode(cfg.Encoding, r.key, r.value, r.headers)
		if err != nil {
			t.Fatalf("%s/%d@%d: decode: %v", topic, r.partition, r.offset, err)
		}
		if string(m.Producer) != cfg.ID || string(m.Run) != run {
			t.Fatalf("%s/%d@%d: producer %q run %q, want %q %q", topic, r.partition, r.offset, m.Producer, m.Run, cfg.ID, run)
		}
		if m.Key >= keys {
			t.Fatalf("%s/%d@%d: key %d, only %d keys", topic, r.partition, r.offset, m.Key, keys)
		}
		if want := int32(m.Key % partitions); r.partition != want {
			t.Fatalf("%s: key %d found in partition %d, want %d", topic, m.Key, r.partition, want)
		}
		ts := time.Unix(0, m.UnixNano)
		if ts.Before(from.Add(-time.Second)) || ts.After(to.Add(time.Second)) {
			t.Fatalf("%s/%d@%d: creation time %v outside the run %v..%v", topic, r.partition, r.offset, ts, from, to)
		}
		sk := streamKey{topic, m.Key}
		if m.End {
			g.ends[sk] = append(g.ends[sk], m.Seq)
			continue
		}
		if len(g.ends[sk]) > 0 {
			t.Fatalf("%s key %d: data seq %d after the end marker", topic, m.Key, m.Seq)
		}
		if len(r.value) != cfg.MessageSize {
			t.Fatalf("%s key %d seq %d: value is %d bytes, want exactly %d", topic, m.Key, m.Seq, len(r.value), cfg.MessageSize)
		}
		s := g.seen[sk]
		if s == nil {
			s = &seqrange.Set{}
			g.seen[sk] = s
		}
		if s.Contains(m.Seq) {
			t.Fatalf("%s key %d: seq %d present twice", topic, m.Key, m.Seq)
		}
		if m.Seq < s.Max() {
			t.Fatalf("%s key %d: seq %d after seq %d (out of order)", topic, m.Key, m.Seq, s.Max()-1)
		}
		s.Add(m.Seq)
	}
	return g
}

// checkReport compares a producer's report for topic with the ground truth
// read back and with counts computed by hand from n messages over keys keys.
// rejected holds the sequences the broker refused (nil when none).
func checkReport(t *testing.T, rep Report, topic string, partitions, keys uint32, n uint64, g groundTruth, rejected map[streamKey]*seqrange.Set, rejectedEnd map[streamKey]bool) {
	t.Helper()
	// Per key counts, by hand.
	want := make([]uint64, keys)
	for i := uint64(0); i < n; i++ {
		want[i%uint64(keys)]++
	}
	var streams int
	var ackedTotal, failedTotal uint64
	for _, s := range rep.Streams {
		if s.Stream.Topic != topic {
			continue
		}
		streams++
		k := s.Stream.Key
		sk := streamKey{topic, k}
		if s.Stream.Producer != rep.Producer || s.Stream.Run != rep.Run {
			t.Errorf("%s key %d: stream id %+v does not match the report's producer %s run %s", topic, k, s.Stream, rep.Producer, rep.Run)
		}
		if s.Partition != int32(k%partitions) {
			t.Errorf("%s key %d: report partition %d, want %d", topic, k, s.Partition, k%partitions)
		}
		if s.Sent != want[k] {
			t.Errorf("%s key %d: Sent = %d, want %d", topic, k, s.Sent, want[k])
		}
		seen := g.seen[sk]
		if seen == nil {
			seen = &seqrange.Set{}
		}
		if s.Acked.String() != seen.String() {
			t.Errorf("%s key %d: Acked = %s, read back %s", topic, k, s.Acked.String(), seen.String())
		}
		var wantFailed seqrange.Set
		if r := rejected[sk]; r != nil {
			wantFailed = seqrange.Of(r.Ranges()...)
		}
		if s.Failed.String() != wantFailed.String() {
			t.Errorf("%s key %d: Failed = %s, broker rejected %s", topic, k, s.Failed.String(), wantFailed.String())
		}
		if u := s.Unresolved(); !u.Empty() {
			t.Errorf("%s key %d: unresolved sequences %s", topic, k, u.String())
		}
		ackedTotal += s.Acked.Len()
		failedTotal += s.Failed.Len()
		// End marker: exactly one in the topic unless the broker refused it.
		ends := g.ends[sk]
		if rejectedEnd[sk] {
			if len(ends) != 0 || s.EndAcked || !s.EndFailed {
				t.Errorf("%s key %d: refused end marker: in topic %v, EndAcked %v EndFailed %v", topic, k, ends, s.EndAcked, s.EndFailed)
			}
		} else {
			if len(ends) != 1 || ends[0] != want[k] {
				t.Errorf("%s key %d: end markers in topic %v, want exactly one with count %d", topic, k, ends, want[k])
			}
			if !s.EndSent || !s.EndAcked || s.EndFailed {
				t.Errorf("%s key %d: EndSent %v EndAcked %v EndFailed %v, want true true false", topic, k, s.EndSent, s.EndAcked, s.EndFailed)
			}
		}
	}
	if streams != int(keys) {
		t.Errorf("%s: report has %d streams, want %d", topic, streams, keys)
	}
	for _, tr := range rep.Topics {
		if tr.Topic != topic {
			continue
		}
		if tr.Sent != n || tr.Acked != ackedTotal || tr.Errors != failedTotal || tr.Unresolved != 0 ||
			tr.Partitions != int32(partitions) || tr.Keys != keys {
			t.Errorf("%s: topic report %+v, want sent %d acked %d errors %d, %d partitions, %d keys", topic, tr, n, ackedTotal, failedTotal, partitions, keys)
		}
	}
}

// TestProduceReadBack produces a fixed number of messages at a rate in both
// encodings, reads the topics back by hand and checks every message, the
// end markers, the report and the metrics.
func TestProduceReadBack(t *testing.T) {
	for _, enc := range []message.Encoding{message.Headers, message.Body} {
		t.Run(enc.String(), func(t *testing.T) {
			addrs, _ := kafkatest.Brokers(t, 3) // a real Kafka when KMT_TEST_BROKERS is set
			c := kafkatest.BrokerList(addrs)
			suffix := fmt.Sprintf("-%08x", rand.Uint32())
			topics := []string{"alpha" + suffix, "beta" + suffix}
			createTopics(t, c, 3, topics...)
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			cfg := Config{ID: "p-" + enc.String(), Topics: topics, Rate: 5000, Messages: 601, MessageSize: 700,
				Keys: 6, Encoding: enc}
			p, err := New(connOf(c), cfg, m)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.RunID()) != 16 {
				t.Errorf("run id %q is not 16 hex characters", p.RunID())
			}
			if got := p.TargetRate(); got != 10000 {
				t.Errorf("TargetRate = %v, want 10000 (2 topics x 5000)", got)
			}
			from, to := runProducer(t, p)
			rep := p.Report()
			for _, topic := range topics {
				g := inspect(t, p.Config(), p.RunID(), topic, 3, 6, readBack(t, c, topic), from, to)
				checkReport(t, rep, topic, 3, 6, 601, g, nil, nil)
				if v := testutil.ToFloat64(m.Sent.WithLabelValues(topic)); v != 601 {
					t.Errorf("%s: kmt_producer_messages_sent_total = %v, want 601", topic, v)
				}
				if v := testutil.ToFloat64(m.Acked.WithLabelValues(topic)); v != 601 {
					t.Errorf("%s: kmt_producer_messages_acked_total = %v, want 601", topic, v)
				}
				if v := testutil.ToFloat64(m.Errors.WithLabelValues(topic)); v != 0 {
					t.Errorf("%s: kmt_producer_errors_total = %v, want 0", topic, v)
				}
				if v := testutil.ToFloat64(m.TargetRate.WithLabelValues(topic)); v != 0 {
					t.Errorf("%s: kmt_producer_target_rate after stop = %v, want 0", topic, v)
				}
				if v := testutil.ToFloat64(m.Behind.WithLabelValues(topic)); v != 0 {
					t.Errorf("%s: kmt_producer_behind_messages after stop = %v, want 0", topic, v)
				}
			}
			if rep.Sent != 1202 || rep.Acked != 1202 || rep.Errors != 0 || rep.Unresolved != 0 ||
				rep.EndMarkersSent != 12 || rep.EndMarkersAcked != 12 {
				t.Errorf("report totals %+v", rep)
			}
			cnt := p.Counters()
			if cnt.Sent != 1202 || cnt.Acked != 1202 || cnt.Errors != 0 || cnt.InFlight != 0 || cnt.EndSent != 12 || cnt.EndAcked != 12 {
				t.Errorf("Counters = %+v", cnt)
			}
			if lat := p.Latency().Total(); lat.Count != 1202 {
				t.Errorf("latency recorded %d acks, want 1202", lat.Count)
			}
			if n, err := testutil.GatherAndCount(reg, "kmt_producer_ack_latency_seconds"); err != nil || n != 2 {
				t.Errorf("ack latency histogram series = %d (%v), want 2", n, err)
			}
			if v := testutil.ToFloat64(m.Up.WithLabelValues(cfg.ID)); v != 0 {
				t.Errorf("kmt_producer_up after stop = %v, want 0", v)
			}
			// The report is JSON-serialisable with the sets as ranges.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatalf("marshal report: %v", err)
			}
			if !strings.Contains(string(b), `"acked":[{"lo":0,"hi":101}]`) {
				t.Errorf("report JSON lacks key 0's acked range: %.300s", b)
			}
			var back Report
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal report: %v", err)
			}
			b2, _ := json.Marshal(back)
			if string(b2) != string(b) {
				t.Errorf("report does not survive a JSON round trip:\n%s\n%s", b, b2)
			}
		})
	}
}

// TestProduceAcksModes runs the other acknowledgement settings and the
// idempotent producer end to end.
func TestProduceAcksModes(t *testing.T) {
	c := startCluster(t, 3)
	for i, mod := range []func(*Config){
		func(c *Config) { c.Acks = "1" },
		func(c *Config) { c.Acks = "0" },
		func(c *Config) { c.Idempotent = true },
	} {
		topic := fmt.Sprintf("acks%d", i)
		createTopics(t, c, 2, topic)
		cfg := Config{ID: "acks", Topics: []string{topic}, Rate: 4000, Messages: 400, MessageSize: 300, Keys: 4}
		mod(&cfg)
		t.Run(fmt.Sprintf("acks=%s,idempotent=%v", cfg.Acks, cfg.Idempotent), func(t *testing.T) {
			p, err := New(connOf(c), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			from, to := runProducer(t, p)
			g := inspect(t, p.Config(), p.RunID(), topic, 2, 4, readBack(t, c, topic), from, to)
			checkReport(t, p.Report(), topic, 2, 4, 400, g, nil, nil)
		})
	}
}

// TestProduceDurationDefaults learns the partition count from metadata, uses
// K = partitions and stops after a duration: exactly the messages scheduled
// before it are sent.
func TestProduceDurationDefaults(t *testing.T) {
	c := startCluster(t, 1)
	createTopics(t, c, 4, "gamma")
	cfg := Config{ID: "dur", Topics: []string{"gamma"}, Rate: 1000, Duration: 300 * time.Millisecond}
	p, err := New(connOf(c), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	from, to := runProducer(t, p)
	rep := p.Report()
	g := inspect(t, p.Config(), p.RunID(), "gamma", 4, 4, readBack(t, c, "gamma"), from, to)
	checkReport(t, rep, "gamma", 4, 4, 300, g, nil, nil)
	if p.Config().MessageSize != DefaultMessageSize {
		t.Errorf("default message size %d", p.Config().MessageSize)
	}
}

// TestProduceCancel stops a producer without a limit through its context:
// everything sent is accounted for and every key gets its end marker.
func TestProduceCancel(t *testing.T) {
	c := startCluster(t, 3)
	createTopics(t, c, 2, "delta")
	cfg := Config{ID: "cancel", Topics: []string{"delta"}, Rate: 2000, Keys: 4, Encoding: message.Body, MessageSize: 200}
	p, err := New(connOf(c), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	from := time.Now()
	go func() { done <- p.Run(runCtx) }()
	for p.Counters().Acked < 150 {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-ctx.Done():
			t.Fatal("producer never acked 150 messages")
		case <-time.After(5 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	to := time.Now()
	rep := p.Report()
	n := rep.Sent
	if n < 150 {
		t.Fatalf("sent %d, want at least 150", n)
	}
	g := inspect(t, p.Config(), p.RunID(), "delta", 2, 4, readBack(t, c, "delta"), from, to)
	checkReport(t, rep, "delta", 2, 4, n, g, nil, nil)
	if err := p.Run(ctx); err == nil {
		t.Error("second Run succeeded, want an error")
	}
}

// TestProduceRejectedBatches makes the broker refuse some produce requests
// with a non-retriable error. The sequences in the refused batches, decoded
// from the requests by the test, must be exactly the report's Failed sets
// and the error count, and everything else must be in the topic once.
func TestProduceRejectedBatches(t *testing.T) {
	c := startCluster(t, 3)
	createTopics(t, c, 3, "epsilon")
	cfg := Config{ID: "rej", Topics: []string{"epsilon"}, Rate: 3000, Messages: 900, MessageSize: 100, Keys: 3}
	p, err := New(connOf(c), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var requests int
	rejected := map[streamKey]*seqrange.Set{}
	rejectedEnd := map[streamKey]bool{}
	var rejectedN uint64
	kf := c.Kfake()
	kf.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		req := r.(*kmsg.ProduceRequest)
		mu.Lock()
		defer mu.Unlock()
		requests++
		if requests%3 != 2 {
			// The pinned kfake runs only one control function per
			// request, so this one must also apply the embedded
			// cluster's sarama compatibility fix when it passes.
			saramaEpochFix(req)
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				for _, m := range decodeBatch(t, rp.Records) {
					sk := streamKey{rt.Topic, m.Key}
					if m.End {
						rejectedEnd[sk] = true
						continue
					}
					if rejected[sk] == nil {
						rejected[sk] = &seqrange.Set{}
					}
					rejected[sk].Add(m.Seq)
					rejectedN++
				}
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	from, to := runProducer(t, p)
	rep := p.Report()
	mu.Lock()
	defer mu.Unlock()
	if rejectedN == 0 {
		t.Fatalf("the broker refused no data message in %d produce requests; the test proves nothing", requests)
	}
	t.Logf("%d produce requests, %d data messages refused, %d end markers refused", requests, rejectedN, len(rejectedEnd))
	g := inspect(t, p.Config(), p.RunID(), "epsilon", 3, 3, readBack(t, c, "epsilon"), from, to)
	checkReport(t, rep, "epsilon", 3, 3, 900, g, rejected, rejectedEnd)
	if rep.Errors != rejectedN || p.Counters().Errors != rejectedN {
		t.Errorf("errors: report %d, counters %d, broker refused %d", rep.Errors, p.Counters().Errors, rejectedN)
	}
	if rep.Acked+rep.Errors != 900 {
		t.Errorf("acked %d + errors %d != sent 900", rep.Acked, rep.Errors)
	}
	if v := testutil.ToFloat64(p.m.Errors.WithLabelValues("epsilon")); v != float64(rejectedN) {
		t.Errorf("kmt_producer_errors_total = %v, want %d", v, rejectedN)
	}
}

// TestProduceStallLatency stalls the broker's produce handling for a while:
// messages scheduled during the stall must show latencies up to the stall,
// measured from their scheduled send times, and nothing may be lost.
func TestProduceStallLatency(t *testing.T) {
	c := startCluster(t, 1)
	createTopics(t, c, 1, "zeta")
	const stall = 400 * time.Millisecond
	cfg := Config{ID: "stall", Topics: []string{"zeta"}, Rate: 1000, Messages: 1000, MessageSize: 100}
	p, err := New(connOf(c), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	kf := c.Kfake()
	var mu sync.Mutex
	stalled := false
	kf.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		kf.KeepControl()
		req := r.(*kmsg.ProduceRequest)
		saramaEpochFix(req) // see TestProduceRejectedBatches
		mu.Lock()
		first := !stalled && p.Counters().Acked >= 200
		if first {
			stalled = true
		}
		mu.Unlock()
		if first {
			kf.SleepControl(func() { time.Sleep(stall) })
		}
		return nil, nil, false
	})
	from, to := runProducer(t, p)
	mu.Lock()
	if !stalled {
		t.Fatal("no produce request was stalled")
	}
	mu.Unlock()
	rep := p.Report()
	g := inspect(t, p.Config(), p.RunID(), "zeta", 1, 1, readBack(t, c, "zeta"), from, to)
	checkReport(t, rep, "zeta", 1, 1, 1000, g, nil, nil)
	lat := p.Latency().Total()
	if lat.Max < stall-10*time.Millisecond {
		t.Errorf("max ack latency %v with a %v broker stall; latency must include the stall", lat.Max, stall)
	}
	t.Logf("ack latency with a %v stall: p50 %v p99 %v max %v", stall, lat.P50, lat.P99, lat.Max)
}

// saramaEpochFix sets the partition leader epoch of every batch to -1, as
// the embedded cluster does for sarama's requests.
func saramaEpochFix(req *kmsg.ProduceRequest) {
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			rec := req.Topics[i].Partitions[j].Records
			if len(rec) >= 17 && rec[16] == 2 {
				binary.BigEndian.PutUint32(rec[12:16], 0xffffffff)
			}
		}
	}
}

// decodeBatch decodes the kmt identity of every record in an uncompressed
// record batch.
func decodeBatch(t *testing.T, raw []byte) []message.Meta {
	var batch kmsg.RecordBatch
	if err := batch.ReadFrom(raw); err != nil {
		t.Errorf("refused batch: %v", err)
		return nil
	}
	if batch.Attributes&0x7 != 0 {
		t.Errorf("refused batch is compressed (attributes %x)", batch.Attributes)
		return nil
	}
	var out []message.Meta
	rest := batch.Records
	for i := int32(0); i < batch.NumRecords; i++ {
		l, n := binary.Varint(rest)
		if n <= 0 || int(l) > len(rest)-n {
			t.Errorf("refused batch: record %d: bad length", i)
			return out
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(rest[:n+int(l)]); err != nil {
			t.Errorf("refused batch: record %d: %v", i, err)
			return out
		}
		rest = rest[n+int(l):]
		hs := make([]*sarama.RecordHeader, len(rec.Headers))
		for j, h := range rec.Headers {
			hs[j] = &sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value}
		}
		var m message.Meta
		if err := message.DecodeHeaders(rec.Key, hs, &m); err != nil {
			t.Errorf("refused batch: record %d: %v", i, err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// TestRunMissingTopic and friends: Run fails fast with a clear error.
func TestRunErrors(t *testing.T) {
	c := startCluster(t, 1)
	createTopics(t, c, 3, "three")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing topic", Config{ID: "x", Topics: []string{"nope"}}, `topic "nope" does not exist`},
		{"too many partitions", Config{ID: "x", Topics: []string{"three"}, Partitions: 4}, "Partitions=4: topic \"three\" has only 3 partitions"},
		{"keys not a multiple", Config{ID: "x", Topics: []string{"three"}, Keys: 4}, "Keys=4: must be a multiple of topic \"three\"'s 3 partitions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(connOf(c), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = p.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run error %v, want it to contain %q", err, tc.want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p, err := New(kafkaconf.Conn{Brokers: []string{addr}, ConnectTimeout: time.Second}, Config{ID: "x", Topics: []string{"t"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = p.Run(ctx)
		if err == nil || !strings.Contains(err.Error(), "cannot reach Kafka brokers "+addr) {
			t.Fatalf("Run error %v, want cannot reach", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Run took %v to fail with a 1s connect timeout", d)
		}
	})
}

func TestEnsureTopics(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := connOf(c)
	if err := EnsureTopics(ctx, conn, []string{"t1", "t2"}, 5, 3, time.Hour); err != nil {
		t.Fatalf("create: %v", err)
	}
	// Idempotent.
	if err := EnsureTopics(ctx, conn, []string{"t1", "t2"}, 5, 3, time.Hour); err != nil {
		t.Fatalf("again: %v", err)
	}
	// Check by hand with a plain client.
	sc, _ := conn.Sarama()
	admin, err := sarama.NewClusterAdmin(conn.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	md, err := admin.DescribeTopics([]string{"t1", "t2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range md {
		if len(tm.Partitions) != 5 {
			t.Errorf("%s has %d partitions, want 5", tm.Name, len(tm.Partitions))
		}
		for _, pm := range tm.Partitions {
			if len(pm.Replicas) != 3 {
				t.Errorf("%s/%d has %d replicas, want 3", tm.Name, pm.ID, len(pm.Replicas))
			}
		}
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var retention string
	for _, e := range entries {
		if e.Name == "retention.ms" {
			retention = e.Value
		}
	}
	if retention != "3600000" {
		t.Errorf("retention.ms = %q, want 3600000", retention)
	}

	// -1: the broker's default replication factor.
	if err := EnsureTopics(ctx, conn, []string{"t5"}, 2, -1, 0); err != nil {
		t.Errorf("broker default replication factor: %v", err)
	}

	for _, tc := range []struct {
		topics     []string
		partitions int
		rf         int
		want       string
	}{
		{[]string{"t1"}, 4, 3, `topic "t1" already exists with 5 partitions, but 4 were requested`},
		{[]string{"t3"}, 2, 4, "replication factor 4"},
		{[]string{"bad name"}, 1, 1, "topic names may contain only"},
		{[]string{"t4"}, 0, 1, "partitions must be between 1"},
		{[]string{"t4"}, 1, 0, "replication factor must be"},
		{nil, 1, 1, "no topics given"},
	} {
		err := EnsureTopics(ctx, conn, tc.topics, tc.partitions, tc.rf, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("EnsureTopics(%v, %d, %d) = %v, want an error containing %q", tc.topics, tc.partitions, tc.rf, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{ID: "p1", Topics: []string{"t"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"ID", func(c *Config) { c.ID = "a/b" }},
		{"ID", func(c *Config) { c.ID = strings.Repeat("x", 201) }},
		{"Topics", func(c *Config) { c.Topics = nil }},
		{"Topics", func(c *Config) { c.Topics = []string{"a", "a"} }},
		{"Topics", func(c *Config) { c.Topics = []string{"a b"} }},
		{"Rate", func(c *Config) { c.Rate = -1 }},
		{"Duration", func(c *Config) { c.Duration = -time.Second }},
		{"MessageSize", func(c *Config) { c.MessageSize = -5 }},
		{"MessageSize", func(c *Config) { c.Encoding = message.Body; c.MessageSize = 60 }},
		{"Encoding", func(c *Config) { c.Encoding = 7 }},
		{"Partitions", func(c *Config) { c.Partitions = -1 }},
		{"Keys", func(c *Config) { c.Partitions = 3; c.Keys = 4 }},
		{"Keys", func(c *Config) { c.Keys = -1 }},
		{"Acks", func(c *Config) { c.Acks = "2" }},
		{"Acks", func(c *Config) { c.Idempotent = true; c.Acks = "1" }},
		{"MaxInFlight", func(c *Config) { c.Idempotent = true; c.MaxInFlight = 5 }},
		{"MaxInFlight", func(c *Config) { c.MaxInFlight = -1 }},
		{"Retries", func(c *Config) { c.Retries = -2 }},
		{"Retries", func(c *Config) { c.Idempotent = true; c.Retries = -1 }},
		{"FlushTimeout", func(c *Config) { c.FlushTimeout = -1 }},
	} {
		c := ok
		c.Topics = append([]string(nil), ok.Topics...)
		tc.mod(&c)
		err := c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%+v: Validate() = %v, want a ConfigError for %s", c, err, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field+"=") || ce.Reason == "" {
			t.Errorf("error %q does not name the field and a reason", err)
		}
	}
	// Body encoding: the minimum size is exactly enough for the longest metadata.
	c := Config{ID: "p1", Topics: []string{"t"}, Encoding: message.Body, MessageSize: 2 + maxBodyOverhead}
	if err := c.Validate(); err != nil {
		t.Errorf("body at the minimum size: %v", err)
	}
	longest := message.AppendBody(nil, "p1", strings.Repeat("f", runIDLen), 1<<64-1, 1<<63-1, 0, nil)
	if len(longest) != 2+maxBodyOverhead {
		t.Errorf("longest in-body metadata is %d bytes, maxBodyOverhead assumes %d", len(longest), 2+maxBodyOverhead)
	}
	// Idempotent gets MaxInFlight 1 by default and validates.
	c = Config{ID: "p1", Topics: []string{"t"}, Idempotent: true}
	if err := c.Validate(); err != nil {
		t.Errorf("idempotent defaults: %v", err)
	}
	if _, err := New(kafkaconf.Conn{}, ok, nil); err == nil {
		t.Error("New without brokers succeeded")
	}
	if _, err := New(kafkaconf.Conn{Brokers: []string{"h:1"}}, Config{ID: "p"}, nil); err == nil {
		t.Error("New without topics succeeded")
	}
}

// TestMetricsLintAndShared checks the metric names pass promlint and that
// producers in one process can share a registry.
func TestMetricsLintAndShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Sent.WithLabelValues("t").Inc()
	m.Acked.WithLabelValues("t").Inc()
	m.Errors.WithLabelValues("t").Inc()
	m.TargetRate.WithLabelValues("t").Set(1)
	m.AckLatency.WithLabelValues("t").Observe(0.003)
	m.Behind.WithLabelValues("t").Set(0)
	m.Up.WithLabelValues("p").Set(1)
	m2 := NewMetrics(reg)
	if m2.Sent != m.Sent || m2.AckLatency != m.AckLatency || m2.Up != m.Up {
		t.Error("a second NewMetrics on the same registry did not reuse the registered metrics")
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	want := []string{"kmt_producer_messages_sent_total", "kmt_producer_messages_acked_total", "kmt_producer_errors_total",
		"kmt_producer_target_rate", "kmt_producer_ack_latency_seconds", "kmt_producer_behind_messages", "kmt_producer_up"}
	if n, err := testutil.GatherAndCount(reg, want...); err != nil || n != 7 {
		t.Errorf("gathered %d series of the fixed metric names (%v), want 7", n, err)
	}
}

// TestFillReusedHeaderEqualsFreshHeader reuses one record of a block for
// header-encoded messages whose sequence and timestamp change length and
// checks that each carries exactly the header message.NewHeaders builds,
// written into the record's slot of the block's buffer without touching
// its neighbours', and the shared filler as its value.
func TestFillReusedHeaderEqualsFreshHeader(t *testing.T) {
	const size = 100
	id := strings.Repeat("p", 200) // the longest producer id
	p, err := New(kafkaconf.Conn{Brokers: []string{"127.0.0.1:9"}}, Config{ID: id, Topics: []string{"t"}, MessageSize: size}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	tp := &topicState{name: "t", partitions: 1, keys: 1, keyEnc: []*bytesEncoder{{b: []byte("0")}}}
	blk := newBlock(3, p.slot)
	r := &blk.recs[1]
	slot := &r.value[:1][0]
	for _, seq := range []uint64{8, 9, 10, 99, 100, 7, 1<<64 - 1, 3} {
		r.topic, r.seq = tp, seq
		now := time.Now()
		if seq == 1<<64-1 {
			now = time.Unix(0, 1<<63-1) // the longest timestamp too
		}
		p.fill(r, now, size)
		want := message.NewHeaders(id, p.RunID(), seq, now.UnixNano(), false)
		if len(r.msg.Headers) != 1 || string(r.msg.Headers[0].Key) != string(want[0].Key) || string(r.msg.Headers[0].Value) != string(want[0].Value) {
			t.Fatalf("seq %d: headers %q, want %q", seq, r.msg.Headers, want)
		}
		if &r.msg.Headers[0].Value[0] != slot {
			t.Fatalf("seq %d: the header value left the record's slot", seq)
		}
		if v, _ := r.msg.Value.Encode(); string(v) != string(p.filler) {
			t.Fatalf("seq %d: value is not the filler", seq)
		}
		for _, n := range []int{0, 2} {
			if v := blk.recs[n].value[:p.slot]; string(v) != string(make([]byte, p.slot)) {
				t.Fatalf("seq %d: the neighbouring slot %d was written: %q", seq, n, v)
			}
		}
	}
}

// TestFillReusedBodyEqualsFreshBody reuses one record for a run of in-body
// messages whose metadata prefix changes length (sequence 9 to 10, 99 to
// 100, an end marker in between) and checks every value byte for byte
// against message.AppendBody built from scratch.
func TestFillReusedBodyEqualsFreshBody(t *testing.T) {
	const size = 64
	p, err := New(kafkaconf.Conn{Brokers: []string{"127.0.0.1:9"}}, Config{ID: "p1", Topics: []string{"t"}, MessageSize: size, Encoding: message.Body}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	tp := &topicState{name: "t", partitions: 1, keys: 1, keyEnc: []*bytesEncoder{{b: []byte("0")}}}
	blk := newBlock(3, size)
	r := &blk.recs[1] // its value is a slot between two others in one buffer
	for _, seq := range []uint64{8, 9, 10, 11, 11, 99, 100, 7, 1 << 40, 3} {
		r.topic, r.seq, r.end = tp, seq, seq == 11 && r.seq == 11 // the second 11 is an end marker
		p.fill(r, time.Now(), size)
		got, _ := r.msg.Value.Encode()
		ts := r.msg.Timestamp.UnixNano()
		want := message.AppendBody(nil, "p1", p.RunID(), seq, ts, size, p.filler)
		if r.end {
			want = message.AppendEndBody(nil, "p1", p.RunID(), seq, ts)
		}
		if string(got) != string(want) {
			t.Fatalf("seq %d end %v: value\n%q\nwant\n%q", seq, r.end, got, want)
		}
		if !r.end && len(got) != size {
			t.Fatalf("seq %d: %d bytes, want %d", seq, len(got), size)
		}
		for _, n := range []int{0, 2} {
			if v := blk.recs[n].value[:size]; string(v) != string(make([]byte, size)) {
				t.Fatalf("seq %d: the neighbouring slot %d was written: %q", seq, n, v)
			}
		}
	}
}

// TestBlockBounds checks the block sizes and the idle limit: 64 records a
// block, in-body fewer so a block's values stay within 1 MiB, and at most
// 8192 idle records and 32 MiB of idle values, 2 blocks at least.
func TestBlockBounds(t *testing.T) {
	for _, c := range []struct {
		body        bool
		size        int
		n, freeMost int
	}{
		{false, 1000, 64, 128},
		{false, 4 << 20, 64, 128},
		{true, 1000, 64, 128},
		{true, 100_000, 10, 33},
		{true, 1 << 20, 1, 32},
		{true, 8 << 20, 1, 4},
		{true, 64 << 20, 1, 2},
		{true, 1, 64, 128},
	} {
		n := blockLen(c.body, c.size)
		if free := freeBlocks(c.body, c.size, n); n != c.n || free != c.freeMost {
			t.Errorf("body %v, %d-byte values: blocks of %d, %d kept; want %d and %d", c.body, c.size, n, free, c.n, c.freeMost)
		}
	}
}

// TestBlocksAreReusedWholeAndLastResolvedFirst checks the record blocks: a
// block comes back to the pacer only once every record in it is resolved,
// the block resolved last is reused first, in-body values are disjoint
// slots of one buffer, and at most the stack's limit of blocks wait.
func TestBlocksAreReusedWholeAndLastResolvedFirst(t *testing.T) {
	const size = 100
	p, err := New(kafkaconf.Conn{Brokers: []string{"127.0.0.1:9"}}, Config{ID: "p1", Topics: []string{"t"}, MessageSize: size, Encoding: message.Body}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.free.limit = 2
	blockSize := p.blockLen
	if blockSize != maxBlockRecords {
		t.Fatalf("blocks of %d records for %d-byte values, want %d", blockSize, size, maxBlockRecords)
	}
	take := func() (*block, []outcome) {
		t.Helper()
		var out []outcome
		for range blockSize {
			out = append(out, outcome{r: p.newRecord()})
		}
		b := out[0].r.blk
		for i, o := range out {
			if o.r != &b.recs[i] {
				t.Fatalf("record %d of a block is not the block's record %d", i, i)
			}
		}
		return b, out
	}
	a, ra := take()
	b, rb := take()
	c, rc := take()
	if a == b || b == c || a == c {
		t.Fatal("three blocks' worth of records came from fewer than three blocks")
	}
	for i := range blockSize {
		v := a.recs[i].value
		if cap(v) != size {
			t.Fatalf("slot %d has capacity %d, want %d", i, cap(v), size)
		}
		if i > 0 && unsafe.Pointer(&v[:1][0]) != unsafe.Add(unsafe.Pointer(&a.recs[i-1].value[:1][0]), size) {
			t.Fatalf("slot %d does not follow slot %d in one buffer", i, i-1)
		}
	}
	// All of b and c resolved, a but its last record, in the order a, c, b.
	p.recycle(ra[:blockSize-1])
	p.recycle(rc)
	p.recycle(rb)
	if got := len(p.free.blocks); got != 2 {
		t.Fatalf("%d blocks wait, want 2 (b and c; a has a record in flight)", got)
	}
	if d, _ := take(); d != b {
		t.Fatal("the next records did not come from the block resolved last")
	}
	if d, _ := take(); d != c {
		t.Fatal("the records after those did not come from the block resolved before")
	}
	if d, _ := take(); d == a || d == b || d == c {
		t.Fatal("a block was reused while one of its records was in flight or still in use")
	}
	// a comes back once its last record is resolved.
	p.recycle(ra[blockSize-1:])
	if got := len(p.free.blocks); got != 1 || p.free.blocks[0] != a {
		t.Fatalf("after a's last record resolved %d blocks wait, want a alone", got)
	}
	// The limit: a third resolved block drops the oldest waiting one.
	s := blockStack{limit: 2}
	x, y, z := newBlock(1, 0), newBlock(1, 0), newBlock(1, 0)
	for _, blk := range []*block{x, y, z} {
		s.push(blk)
	}
	if got := len(s.blocks); got != 2 || s.blocks[0] != y || s.blocks[1] != z {
		t.Fatalf("after three pushes with room for two the stack holds %d blocks, want the last two", got)
	}
	if s.pop() != z || s.pop() != y || s.pop() != nil {
		t.Fatal("pop did not return the blocks last pushed first, then nil")
	}
}
