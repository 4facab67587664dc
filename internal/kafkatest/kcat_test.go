package kafkatest_test

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// rec builds a record for partition p. meta, when not empty, is kmt's
// metadata: the `kmt` header's value in the header encoding, the value's
// prefix in-body.
type rec struct {
	p     int32
	key   string
	meta  string
	value string
	hdrs  []kgo.RecordHeader
	nokey bool
}

// kmtHeader is a header-encoded kmt record: key k, metadata
// "p1/r1;seq;ts" (";kmt:end" added on an end marker).
func kmtHeader(p int32, k, seq int, end bool) rec {
	m := fmt.Sprintf("p1/r1;%d;%d", seq, 1700000000000000000+seq)
	if end {
		m += ";kmt:end"
	}
	return rec{p: p, key: strconv.Itoa(k), meta: m, value: "abcdefghij"}
}

// produceManual writes recs to topic, each to its own partition, in order.
func produceManual(t *testing.T, brokers []string, topic string, body bool, recs []rec) {
	t.Helper()
	var out []*kgo.Record
	for _, r := range recs {
		kr := &kgo.Record{Topic: topic, Partition: r.p, Key: []byte(r.key), Value: []byte(r.value), Headers: r.hdrs}
		if r.nokey {
			kr.Key = nil
		}
		if r.meta != "" {
			switch {
			case body && strings.Count(r.meta, ";") == 3: // an end marker: "...;kmt:end"
				kr.Value = []byte(r.meta)
			case body:
				kr.Value = []byte(r.meta + ";" + r.value)
			default:
				kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: "kmt", Value: []byte(r.meta)})
			}
		}
		out = append(out, kr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := t.Context()
	for _, r := range out { // one at a time: the order within a partition is the test's
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// hostileTopic returns records with duplicates, reorders, gaps, end
// markers and foreign records (binary keys, values and headers, malformed
// metadata) over three partitions, and the counts a consumer must report.
func hostileTopic(body bool) (recs []rec, unique, dups, reordered, missing, foreign int) {
	// Key 0 on partition 0: 0 1 2 2 4 3 5, end marker 7 (6 missing).
	for _, q := range []int{0, 1, 2, 2, 4, 3, 5} {
		recs = append(recs, kmtHeader(0, 0, q, false))
	}
	recs = append(recs, kmtHeader(0, 0, 7, true))
	// Key 1 on partition 1: 0 1 3 0, end marker 5 (2 and 4 missing).
	for _, q := range []int{0, 1, 3, 0} {
		recs = append(recs, kmtHeader(1, 1, q, false))
	}
	recs = append(recs, kmtHeader(1, 1, 5, true))
	// Key 2 on partition 2, no end marker: 0 1 2.
	for _, q := range []int{0, 1, 2} {
		recs = append(recs, kmtHeader(2, 2, q, false))
	}
	// Foreign: binary and null keys, binary values and headers, broken
	// metadata.
	bin := string([]byte{0xff, 0xfe, 0x00, 0x01, '\n', '"', '\\'})
	foreignRecs := []rec{
		{p: 0, key: bin, value: bin, hdrs: []kgo.RecordHeader{{Key: "x", Value: []byte(bin)}}},
		{p: 1, nokey: true, value: "no key"},
		{p: 2, key: "-1", meta: "p1/r1;9;1"},
		{p: 2, key: "3", meta: "p1/r1;x;1"},
		{p: 0, key: "3", meta: "p1;3;1"},
		{p: 1, key: "3", meta: "p1/r1/z;3;1"},
		{p: 2, key: "3", value: bin},
	}
	if body {
		// In-body the value is the metadata: nothing else to parse.
		foreignRecs = append(foreignRecs, rec{p: 0, key: "4", value: "p1/r1;1;2"})
	} else {
		foreignRecs = append(foreignRecs,
			rec{p: 0, key: "4", meta: "p1/r1;1;2;kmt:other"},
			rec{p: 1, key: "4", value: "p1/r1;1;2;payload"}, // in-body, read as headers
		)
	}
	recs = append(recs, foreignRecs...)
	// unique: key 0 {0,1,2,3,4,5}=6, key 1 {0,1,3}=3, key 2 {0,1,2}=3.
	// dups: key 0 one 2, key 1 one 0. reordered: key 0's 3 after 4.
	// missing: key 0 6, key 1 2 and 4.
	return recs, 12, 2, 1, 3, len(foreignRecs)
}

// TestReadTopicKcatAgrees writes a topic of three partitions with
// duplicates, reorders, gaps, end markers and hostile foreign records, and
// reads it back with kcat (ReadTopicKcat) and with franz-go (ReadTopic):
// both must classify every record the same way, and their counts must be
// the ones the records were built to give. In-body, kcat's reading is
// checked against the built counts.
func TestReadTopicKcatAgrees(t *testing.T) {
	kafkatest.Kcat(t)
	for _, body := range []bool{false, true} {
		name := map[bool]string{false: "headers", true: "body"}[body]
		t.Run(name, func(t *testing.T) {
			topic := "kcat-" + name
			c := kafkatest.Embedded(t, embedded.Brokers(3), embedded.KfakeOpts(kfake.SeedTopics(3, topic)))
			recs, unique, dups, reordered, missing, foreign := hostileTopic(body)
			produceManual(t, c.Addrs(), topic, body, recs)

			var opts []kafkatest.KcatOption
			if body {
				opts = append(opts, kafkatest.KcatBody())
			}
			kc := kafkatest.ReadTopicKcat(t, c.Addrs(), topic, append(opts, kafkatest.KcatTimeout(time.Minute))...)
			u, d, r, m := kc.Counts()
			var miss int
			for _, seqs := range m {
				miss += len(seqs)
			}
			if u != unique || d != dups || r != reordered || miss != missing || kc.Foreign != foreign || kc.Records != len(recs) {
				t.Errorf("kcat read %d records: %d unique, %d dups, %d reordered, %d missing, %d foreign; built %d: %d, %d, %d, %d, %d",
					kc.Records, u, d, r, miss, kc.Foreign, len(recs), unique, dups, reordered, missing, foreign)
			}
			if len(kc.Ends) != 2 || len(kc.Streams) != 3 {
				t.Errorf("kcat read %d end markers of %d streams, want 2 of 3", len(kc.Ends), len(kc.Streams))
			}
			if body {
				return // ReadTopic parses the header encoding only
			}
			fr := kafkatest.ReadTopic(t, c.Addrs(), topic, time.Second)
			if !reflect.DeepEqual(kc, fr) {
				t.Errorf("kcat and franz-go disagree:\nkcat    %+v\nfranz-go %+v", kc, fr)
			}
		})
	}
}

// TestKcatReadsEveryPartitionToTheEnd writes a topic of six partitions,
// some of them empty, and checks kcat returns every record of each.
func TestKcatReadsEveryPartitionToTheEnd(t *testing.T) {
	kafkatest.Kcat(t)
	const topic = "kcat-ends"
	c := kafkatest.Embedded(t, embedded.Brokers(3), embedded.KfakeOpts(kfake.SeedTopics(6, topic)))
	var recs []rec
	want := map[int32]int{}
	for p := range int32(6) {
		if p == 2 || p == 5 {
			continue // empty partitions
		}
		n := 50 * int(p+1)
		for i := range n {
			recs = append(recs, kmtHeader(p, int(p), i, false))
		}
		want[p] = n
	}
	produceManual(t, c.Addrs(), topic, false, recs)
	got := map[int32]int{}
	for _, r := range kafkatest.KcatRead(t, c.Addrs(), topic) {
		if r.Offset != int64(got[r.Partition]) {
			t.Fatalf("partition %d: offset %d after %d records", r.Partition, r.Offset, got[r.Partition])
		}
		got[r.Partition]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kcat read %v records per partition, want %v", got, want)
	}
}
