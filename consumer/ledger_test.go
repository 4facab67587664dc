package consumer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmtproject/kmt/internal/message"
)

// rec describes one record for the ledger tests.
type rec struct {
	producer, run string
	key           uint32
	seq           uint64
	ts            int64
	end           bool
}

func headerMsg(topic string, part int32, offset int64, r rec) *sarama.ConsumerMessage {
	hs := message.NewHeaders(r.producer, r.run, r.seq, r.ts, r.end)
	ptrs := make([]*sarama.RecordHeader, len(hs))
	for i := range hs {
		ptrs[i] = &hs[i]
	}
	return &sarama.ConsumerMessage{
		Topic: topic, Partition: part, Offset: offset,
		Key: message.AppendKey(nil, r.key), Value: make([]byte, 10), Headers: ptrs,
	}
}

// feed accounts msgs in partition p at time now, the way a claim does.
func feed(p *partition, enc message.Encoding, now time.Time, msgs ...*sarama.ConsumerMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.account(m, enc, now.UnixNano())
	}
}

func seqMsgs(topic string, part int32, firstOffset int64, producer, run string, key uint32, seqs ...uint64) []*sarama.ConsumerMessage {
	var out []*sarama.ConsumerMessage
	for i, s := range seqs {
		out = append(out, headerMsg(topic, part, firstOffset+int64(i), rec{producer: producer, run: run, key: key, seq: s, ts: time.Now().UnixNano()}))
	}
	return out
}

func span(lo, hi uint64) []uint64 {
	var out []uint64
	for v := lo; v < hi; v++ {
		out = append(out, v)
	}
	return out
}

func streamOf(t *testing.T, rep Report, id message.StreamID) StreamReport {
	t.Helper()
	for _, s := range rep.Streams {
		if s.Stream == id {
			return s
		}
	}
	t.Fatalf("stream %v not in report", id)
	return StreamReport{}
}

func TestLedgerRereadsAreNotDuplicates(t *testing.T) {
	l := NewLedger(nil)
	p := l.partition("t", "t", 0)
	now := time.Now()
	feed(p, message.Headers, now, seqMsgs("t", 0, 0, "p", "r", 0, span(0, 10)...)...)
	// A restart from an older committed offset (5) reads 5..9 again, then new ones.
	feed(p, message.Headers, now, seqMsgs("t", 0, 5, "p", "r", 0, span(5, 15)...)...)
	c := l.Counters()
	if c.Rereads != 5 || c.Duplicates != 0 || c.Received != 15 || c.InOrder != 15 {
		t.Fatalf("counters %+v", c)
	}
	// The same sequence at a new offset is a real duplicate.
	feed(p, message.Headers, now, seqMsgs("t", 0, 15, "p", "r", 0, 3)...)
	if c := l.Counters(); c.Duplicates != 1 || c.Rereads != 5 {
		t.Fatalf("counters %+v", c)
	}
	rep := l.Report()
	if rep.Totals.Rereads != 5 || rep.Totals.Duplicates != 1 || rep.Totals.Received != 15 {
		t.Fatalf("totals %+v", rep.Totals)
	}
}

func TestLedgerAdoption(t *testing.T) {
	l := NewLedger(nil)
	now := time.Now()
	// Partition 0 is read from offset 0: a stream starting at seq 5 has a gap.
	p0 := l.partition("t", "t", 0)
	feed(p0, message.Headers, now, seqMsgs("t", 0, 0, "p", "r", 0, 5, 6)...)
	// Partition 1's first record is at offset 1000: the process joined
	// mid-way, its streams are adopted at their first sequence.
	p1 := l.partition("t", "t", 1)
	feed(p1, message.Headers, now, seqMsgs("t", 1, 1000, "p", "r", 1, 500, 501, 502)...)
	// A second stream first seen there later is adopted too.
	feed(p1, message.Headers, now, seqMsgs("t", 1, 1003, "q", "r", 1, 7, 8)...)

	l.Sweep(now.Add(time.Hour))
	rep := l.Report()
	s0 := streamOf(t, rep, message.StreamID{Topic: "t", Producer: "p", Run: "r", Key: 0})
	if s0.Adopted || s0.Lost.String() != "0-4" || s0.Seen.String() != "5-6" {
		t.Fatalf("partition 0 stream: %+v", s0)
	}
	s1 := streamOf(t, rep, message.StreamID{Topic: "t", Producer: "p", Run: "r", Key: 1})
	if !s1.Adopted || s1.Base != 500 || !s1.Lost.Empty() || s1.Seen.String() != "500-502" {
		t.Fatalf("adopted stream: %+v", s1)
	}
	s2 := streamOf(t, rep, message.StreamID{Topic: "t", Producer: "q", Run: "r", Key: 1})
	if !s2.Adopted || s2.Base != 7 || s2.Gaps != 0 {
		t.Fatalf("second adopted stream: %+v", s2)
	}
	if rep.Totals.Lost != 5 || rep.Totals.Received != 7 {
		t.Fatalf("totals %+v", rep.Totals)
	}
	var adopting []bool
	for _, p := range rep.Partitions {
		adopting = append(adopting, p.Adopting)
	}
	if !reflect.DeepEqual(adopting, []bool{false, true}) {
		t.Fatalf("partition adopting flags %v", adopting)
	}
}

func TestLedgerResumeAfterOffsetsReadElsewhere(t *testing.T) {
	l := NewLedger(nil)
	now := time.Now()
	p := l.partition("t", "t", 0)
	feed(p, message.Headers, now, seqMsgs("t", 0, 0, "p", "r", 0, span(0, 10)...)...)
	// Another process owned the partition and committed offset 20 (seqs
	// 10..19); this process gets it back.
	p.beginClaim(20)
	feed(p, message.Headers, now, seqMsgs("t", 0, 20, "p", "r", 0, span(20, 25)...)...)
	l.Sweep(now.Add(time.Hour))
	rep := l.Report()
	s := rep.Streams[0]
	if !s.Lost.Empty() || s.Gaps != 0 || s.Elsewhere.String() != "10-19" || s.Seen.String() != "0-9,20-24" {
		t.Fatalf("stream %+v", s)
	}
	if rep.Partitions[0].Resumes != 1 {
		t.Fatalf("partition %+v", rep.Partitions[0])
	}
	// A claim starting at or below what was processed is not a resume.
	p.beginClaim(22)
	p.beginClaim(-2)
	if r := l.Report(); r.Partitions[0].Resumes != 1 {
		t.Fatalf("resumes %d", r.Partitions[0].Resumes)
	}
}

func TestLedgerForeignRecords(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l := NewLedger(m)
	now := time.Now()
	p := l.partition("dst.t", "t", 0)
	rnd := rand.New(rand.NewPCG(1, 1))
	random := make([]byte, 100)
	for i := range random {
		random[i] = byte(rnd.IntN(256))
	}
	good := headerMsg("dst.t", 0, 0, rec{producer: "p", run: "r", seq: 0, ts: now.UnixNano()})
	msgs := []*sarama.ConsumerMessage{
		{Offset: 1, Key: random[:8], Value: random},                                                                // bad_key
		{Offset: 2, Key: []byte("3"), Value: random},                                                               // no_metadata (no headers)
		{Offset: 3, Key: []byte("3"), Value: []byte("x"), Headers: []*sarama.RecordHeader{{Key: []byte("trace")}}}, // no_metadata
		{Offset: 4, Key: []byte("3"), Value: message.AppendBody(nil, "p", "r", 1, 2, 50, make([]byte, 50))},        // wrong_encoding
		{Offset: 5, Key: nil, Value: nil},                                                                          // bad_key
	}
	msgs = append(msgs, &sarama.ConsumerMessage{Offset: 6, Key: []byte("1"), Headers: []*sarama.RecordHeader{{Key: []byte("kmt"), Value: []byte("p/r;one;2")}}}) // bad_sequence
	feed(p, message.Headers, now, append([]*sarama.ConsumerMessage{good}, msgs...)...)

	// In-body mode: wrong field count, random, and a header-encoded record.
	pb := l.partition("dst.b", "b", 0)
	feed(pb, message.Body, now,
		&sarama.ConsumerMessage{Offset: 0, Key: []byte("0"), Value: []byte("p/r;1;2")},                          // no_metadata
		&sarama.ConsumerMessage{Offset: 1, Key: []byte("0"), Value: []byte("pr;1;2;x")},                         // bad_identity
		&sarama.ConsumerMessage{Offset: 2, Key: []byte("0"), Value: []byte("p/r;1;x;y")},                        // bad_time
		headerMsg("dst.b", 0, 3, rec{producer: "p", run: "r", seq: 0, ts: 1}),                                   // wrong_encoding
		&sarama.ConsumerMessage{Offset: 4, Key: []byte("0"), Value: []byte("p/r;0;5;payload")},                  // good
		&sarama.ConsumerMessage{Offset: 5, Key: []byte("0"), Value: message.AppendEndBody(nil, "p", "r", 1, 6)}, // end
	)
	rep := l.Report()
	want := map[string]uint64{"bad_key": 2, "no_metadata": 3, "wrong_encoding": 2, "bad_sequence": 1, "bad_identity": 1, "bad_time": 1}
	if !reflect.DeepEqual(rep.Totals.ForeignByReason, want) {
		t.Fatalf("foreign by reason %v, want %v", rep.Totals.ForeignByReason, want)
	}
	if rep.Totals.Foreign != 10 || rep.Totals.Received != 2 || rep.Totals.EndMarkers != 1 || rep.Totals.Lost != 0 {
		t.Fatalf("totals %+v", rep.Totals)
	}
	if c := l.Counters(); c.Foreign != 10 || c.Received != 2 {
		t.Fatalf("counters %+v", c)
	}
	if v := testutil.ToFloat64(m.Foreign.WithLabelValues("t", "no_metadata")); v != 2 {
		t.Fatalf("foreign metric t/no_metadata = %v", v)
	}
	if v := testutil.ToFloat64(m.Foreign.WithLabelValues("b", "wrong_encoding")); v != 1 {
		t.Fatalf("foreign metric b/wrong_encoding = %v", v)
	}
}

func TestLedgerStreamCap(t *testing.T) {
	l := NewLedger(nil, WithMaxStreams(3))
	p := l.partition("t", "t", 0)
	var msgs []*sarama.ConsumerMessage
	for k := range uint32(5) {
		for s := range uint64(2) {
			msgs = append(msgs, headerMsg("t", 0, int64(len(msgs)), rec{producer: "p", run: "r", key: k, seq: s, ts: 1}))
		}
	}
	feed(p, message.Headers, time.Now(), msgs...)
	c := l.Counters()
	if c.Streams != 3 || c.Untracked != 4 || c.Received != 6 {
		t.Fatalf("counters %+v", c)
	}
	if rep := l.Report(); rep.Totals.Untracked != 4 || rep.Totals.Streams != 3 {
		t.Fatalf("totals %+v", rep.Totals)
	}
}

func TestLedgerSweepAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l := NewLedger(m, WithLossGrace(10*time.Second))
	p := l.partition("dst.t", "t", 0)
	t0 := time.Unix(1_700_000_000, 0)
	// 0 1 2 _ 4 5 _ _ 8, then 2 again, then the swapped 3 arrives.
	feed(p, message.Headers, t0, seqMsgs("dst.t", 0, 0, "p", "r", 0, 0, 1, 2, 4, 5, 8, 2)...)
	c := l.Counters()
	if c.InFlight != 3 || c.Gaps != 2 || c.Duplicates != 1 {
		t.Fatalf("counters %+v", c)
	}
	l.Sweep(t0.Add(9 * time.Second))
	if c := l.Counters(); c.LostDeclared != 0 || c.InFlight != 3 {
		t.Fatalf("swept too early: %+v", c)
	}
	if v := testutil.ToFloat64(m.InFlight.WithLabelValues("t")); v != 3 {
		t.Fatalf("in flight gauge %v", v)
	}
	feed(p, message.Headers, t0.Add(9*time.Second), seqMsgs("dst.t", 0, 7, "p", "r", 0, 3)...)
	l.Sweep(t0.Add(10 * time.Second))
	c = l.Counters()
	if c.LostDeclared != 2 || c.Lost != 2 || c.InFlight != 0 || c.Reordered != 1 {
		t.Fatalf("after grace: %+v", c)
	}
	// 6 arrives after it was declared lost: late.
	feed(p, message.Headers, t0.Add(11*time.Second), seqMsgs("dst.t", 0, 8, "p", "r", 0, 6)...)
	l.Sweep(t0.Add(12 * time.Second))
	c = l.Counters()
	if c.Late != 1 || c.Lost != 1 || c.LostDeclared != 2 || c.Received != 8 {
		t.Fatalf("after late arrival: %+v", c)
	}
	get := func(result string) float64 {
		return testutil.ToFloat64(m.Messages.WithLabelValues("t", "p", result))
	}
	if get("in_order") != 4 || get("gap") != 2 || get("duplicate") != 1 || get("reordered") != 1 || get("late") != 1 {
		t.Fatalf("message metrics: in_order %v gap %v dup %v reordered %v late %v",
			get("in_order"), get("gap"), get("duplicate"), get("reordered"), get("late"))
	}
	if v := testutil.ToFloat64(m.Lost.WithLabelValues("t", "p")); v != 2 {
		t.Fatalf("lost metric %v", v)
	}
	if v := testutil.ToFloat64(m.Streams); v != 1 {
		t.Fatalf("streams gauge %v", v)
	}
	// Latency: 8 first arrivals recorded, the duplicate not.
	if n := l.Latency().Total().Count; n != 8 {
		t.Fatalf("latency count %d", n)
	}
	if n := testutil.CollectAndCount(m.Latency); n != 1 {
		t.Fatalf("latency series %d", n)
	}
	if n := m.Latency.Count("t"); n != 8 {
		t.Fatalf("latency histogram count %d", n)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("promlint: %v %v", probs, err)
	}
}

func TestProducerLabelCap(t *testing.T) {
	m := NewMetrics(nil)
	for i := range MaxProducerLabels {
		if got := m.ProducerLabel(fmt.Sprint("p", i)); got != fmt.Sprint("p", i) {
			t.Fatalf("label %d = %s", i, got)
		}
	}
	if got := m.ProducerLabel("late-comer"); got != OtherProducer {
		t.Fatalf("label beyond the cap = %s", got)
	}
	if got := m.ProducerLabel("p7"); got != "p7" {
		t.Fatalf("known label = %s", got)
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := NewMetrics(reg), NewMetrics(reg)
	if a.Messages != b.Messages || a.Up != b.Up {
		t.Fatal("second NewMetrics did not reuse the registered collectors")
	}
}

func TestReportJSONRoundTripAndMerge(t *testing.T) {
	now := time.Now()
	mk := func(id string, firstOffset int64, seqs ...uint64) Report {
		l := NewLedger(nil, WithLossGrace(time.Second))
		l.addConsumer(id)
		p := l.partition("t", "t", 0)
		feed(p, message.Headers, now, seqMsgs("t", 0, firstOffset, "p", "r", 0, seqs...)...)
		l.Sweep(now.Add(time.Minute))
		return l.Report()
	}
	// Consumer a saw 0-4 and 8-9 (5-7 declared lost there); consumer b, in
	// another process, started from a committed offset (3) and saw 3-6.
	a := mk("a", 0, 0, 1, 2, 3, 4, 8, 9)
	b := mk("b", 3, 3, 4, 5, 6)
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, a) {
		t.Fatalf("JSON round trip differs:\n got %+v\nwant %+v", back, a)
	}
	u := Merge(back, b)
	if len(u.Streams) != 1 {
		t.Fatalf("merged streams %d", len(u.Streams))
	}
	s := u.Streams[0]
	if s.Seen.String() != "0-6,8-9" || s.Lost.String() != "7" || s.LostDeclared.String() != "5-7" {
		t.Fatalf("merged stream %+v", s)
	}
	if u.Totals.Received != 9 || u.Totals.Lost != 1 || !reflect.DeepEqual(u.Consumers, []string{"a", "b"}) {
		t.Fatalf("merged totals %+v consumers %v", u.Totals, u.Consumers)
	}
	if len(u.Partitions) != 2 || u.Partitions[0].Consumer != "a" || u.Partitions[1].Consumer != "b" {
		t.Fatalf("merged partitions %+v", u.Partitions)
	}
	// Merge did not modify its inputs.
	if a.Streams[0].Seen.String() != "0-4,8-9" {
		t.Fatalf("input changed: %s", a.Streams[0].Seen)
	}
}

// steadyRecords is a set of reusable records, one per slot, rewritten in
// place (without allocating) to carry the next messages of a steady
// stream: global counter n, key n % keys, sequence n / keys, offset n.
type steadyRecords struct {
	keys int
	enc  message.Encoding
	size int
	ts   int64
	msgs []*sarama.ConsumerMessage
	seqs [][]byte // per slot: kmt header value buffer
	vals [][]byte // per slot: value buffer
	kbuf [][]byte // per slot: key buffer
}

func newSteady(slots, keys int, enc message.Encoding, size int) *steadyRecords {
	s := &steadyRecords{keys: keys, enc: enc, size: size, ts: time.Now().UnixNano()}
	for range slots {
		hs := message.NewHeaders("producer-00", "run-0123456789", 0, s.ts, false)
		ptrs := make([]*sarama.RecordHeader, len(hs))
		for i := range hs {
			ptrs[i] = &hs[i]
		}
		s.seqs = append(s.seqs, make([]byte, 0, message.MaxHeaderLen("producer-00", "run-0123456789")))
		s.vals = append(s.vals, make([]byte, size, size+64))
		s.kbuf = append(s.kbuf, make([]byte, 0, 12))
		s.msgs = append(s.msgs, &sarama.ConsumerMessage{Topic: "t", Headers: ptrs})
	}
	return s
}

// fill rewrites every slot for counters first, first+1, ... and returns
// the records.
func (s *steadyRecords) fill(first int) []*sarama.ConsumerMessage {
	for i, m := range s.msgs {
		n := first + i
		seq := uint64(n / s.keys)
		m.Offset = int64(n)
		s.kbuf[i] = message.AppendKey(s.kbuf[i][:0], uint32(n%s.keys))
		m.Key = s.kbuf[i]
		if s.enc == message.Body {
			s.vals[i] = message.AppendBody(s.vals[i][:0], "producer-00", "run-0123456789", seq, s.ts, s.size, s.vals[i][:s.size])
			m.Value = s.vals[i]
			continue
		}
		m.Value = s.vals[i][:s.size]
		s.seqs[i] = message.AppendHeaderValue(s.seqs[i][:0], "producer-00", "run-0123456789", seq, s.ts, false)
		m.Headers[0].Value = s.seqs[i]
	}
	return s.msgs
}

// BenchmarkValidate measures the validation hot path per message in the
// steady state: decode, stream lookup, accounting, and latency recording
// (HdrHistogram and Prometheus buckets), with the partition lock and the
// receive timestamp taken once per batch of 256 as the consumer does. 64
// streams, 100-byte values. Records are prepared in chunks outside the
// timed region. cpu-ns/op is the process CPU time per message in the timed
// region, which stays meaningful when other processes load the machine.
func BenchmarkValidate(b *testing.B) {
	for _, enc := range []message.Encoding{message.Headers, message.Body} {
		b.Run(enc.String(), func(b *testing.B) {
			const chunk = 16384
			l := NewLedger(NewMetrics(prometheus.NewRegistry()))
			p := l.partition("t", "t", 0)
			src := newSteady(chunk, 64, enc, 100)
			n := 0
			run := func(msgs []*sarama.ConsumerMessage) {
				for i := 0; i < len(msgs); i += 256 {
					now := time.Now().UnixNano()
					p.mu.Lock()
					for _, m := range msgs[i:min(i+256, len(msgs))] {
						p.account(m, enc, now)
					}
					p.mu.Unlock()
				}
				n += len(msgs)
			}
			run(src.fill(0)) // warm up: create the streams
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				msgs := src.fill(n)[:min(chunk, b.N-done)]
				b.StartTimer()
				c0 := processCPU()
				run(msgs)
				cpu += processCPU() - c0
				done += len(msgs)
			}
			b.StopTimer()
			if cpu > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			}
			if c := l.Counters(); c.InOrder != uint64(n) || c.Foreign != 0 {
				b.Fatalf("counters %+v after %d records", c, n)
			}
		})
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	for _, enc := range []message.Encoding{message.Headers, message.Body} {
		l := NewLedger(nil)
		p := l.partition("t", "t", 0)
		src := newSteady(1024, 16, enc, 100)
		msgs := src.fill(0)
		for _, m := range msgs[:64] { // create the streams
			p.account(m, enc, time.Now().UnixNano())
		}
		i := 64
		allocs := testing.AllocsPerRun(500, func() {
			p.account(msgs[i], enc, time.Now().UnixNano())
			i++
		})
		if allocs != 0 {
			t.Errorf("%s: validation allocates %.2f times per message", enc, allocs)
		}
		if c := l.Counters(); c.InOrder != uint64(i) {
			t.Fatalf("%s: counters %+v after %d", enc, c, i)
		}
	}
}

// memoryPerStream builds a ledger with the given shape (partitions x
// producers x keys per partition), feeds every stream `per` contiguous
// messages and returns the heap bytes per stream.
func memoryPerStream(parts, producers, keysPerPart, per int) float64 {
	ts := time.Now().UnixNano()
	var before, after runtime.MemStats
	// The ledger's fixed costs (latency histograms, partitions) are not
	// per stream: measure from after they exist.
	l := NewLedger(nil, WithMaxStreams(1<<30))
	for pi := range parts {
		l.partition("t", "t", int32(pi))
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	var off int64
	for pi := range parts {
		p := l.partition("t", "t", int32(pi))
		p.mu.Lock()
		for s := range per {
			for pr := range producers {
				for k := range keysPerPart {
					m := headerMsg("t", int32(pi), off, rec{
						producer: "producer-" + strconv.Itoa(pr), run: "0123456789abcdef",
						key: uint32(k*parts + pi), seq: uint64(s), ts: ts,
					})
					off++
					p.account(m, message.Headers, ts)
				}
			}
		}
		p.meta = message.Meta{} // drop the reference to the last record
		p.mu.Unlock()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	streams := parts * producers * keysPerPart
	if c := l.Counters(); c.Streams != int64(streams) || c.InOrder != uint64(streams*per) {
		panic(fmt.Sprintf("counters %+v", c))
	}
	runtime.KeepAlive(l)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(streams)
}

func TestMemoryPerStream(t *testing.T) {
	// 8 partitions x 100 producer runs x 16 keys per partition = 12800
	// streams, 20 contiguous messages each.
	bytes := memoryPerStream(8, 100, 16, 20)
	t.Logf("memory per tracked stream: %.0f bytes", bytes)
	if bytes > 200 {
		t.Fatalf("memory per tracked stream %.0f bytes, want <= 200", bytes)
	}
}

// BenchmarkMemoryPerStream reports the steady-state heap per tracked stream
// (bytes/stream) for 102400 streams: 8 partitions x 100 producer runs x 128
// keys per partition.
func BenchmarkMemoryPerStream(b *testing.B) {
	var bytes float64
	for range b.N {
		bytes = memoryPerStream(8, 100, 128, 5)
	}
	b.ReportMetric(bytes, "bytes/stream")
}

// TestLedgerHostileSequenceAndIdentity feeds the records issue reports
// showed corrupting a stream: a sequence of 2^64-1 (and 2^63, just above
// message.MaxSeq) on a healthy stream, and producer ids the producer
// itself refuses (over 200 bytes, control bytes). They are foreign
// (bad_sequence, bad_identity), open no stream, and the healthy stream
// ends with nothing lost, pending or reordered.
func TestLedgerHostileSequenceAndIdentity(t *testing.T) {
	l := NewLedger(nil, WithLossGrace(time.Second))
	p := l.partition("t", "t", 0)
	now := time.Now()
	msgs := seqMsgs("t", 0, 0, "p", "r", 0, 0, 1, 2)
	off := int64(len(msgs))
	for _, r := range []rec{
		{producer: "p", run: "r", seq: 1<<64 - 1, ts: now.UnixNano()},
		{producer: "p", run: "r", seq: message.MaxSeq + 1, ts: now.UnixNano()},
		{producer: strings.Repeat("p", 201), run: "r", seq: 5, ts: now.UnixNano()},
		{producer: "p\x01", run: "r", seq: 5, ts: now.UnixNano()},
		{producer: "p", run: "r\n", seq: 5, ts: now.UnixNano()},
	} {
		msgs = append(msgs, headerMsg("t", 0, off, r))
		off++
	}
	msgs = append(msgs, seqMsgs("t", 0, off, "p", "r", 0, 3, 4)...)
	msgs = append(msgs, headerMsg("t", 0, off+2, rec{producer: "p", run: "r", seq: 5, ts: now.UnixNano(), end: true}))
	feed(p, message.Headers, now, msgs...)
	l.Sweep(now.Add(time.Hour))
	rep := l.Report()
	want := map[string]uint64{"bad_sequence": 2, "bad_identity": 3}
	if !reflect.DeepEqual(rep.Totals.ForeignByReason, want) {
		t.Errorf("foreign by reason %v, want %v", rep.Totals.ForeignByReason, want)
	}
	if tot := rep.Totals; tot.Streams != 1 || tot.Received != 5 || tot.Lost != 0 || tot.Pending != 0 || tot.Reordered != 0 || tot.Gaps != 0 {
		t.Errorf("totals %+v", tot)
	}
	if c := l.Counters(); c.Lost != 0 || c.InOrder != 5 || c.Foreign != 5 {
		t.Errorf("counters %+v", c)
	}
}

// TestReceiveTimeNotBeforeArrival drives a claim's loop with a record that
// reaches the consumer while the clock is being read for the batch before
// it: its receive time must be no earlier than its arrival, so its latency
// is never at or below zero. The clock is stepped by hand (10 ms per read)
// so the test does not depend on timing. When the receive time was taken
// before the waiting records were drained, this record got the earlier
// batch's time, 1 ms before it was created.
func TestReceiveTimeNotBeforeArrival(t *testing.T) {
	l := NewLedger(nil)
	p := l.partition("t", "t", 0)
	c := &Consumer{cfg: Config{Batch: DefaultBatch}, ledger: l}
	t0 := time.Now().UnixNano()
	msgs := make(chan *sarama.ConsumerMessage, 4)
	reads := 0
	l.now = func() int64 {
		reads++
		if reads == 1 {
			// A record created 1 ms after this read arrives now.
			msgs <- headerMsg("t", 0, 1, rec{producer: "p", run: "r", seq: 1, ts: t0 + int64(time.Millisecond)})
		}
		return t0 + int64(reads-1)*int64(10*time.Millisecond)
	}
	msgs <- headerMsg("t", 0, 0, rec{producer: "p", run: "r", seq: 0, ts: t0 - int64(5*time.Millisecond)})
	done := make(chan struct{})
	var marked []int64
	go func() {
		for {
			p.mu.Lock()
			n := p.nextOffset
			p.mu.Unlock()
			if n == 2 {
				close(done)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	c.consume(done, msgs, p, nil, func(last *sarama.ConsumerMessage) { marked = append(marked, last.Offset) })
	if got := l.Counters(); got.InOrder != 2 {
		t.Fatalf("counters %+v", got)
	}
	if s := l.Latency().Total(); s.Min < time.Millisecond {
		t.Errorf("minimum latency %v: a record was given a receive time before it arrived", s.Min)
	}
	if len(marked) == 0 || marked[len(marked)-1] != 1 {
		t.Errorf("marked %v, want the last batch to end at offset 1", marked)
	}
}

// TestLedgerClockSkewCounted checks that first arrivals created in the
// future (producer clock ahead) and older than the 1 h latency cap are
// counted, in the counters and in kmt_consumer_latency_out_of_range_total,
// and that duplicates are not.
func TestLedgerClockSkewCounted(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	l := NewLedger(m)
	p := l.partition("dst.t", "t", 0)
	now := time.Now()
	at := func(off int64, seq uint64, d time.Duration) *sarama.ConsumerMessage {
		return headerMsg("dst.t", 0, off, rec{producer: "p", run: "r", seq: seq, ts: now.Add(d).UnixNano()})
	}
	feed(p, message.Headers, now,
		at(0, 0, -time.Millisecond), // fine
		at(1, 1, 2*time.Second),     // future
		at(2, 2, 1),                 // 1 ns in the future
		at(3, 2, time.Second),       // a duplicate: not a latency
		at(4, 3, -2*time.Hour),      // over the cap
		at(5, 4, -MaxLatency),       // exactly the cap: in range
		at(6, 5, -time.Millisecond), // fine
	)
	l.Sweep(now)
	c := l.Counters()
	if c.LatencyFuture != 2 || c.LatencyOverCap != 1 {
		t.Errorf("future %d, over cap %d; want 2 and 1", c.LatencyFuture, c.LatencyOverCap)
	}
	if v := testutil.ToFloat64(m.LatencyOutOfRange.WithLabelValues("t", "future")); v != 2 {
		t.Errorf("metric future = %v", v)
	}
	if v := testutil.ToFloat64(m.LatencyOutOfRange.WithLabelValues("t", "over_1h")); v != 1 {
		t.Errorf("metric over_1h = %v", v)
	}
	if tot := l.Report().Totals; tot.LatencyFuture != 2 || tot.LatencyOverCap != 1 {
		t.Errorf("report totals future %d, over cap %d", tot.LatencyFuture, tot.LatencyOverCap)
	}
}

// TestLedgerMovedKeyNoFalseLoss moves a stream's key from partition 0 to
// partition 1 mid-stream (partitions added, keys remapped by a replicator
// that partitions by key hash), in both orders of accounting, with the end
// marker in the new partition. Neither the live counters nor
// kmt_consumer_lost_messages_total may show a loss, then or after the loss
// grace, and the report agrees; a sequence really missing in the moved
// stream is still declared lost once the grace has passed.
func TestLedgerMovedKeyNoFalseLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		oldFirst bool
		drop     uint64 // a sequence dropped on the new partition (0: none)
	}{{"old partition first", true, 0}, {"new partition first", false, 0}, {"real loss after the move", true, 15}} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics(prometheus.NewRegistry())
			l := NewLedger(m, WithLossGrace(10*time.Second))
			p0, p1 := l.partition("t", "t", 0), l.partition("t", "t", 1)
			now := time.Now()
			old := seqMsgs("t", 0, 0, "p", "r", 3, span(0, 10)...)
			var seqs []uint64
			for _, s := range span(10, 20) {
				if s != tc.drop {
					seqs = append(seqs, s)
				}
			}
			moved := seqMsgs("t", 1, 0, "p", "r", 3, seqs...)
			moved = append(moved, headerMsg("t", 1, int64(len(seqs)), rec{producer: "p", run: "r", key: 3, seq: 20, ts: now.UnixNano(), end: true}))
			if tc.oldFirst {
				feed(p0, message.Headers, now, old...)
				feed(p1, message.Headers, now, moved...)
			} else {
				feed(p1, message.Headers, now, moved...)
				feed(p0, message.Headers, now, old...)
			}
			lostMetric := func() float64 { return testutil.ToFloat64(m.Lost.WithLabelValues("t", "p")) }
			for _, at := range []time.Duration{0, time.Second, 11 * time.Second, time.Minute} {
				l.Sweep(now.Add(at))
				c := l.Counters()
				wantLost := uint64(0)
				if tc.drop != 0 && at > 10*time.Second {
					wantLost = 1
				}
				if c.Lost != wantLost || lostMetric() != float64(wantLost) {
					t.Fatalf("at +%v: counters lost %d, metric %v; want %d (counters %+v)", at, c.Lost, lostMetric(), wantLost, c)
				}
			}
			rep := l.Report()
			want := uint64(20)
			if tc.drop != 0 {
				want = 19
			}
			if rep.Totals.Received != want || rep.Totals.Lost != 20-want || rep.Totals.Pending != 0 || rep.Totals.Elsewhere != 0 {
				t.Fatalf("report totals %+v", rep.Totals)
			}
		})
	}
}
