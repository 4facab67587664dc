package mirror_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/mirror"
)

// testSession is the mirror's group session timeout in tests that kill
// workers: short enough that a killed worker's partitions move within
// seconds, long enough that heartbeats survive a loaded race-detector run
// (at 1s, two busy cores missed heartbeats and the group rebalanced every
// few seconds).
const testSession = 3 * time.Second

// cutFor is how long TestCutWANLinkStopsAndHealResumes keeps the link cut:
// longer than testSession, so the group evicts the worker meanwhile.
const cutFor = testSession + time.Second

// regions returns the source and destination of a test that needs nothing
// but Kafka (no broker kills), and the destination topic prefix to use:
// two embedded clusters of n brokers with prefix, or, when KMT_TEST_BROKERS
// names a real Kafka, that one cluster on both sides with the copies under
// "copy." so they never overwrite their source.
func regions(t *testing.T, n int, prefix string) (src, dst kafkatest.Cluster, dstPrefix string) {
	t.Helper()
	if os.Getenv(kafkatest.BrokersEnv) != "" {
		addrs, _ := kafkatest.Brokers(t, n)
		return kafkatest.BrokerList(addrs), kafkatest.BrokerList(addrs), "copy."
	}
	return startCluster(t, "source", n), startCluster(t, "destination", n), prefix
}

// startCluster starts an embedded cluster whose groups accept the short
// session timeouts these tests use.
func startCluster(t testing.TB, name string, brokers int) *embedded.Cluster {
	t.Helper()
	return kafkatest.Embedded(t, embedded.Brokers(brokers), embedded.Name(name),
		embedded.KfakeOpts(kfake.GroupMinSessionTimeout(100*time.Millisecond)))
}

func conn(c kafkatest.Cluster) kafkaconf.Conn {
	return kafkaconf.Conn{Brokers: c.Addrs(), ClientID: "kmt-test", ConnectTimeout: 10 * time.Second}
}

func admin(t testing.TB, c kafkatest.Cluster) sarama.ClusterAdmin {
	t.Helper()
	cfg, err := conn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	a, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("admin on %v: %v", c.Addrs(), err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func createTopic(t testing.TB, c kafkatest.Cluster, topic string, partitions int32) {
	t.Helper()
	if err := admin(t, c).CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// record is what the tests compare between source and destination.
type record struct {
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []sarama.RecordHeader
	Timestamp time.Time
}

func (r record) same(o record) bool {
	if r.Partition != o.Partition || !bytes.Equal(r.Key, o.Key) || !bytes.Equal(r.Value, o.Value) ||
		!r.Timestamp.Equal(o.Timestamp) || len(r.Headers) != len(o.Headers) {
		return false
	}
	for i := range r.Headers {
		if !bytes.Equal(r.Headers[i].Key, o.Headers[i].Key) || !bytes.Equal(r.Headers[i].Value, o.Headers[i].Value) {
			return false
		}
	}
	return true
}

// identity is a kmt record's stream key and sequence.
type identity struct {
	key uint32
	seq uint64
}

func (r record) identity(t *testing.T) identity {
	t.Helper()
	var m message.Meta
	hs := make([]*sarama.RecordHeader, len(r.Headers))
	for i := range r.Headers {
		hs[i] = &r.Headers[i]
	}
	if err := message.DecodeHeaders(r.Key, hs, &m); err != nil {
		t.Fatalf("record at %d/%d is not a kmt record: %v", r.Partition, r.Offset, err)
	}
	return identity{m.Key, m.Seq}
}

// producer writes kmt records like the kmt producer does: key k = n % keys,
// per-key sequence n / keys, partition k % partitions, headers encoding.
type producer struct {
	t          testing.TB
	p          sarama.SyncProducer
	topic      string
	keys       int
	partitions int32
	n          uint64
	size       int // value size; 0: 20 to 99 bytes
	rnd        *rand.Rand
	base       time.Time
}

func newProducer(t testing.TB, c kafkatest.Cluster, topic string, keys int, partitions int32) *producer {
	t.Helper()
	cfg, err := conn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return &producer{t: t, p: p, topic: topic, keys: keys, partitions: partitions,
		rnd: rand.New(rand.NewPCG(uint64(len(topic)), 42)), base: time.UnixMilli(time.Now().UnixMilli())}
}

// send writes count records in one batch and returns them in order.
func (pr *producer) send(count int) []record {
	pr.t.Helper()
	msgs := make([]*sarama.ProducerMessage, 0, count)
	out := make([]record, 0, count)
	for i := 0; i < count; i++ {
		k := uint32(pr.n % uint64(pr.keys))
		seq := pr.n / uint64(pr.keys)
		ts := pr.base.Add(time.Duration(pr.n) * time.Millisecond)
		val := make([]byte, 20+pr.rnd.IntN(80))
		if pr.size > 0 {
			val = make([]byte, pr.size)
		}
		for j := range val {
			val[j] = byte(pr.rnd.Uint32())
		}
		hs := message.NewHeaders("test-producer", "run1", seq, ts.UnixNano(), false)
		r := record{Partition: int32(k) % pr.partitions, Key: message.AppendKey(nil, k), Value: val, Headers: hs, Timestamp: ts}
		out = append(out, r)
		msgs = append(msgs, &sarama.ProducerMessage{Topic: pr.topic, Partition: r.Partition, Key: sarama.ByteEncoder(r.Key),
			Value: sarama.ByteEncoder(r.Value), Headers: hs, Timestamp: ts})
		pr.n++
	}
	if err := pr.p.SendMessages(msgs); err != nil {
		pr.t.Fatalf("produce %d records to %s: %v", count, pr.topic, err)
	}
	for i, m := range msgs {
		out[i].Offset = m.Offset
	}
	return out
}

// readAll reads every record of topic on c, by partition, in offset order.
// The records are read with franz-go, not with the sarama code the mirror
// uses, so the ground truth does not share its decoding.
func readAll(t *testing.T, c kafkatest.Cluster, topic string) map[int32][]record {
	t.Helper()
	cfg, err := conn(c).Sarama()
	if err != nil {
		t.Fatal(err)
	}
	client, err := sarama.NewClient(c.Addrs(), cfg)
	if err != nil {
		t.Fatalf("read back %s: %v", topic, err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("read back %s: partitions: %v", topic, err)
	}
	want := map[int32]int64{} // partition -> high-water mark
	start := map[int32]kgo.Offset{}
	for _, p := range parts {
		hwm, err1 := client.GetOffset(topic, p, sarama.OffsetNewest)
		low, err2 := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if hwm > low {
			want[p] = hwm
			start[p] = kgo.NewOffset().At(low)
		}
	}
	out := map[int32][]record{}
	if len(want) == 0 {
		return out
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read back %s: timed out with partitions %v unfinished", topic, want)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("read back %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			rec := record{Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: h.Value})
			}
			out[r.Partition] = append(out[r.Partition], rec)
			if hwm, ok := want[r.Partition]; ok && r.Offset >= hwm-1 {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// flow keeps a producer sending in the background: a batch, a pause, and
// again, until Stop.
type flow struct {
	mu   sync.Mutex
	sent []record
	stop chan struct{}
	done chan struct{}
}

// startFlow sends batches of n records on pr, pausing between them, until
// the flow is stopped.
func startFlow(pr *producer, n int, pause time.Duration) *flow {
	f := &flow{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(f.done)
		for {
			select {
			case <-f.stop:
				return
			default:
			}
			batch := pr.send(n)
			f.mu.Lock()
			f.sent = append(f.sent, batch...)
			f.mu.Unlock()
			time.Sleep(pause)
		}
	}()
	return f
}

// Count returns how many records were sent so far.
func (f *flow) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent)
}

// Stop ends the flow and returns every record it sent, in order.
func (f *flow) Stop() []record {
	close(f.stop)
	<-f.done
	return f.sent
}

// count returns the number of records of topic on c (sum of high-water
// marks minus low-water marks; 0 while the topic does not exist).
func count(t *testing.T, c kafkatest.Cluster, topic string) int64 {
	t.Helper()
	return kafkatest.Records(t, c.Addrs(), topic)
}

// committed returns the sum of group's committed offsets on topic.
func committed(t *testing.T, c kafkatest.Cluster, group, topic string, partitions int32) int64 {
	t.Helper()
	ps := make([]int32, partitions)
	for i := range ps {
		ps[i] = int32(i)
	}
	resp, err := admin(t, c).ListConsumerGroupOffsets(group, map[string][]int32{topic: ps})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return 0 // the group has not joined yet
	}
	if err != nil {
		t.Fatalf("committed offsets of %s: %v", group, err)
	}
	var n int64
	for _, p := range ps {
		if b := resp.GetBlock(topic, p); b != nil && b.Offset > 0 {
			n += b.Offset
		}
	}
	return n
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runMirror runs m until the test ends.
func runMirror(t *testing.T, m *mirror.Mirror) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("mirror run: %v", err)
			}
		case <-time.After(30 * time.Second):
			buf := make([]byte, 1<<22)
			t.Errorf("mirror did not stop within 30s; goroutines:\n%s", buf[:runtime.Stack(buf, true)])
		}
	}
	t.Cleanup(stop)
	return stop
}

// tally compares what arrived with what was sent, by kmt identity.
type tally struct {
	// lost: sent, never arrived; duplicated: extra copies.
	lost, duplicated int
	// reordered: first arrivals with a lower sequence than one already seen
	// on the same stream.
	reordered int
	// inverted: first arrivals with a lower source offset than one already
	// seen in the same partition.
	inverted int
}

func compare(t *testing.T, sent []record, got map[int32][]record) tally {
	t.Helper()
	srcOffset := map[identity]int64{}
	for _, r := range sent {
		srcOffset[r.identity(t)] = r.Offset
	}
	seen := map[identity]int{}
	maxSeq := map[uint32]uint64{}
	started := map[uint32]bool{}
	var tl tally
	parts := make([]int32, 0, len(got))
	for p := range got {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		maxOff := int64(-1)
		for _, r := range got[p] {
			id := r.identity(t)
			off, ok := srcOffset[id]
			if !ok {
				t.Fatalf("destination holds a record never sent: %+v", id)
			}
			seen[id]++
			if seen[id] > 1 {
				tl.duplicated++
				continue
			}
			if started[id.key] && id.seq < maxSeq[id.key] {
				tl.reordered++
			}
			if !started[id.key] || id.seq > maxSeq[id.key] {
				maxSeq[id.key] = id.seq
				started[id.key] = true
			}
			if off < maxOff {
				tl.inverted++
			}
			maxOff = max(maxOff, off)
		}
	}
	for id := range srcOffset {
		if seen[id] == 0 {
			tl.lost++
		}
	}
	return tl
}

func flatten(got map[int32][]record) int {
	n := 0
	for _, rs := range got {
		n += len(rs)
	}
	return n
}

func topicName(t *testing.T) string {
	return fmt.Sprintf("kmt-%s-%d", sanitize(t.Name()), time.Now().UnixNano()%1e6)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return string(b)
}

// noGoroutinesIn fails unless, within 5s, no goroutine runs code of the
// given packages (import path plus ".", e.g. "kmt/mirror.").
func noGoroutinesIn(t *testing.T, pkgs ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 1<<22)
	for {
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			for _, p := range pkgs {
				if strings.Contains(g, p) {
					left = append(left, g)
					break
				}
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left running in %v:\n%s", len(left), pkgs, strings.Join(left, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
