// Package producer is kmt's paced, sequence-numbered Kafka producer.
//
// Per topic the producer keeps a global counter n and sends message n on key
// n % K with per-key sequence n / K, to the explicit partition
// key % partitions, so every stream (topic, producer id, run id, key) lives in
// one partition and its sequence runs 0, 1, 2, ... Sends follow a fixed
// schedule (message i at start + i/rate), and the produce-ack latency is
// measured from the scheduled time, so a stalled cluster shows up as latency
// rather than as a silently lower rate. On a clean stop the producer waits
// for every in-flight message, then sends an end-of-stream marker on every
// key carrying the number of messages sent on it. Report returns, per stream,
// exactly which sequences were sent, acknowledged and failed.
package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// runIDLen is the length of a run id: 8 random bytes in hex.
const runIDLen = 16

// Intervals of the producer's housekeeping.
const (
	monitorInterval  = 250 * time.Millisecond
	warnInterval     = 10 * time.Second
	behindWarnAfter  = 100 * time.Millisecond // lateness that earns a warning
	closeWaitTimeout = 10 * time.Second
)

// Producer sends sequence-numbered messages to Kafka at a scheduled rate and
// accounts for every one of them. Create it with New, start it with Run;
// Report, Counters and TargetRate are safe to call at any time from any
// goroutine.
type Producer struct {
	conn  kafkaconf.Conn
	cfg   Config
	m     *Metrics
	runID string
	acks  sarama.RequiredAcks
	lat   *latency.Recorder

	filler    []byte        // MessageSize bytes of payload
	fillerEnc *bytesEncoder // header mode: the shared value of every message

	started atomic.Bool
	ready   chan struct{} // closed when Run starts producing
	start   time.Time     // set by Run before any goroutine reads it
	pace    pacer

	// Counters written by the goroutine that runs Run (the pacer) and by
	// the ack goroutine live on separate cache lines.
	_        [64]byte
	sent     atomic.Uint64 // data messages handed to sarama
	handed   atomic.Uint64 // data messages and end markers handed to sarama
	endSent  atomic.Uint64 // end markers handed to sarama
	_        [64]byte
	resolved atomic.Uint64 // outcomes received (data and end markers)
	acked    atomic.Uint64 // data messages acknowledged
	failed   atomic.Uint64 // data messages failed
	endAcked atomic.Uint64
	endFail  atomic.Uint64
	_        [64]byte
	behind   atomic.Uint64 // sum over topics, refreshed by the monitor
	flushing atomic.Bool   // set once stopping: resolve then signals idle

	// free holds blocks of records handed back by the ack goroutine once
	// every record in them is resolved, for the pacer to reuse: one lock
	// per block rather than a pool operation per message.
	free     blockStack
	cur      *block // pacer goroutine only: the block records are taken from
	blockLen int    // records in a block
	slot     int    // bytes of a record's slot in its block: in-body the value, else the header value

	scratch []byte // fill only (pacer goroutine, then stop): an in-body prefix

	mu     sync.Mutex
	topics []*topicState // set once by Run; streams guarded by mu
	idle   chan struct{} // closed when resolved reaches handed while flushing

	// ack goroutine only
	errsSinceLog uint64
	lastErrLog   time.Time
	lats         []time.Duration // latencies of one batch
}

// topicState is one topic's plan and accounting.
type topicState struct {
	name       string
	partitions int32
	keys       uint32
	keyEnc     []*bytesEncoder // record key per key index
	sent       atomic.Uint64   // data messages handed to sarama (written by the pacer only)
	streams    []streamState   // per key, guarded by Producer.mu
	batchAcked uint64          // ack goroutine only: acks in the batch being resolved

	sentC, ackedC, errC prometheus.Counter
	latH                prometheus.Observer
	behindG, rateG      prometheus.Gauge
	lastBehind          uint64 // monitor only
}

// streamState is the accounting of one key of one topic.
type streamState struct {
	acked, failed                seqrange.Set
	endSent, endAcked, endFailed bool
}

// record is one message in flight: the sarama message plus what the ack
// handler needs. Data records are allocated and reused in blocks (see
// block); every field is rewritten before reuse.
type record struct {
	msg   sarama.ProducerMessage
	topic *topicState
	key   uint32
	end   bool
	seq   uint64                 // per-key sequence; for an end marker, the count sent
	due   time.Duration          // scheduled send time since start
	hdr   [1]sarama.RecordHeader // header encoding: the message.Header header
	blk   *block                 // the block the record belongs to; nil for end markers
	// value is the in-body value, or with headers the message.Header
	// value: for a data record a slot of its block's buffer, reused.
	value  []byte
	prefix int // length of value's metadata prefix; 0 when value is not a data body
	valEnc bytesEncoder
}

// Block sizes: a block holds maxBlockRecords records, in-body fewer when
// their values would take more than maxBlockValueBytes (one record a block
// from 1 MiB values on), so that a producer of large messages does not
// cycle through 64 of them however slowly it sends.
const (
	maxBlockRecords    = 64
	maxBlockValueBytes = 1 << 20
)

// blockLen returns the number of records in a block.
func blockLen(body bool, size int) int {
	if !body {
		return maxBlockRecords
	}
	return min(maxBlockRecords, max(1, maxBlockValueBytes/max(size, 1)))
}

// Bounds on the resolved blocks kept for reuse; the garbage collector takes
// any more. Acknowledgements come in bursts of whole produce responses, so
// the number of records in flight swings by thousands: with room for only 8
// or 32 blocks of 64, BenchmarkProduce's producer dropped and allocated a
// block every 100 or 400 messages; with 128, about a hundred in a million.
const (
	maxFreeRecords   = 8192     // 128 blocks of 64
	maxFreeBodyBytes = 32 << 20 // in-body: at most this much idle value memory
)

// freeBlocks returns how many resolved blocks of n records to keep for
// reuse: at most maxFreeRecords records, and in-body at most
// maxFreeBodyBytes of values, but 2 blocks at least.
func freeBlocks(body bool, size, n int) int {
	limit := maxFreeRecords / n
	if body {
		limit = min(limit, maxFreeBodyBytes/(n*max(size, 1)))
	}
	return max(limit, 2)
}

// block is a run of records, and in-body their values, in contiguous
// memory. The pacer hands out a block's records in order and takes the
// next block only when all are handed out; the ack goroutine returns a
// block to Producer.free once every one of its records is resolved. Writing
// a message then walks memory sequentially, which the CPU prefetches:
// records reused one by one from a pool were scattered and cold (their
// last writer was sarama on the other core), and the pacer's first write to
// each cost about 0.2µs, a tenth of a message's whole cost. See
// BenchmarkProduce and docs/performance.md. A record held back (sarama
// retrying it) keeps its whole block from reuse; the pacer allocates new
// blocks meanwhile, so memory follows what is in flight, in steps of a
// block.
type block struct {
	recs     []record
	next     int // pacer only: index of the next record to hand out
	resolved int // ack goroutine only: records resolved since handed out
}

// newBlock returns a block of n records that belong to it and own
// consecutive slot-byte slices of one buffer (none when slot is 0).
func newBlock(n, slot int) *block {
	b := &block{recs: make([]record, n)}
	buf := make([]byte, n*slot)
	for i := range b.recs {
		r := &b.recs[i]
		r.blk = b
		if slot > 0 {
			r.value = buf[i*slot : i*slot : (i+1)*slot]
		}
	}
	return b
}

// blockStack is a bounded stack of resolved blocks. The pacer takes the
// block resolved last, the likeliest to be in a CPU cache still; when limit
// blocks wait already, the oldest is dropped.
type blockStack struct {
	limit  int // set before use
	mu     sync.Mutex
	blocks []*block // oldest first
}

// push adds a block, dropping the oldest one when the stack is full.
func (s *blockStack) push(b *block) {
	s.mu.Lock()
	if len(s.blocks) >= s.limit {
		copy(s.blocks, s.blocks[1:])
		s.blocks = s.blocks[:len(s.blocks)-1]
	}
	s.blocks = append(s.blocks, b)
	s.mu.Unlock()
}

// pop removes and returns the block pushed last, or nil.
func (s *blockStack) pop() *block {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.blocks)
	if n == 0 {
		return nil
	}
	b := s.blocks[n-1]
	s.blocks[n-1] = nil
	s.blocks = s.blocks[:n-1]
	return b
}

// hdrName is message.Header as a byte slice, shared by every message
// (sarama only reads it).
var hdrName = []byte(message.Header)

// bytesEncoder is a sarama.Encoder over a byte slice that, used by pointer,
// does not allocate when stored in an interface.
type bytesEncoder struct{ b []byte }

// Encode returns the bytes.
func (e *bytesEncoder) Encode() ([]byte, error) { return e.b, nil }

// Length returns the number of bytes.
func (e *bytesEncoder) Length() int { return len(e.b) }

// New returns a producer for the cluster conn with configuration cfg (see
// Config for the defaults). m may be nil for unregistered metrics. New does
// not connect; Run does.
func New(conn kafkaconf.Conn, cfg Config, m *Metrics) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := conn.Validate(); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	cfg = cfg.withDefaults()
	if m == nil {
		m = NewMetrics(nil)
	}
	acks, _ := requiredAcks(cfg.Acks)
	var rb [runIDLen / 2]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return nil, fmt.Errorf("producer: run id: %w", err)
	}
	p := &Producer{
		conn:   conn,
		cfg:    cfg,
		m:      m,
		runID:  hex.EncodeToString(rb[:]),
		acks:   acks,
		lat:    latency.New(),
		filler: make([]byte, cfg.MessageSize),
		ready:  make(chan struct{}),
	}
	for i := range p.filler {
		p.filler[i] = 'a' + byte(i%26)
	}
	p.fillerEnc = &bytesEncoder{b: p.filler}
	body := cfg.Encoding == message.Body
	p.blockLen = blockLen(body, cfg.MessageSize)
	p.free.limit = freeBlocks(body, cfg.MessageSize, p.blockLen)
	if body {
		p.slot = cfg.MessageSize
	} else {
		p.slot = message.MaxHeaderLen(p.cfg.ID, p.runID)
	}
	return p, nil
}

// Ready returns a channel closed once Run has connected, checked the
// topics and starts producing. It stays open if Run fails before that.
func (p *Producer) Ready() <-chan struct{} { return p.ready }

// ID returns the producer id.
func (p *Producer) ID() string { return p.cfg.ID }

// RunID returns this producer's run id (16 hex characters, new for every
// producer created).
func (p *Producer) RunID() string { return p.runID }

// Config returns the configuration with defaults applied.
func (p *Producer) Config() Config {
	c := p.cfg
	c.Topics = append([]string(nil), c.Topics...)
	return c
}

// Latency returns the produce-ack latency recorder (measured from the
// scheduled send time). Its Window is for a status line; Total for the end.
func (p *Producer) Latency() *latency.Recorder { return p.lat }

// TargetRate returns the configured total rate over all topics in messages
// per second (Rate × number of topics); 0 means unlimited.
func (p *Producer) TargetRate() float64 { return p.cfg.Rate * float64(len(p.cfg.Topics)) }

// Counters is a cheap snapshot of the producer's totals over all topics.
type Counters struct {
	// Sent counts data messages handed to the Kafka client.
	Sent uint64 `json:"sent"`
	// Acked counts data messages the cluster acknowledged.
	Acked uint64 `json:"acked"`
	// Errors counts data messages that failed.
	Errors uint64 `json:"errors"`
	// InFlight counts data messages and end markers without an outcome yet.
	InFlight uint64 `json:"in_flight"`
	// Behind is how many scheduled messages are overdue (refreshed 4×/s).
	Behind uint64 `json:"behind"`
	// EndSent, EndAcked and EndFailed count end-of-stream markers.
	EndSent   uint64 `json:"end_sent"`
	EndAcked  uint64 `json:"end_acked"`
	EndFailed uint64 `json:"end_failed"`
}

// Counters returns the current totals without locking.
func (p *Producer) Counters() Counters {
	resolved := p.resolved.Load() // before handed, so InFlight >= 0
	c := Counters{
		Acked:     p.acked.Load(),
		Errors:    p.failed.Load(),
		EndAcked:  p.endAcked.Load(),
		EndFailed: p.endFail.Load(),
		Behind:    p.behind.Load(),
		Sent:      p.sent.Load(),
		EndSent:   p.endSent.Load(),
	}
	if h := p.handed.Load(); h > resolved {
		c.InFlight = h - resolved
	}
	return c
}

// inFlight returns how many messages were handed over without an outcome.
func (p *Producer) inFlight() uint64 {
	r := p.resolved.Load()
	return p.handed.Load() - r
}

// saramaConfig returns the sarama configuration for the producer.
func (p *Producer) saramaConfig() (*sarama.Config, error) {
	sc, err := p.conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.RequiredAcks = p.acks
	sc.Producer.Idempotent = p.cfg.Idempotent
	sc.Producer.Retry.Max = max(p.cfg.Retries, 0)
	sc.Net.MaxOpenRequests = p.cfg.MaxInFlight
	// sarama's default channel buffers (256 messages): 4096 made
	// BenchmarkProduce about 15% slower (more messages queued in sarama's
	// pipeline, fewer cache hits).
	if need := p.cfg.MessageSize + len(p.cfg.ID) + 512; need > sc.Producer.MaxMessageBytes {
		sc.Producer.MaxMessageBytes = need
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("producer: kafka client configuration: %w", err)
	}
	return sc, nil
}

// Run connects, produces until ctx is done, Config.Duration has passed or
// Config.Messages were sent per topic, then stops cleanly: it waits for the
// outcome of every message in flight, sends an end-of-stream marker on every
// key of every topic, waits for their acknowledgements and closes. It
// returns an error only when it could not start (unreachable cluster,
// missing topic, bad partition layout); produce failures are counted in
// Report, not returned. Run may be called once.
func (p *Producer) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("producer: Run called twice")
	}
	log := slog.With("producer", p.cfg.ID, "run", p.runID)
	sc, err := p.saramaConfig()
	if err != nil {
		return err
	}
	log.Info("producer connecting", "brokers", p.conn.String())
	client, err := kafkaconf.Connect(ctx, p.conn, sc)
	if err != nil {
		return fmt.Errorf("producer %s: %w", p.cfg.ID, err)
	}
	defer client.Close()
	topics, err := p.planTopics(client)
	if err != nil {
		return err
	}
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		return fmt.Errorf("producer %s: start kafka producer: %w", p.cfg.ID, err)
	}

	p.mu.Lock()
	p.topics = topics
	p.mu.Unlock()
	up := p.m.Up.WithLabelValues(p.cfg.ID)
	up.Set(1)
	defer up.Set(0)
	for _, t := range topics {
		t.rateG.Add(p.cfg.Rate)
		defer t.rateG.Sub(p.cfg.Rate)
	}

	p.start = time.Now()
	p.pace = pacer{
		sched:  schedule{rate: p.cfg.Rate},
		topics: uint64(len(topics)),
		limit:  p.cfg.Messages,
		now:    func() time.Duration { return time.Since(p.start) },
		sleep:  timerSleep(),
	}
	if p.cfg.Duration > 0 {
		if p.cfg.Rate > 0 {
			if n := p.pace.sched.before(p.cfg.Duration); p.pace.limit == 0 || n < p.pace.limit {
				p.pace.limit = n
			}
		} else {
			p.pace.deadline = p.cfg.Duration
		}
	}
	collected := make(chan struct{})
	go p.collect(ap, collected)

	monCtx, stopMon := context.WithCancel(ctx)
	monDone := make(chan struct{})
	go p.monitor(monCtx, topics, log, monDone)

	log.Info("producer started", "topics", p.cfg.Topics, "rate_per_topic", p.cfg.Rate,
		"message_size", p.cfg.MessageSize, "encoding", p.cfg.Encoding.String(), "acks", p.cfg.Acks,
		"limit_per_topic", p.pace.limit, "duration", p.cfg.Duration)
	in := ap.Input()
	close(p.ready)
	p.pace.run(ctx, func(ti int, i uint64, due time.Duration) bool {
		return p.emit(ctx, in, topics[ti], i, due)
	})
	stopMon()
	<-monDone

	p.stop(ap, topics, log, collected)
	return nil
}

// planTopics learns each topic's partitions and builds its key plan.
func (p *Producer) planTopics(client sarama.Client) ([]*topicState, error) {
	var out []*topicState
	for _, name := range p.cfg.Topics {
		parts, err := client.Partitions(name)
		if err != nil {
			if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				return nil, fmt.Errorf("producer %s: topic %q does not exist on %s (create it first, e.g. with --create-topics): %w", p.cfg.ID, name, p.conn.String(), err)
			}
			return nil, fmt.Errorf("producer %s: partitions of topic %q: %w", p.cfg.ID, name, err)
		}
		np := p.cfg.Partitions
		if np == 0 {
			np = len(parts)
		}
		if np == 0 {
			return nil, fmt.Errorf("producer %s: topic %q has no partitions", p.cfg.ID, name)
		}
		if np > len(parts) {
			return nil, &ConfigError{Field: "Partitions", Value: np,
				Reason: fmt.Sprintf("topic %q has only %d partitions", name, len(parts))}
		}
		keys := p.cfg.Keys
		if keys == 0 {
			keys = np
		}
		if keys%np != 0 {
			return nil, &ConfigError{Field: "Keys", Value: keys,
				Reason: fmt.Sprintf("must be a multiple of topic %q's %d partitions so every key lives in one partition", name, np)}
		}
		t := &topicState{
			name:       name,
			partitions: int32(np),
			keys:       uint32(keys),
			keyEnc:     make([]*bytesEncoder, keys),
			streams:    make([]streamState, keys),
			sentC:      p.m.Sent.WithLabelValues(name),
			ackedC:     p.m.Acked.WithLabelValues(name),
			errC:       p.m.Errors.WithLabelValues(name),
			latH:       p.m.AckLatency.WithLabelValues(name),
			behindG:    p.m.Behind.WithLabelValues(name),
			rateG:      p.m.TargetRate.WithLabelValues(name),
		}
		for k := range t.keyEnc {
			t.keyEnc[k] = &bytesEncoder{b: message.AppendKey(nil, uint32(k))}
		}
		out = append(out, t)
	}
	return out, nil
}

// emit builds data message i of topic t and hands it to sarama. It returns
// false if ctx ended first.
func (p *Producer) emit(ctx context.Context, in chan<- *sarama.ProducerMessage, t *topicState, i uint64, due time.Duration) bool {
	keys := uint64(t.keys)
	r := p.newRecord()
	r.topic, r.key, r.seq, r.due, r.end = t, uint32(i%keys), i/keys, due, false
	now := time.Now()
	if due < 0 { // unscheduled: measure latency from now
		r.due = now.Sub(p.start)
	}
	p.fill(r, now, p.cfg.MessageSize)
	t.sent.Add(1)
	p.handed.Add(1)
	select {
	case in <- &r.msg: // fast path: no select over ctx while the channel has room
	default:
		select {
		case in <- &r.msg:
		case <-ctx.Done():
			t.sent.Add(^uint64(0))
			p.handed.Add(^uint64(0))
			return false
		}
	}
	p.sent.Add(1)
	t.sentC.Inc()
	return true
}

// newRecord returns a data record for the pacer to fill: the next one of
// the current block, of a resolved block, or of a new block.
func (p *Producer) newRecord() *record {
	b := p.cur
	if b == nil || b.next == len(b.recs) {
		if b = p.free.pop(); b == nil {
			b = newBlock(p.blockLen, p.slot)
		}
		b.next, b.resolved = 0, 0
		p.cur = b
	}
	r := &b.recs[b.next]
	b.next++
	return r
}

// recycle counts the resolved records of a batch against their blocks and
// hands every block whose records are all resolved back to the pacer.
// sarama no longer refers to a message it returned. Called from the ack
// goroutine only.
func (p *Producer) recycle(batch []outcome) {
	for _, o := range batch {
		if b := o.r.blk; b != nil {
			if b.resolved++; b.resolved == len(b.recs) {
				p.free.push(b)
			}
		}
	}
}

// fill sets r's sarama message from r's identity, created at now.
func (p *Producer) fill(r *record, now time.Time, size int) {
	t := r.topic
	ts := now.UnixNano()
	m := &r.msg
	*m = sarama.ProducerMessage{ // also resets sarama's private fields
		Topic:     t.name,
		Partition: int32(r.key % uint32(t.partitions)),
		Key:       t.keyEnc[r.key],
		Timestamp: now,
		Metadata:  r,
	}
	switch {
	case p.cfg.Encoding == message.Headers:
		// The header message.NewHeaders builds, its value written into
		// the record's slot (end markers: a new slice) instead of
		// allocated for every message.
		r.value = message.AppendHeaderValue(r.value[:0], p.cfg.ID, p.runID, r.seq, ts, r.end)
		r.hdr[0] = sarama.RecordHeader{Key: hdrName, Value: r.value}
		m.Headers = r.hdr[:]
		m.Value = p.fillerEnc
	case r.end:
		r.value = message.AppendEndBody(nil, p.cfg.ID, p.runID, r.seq, ts)
		r.prefix = 0
		r.valEnc.b = r.value
		m.Value = &r.valEnc
	default:
		p.scratch = message.AppendBodyPrefix(p.scratch[:0], p.cfg.ID, p.runID, r.seq, ts)
		if n := len(p.scratch); n == r.prefix && len(r.value) == size {
			// The payload after a prefix of the same length is the same
			// filler: rewrite the prefix only, not all size bytes.
			copy(r.value, p.scratch)
		} else {
			if cap(r.value) < size {
				r.value = make([]byte, 0, size)
			}
			r.value = message.AppendBody(r.value[:0], p.cfg.ID, p.runID, r.seq, ts, size, p.filler)
			r.prefix = n
		}
		r.valEnc.b = r.value
		m.Value = &r.valEnc
	}
}

// collectBatch is the most outcomes the ack goroutine accounts for under
// one lock.
const collectBatch = 256

// outcome is one message's result from sarama.
type outcome struct {
	r   *record
	err error
}

// collect handles sarama's successes and errors until both channels close.
// It takes whatever outcomes are ready (up to collectBatch) and accounts for
// them together, so sarama's response handling never waits on it for long.
func (p *Producer) collect(ap sarama.AsyncProducer, done chan<- struct{}) {
	defer close(done)
	succ, errs := ap.Successes(), ap.Errors()
	batch := make([]outcome, 0, collectBatch)
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			batch = append(batch, outcome{r: m.Metadata.(*record)})
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			batch = append(batch, outcome{r: e.Msg.Metadata.(*record), err: e.Err})
		}
	more:
		for len(batch) < collectBatch {
			select {
			case m, ok := <-succ:
				if !ok {
					succ = nil
					break more
				}
				batch = append(batch, outcome{r: m.Metadata.(*record)})
			default:
				break more
			}
		}
		p.resolve(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// resolve accounts for the outcomes of a batch of messages.
func (p *Producer) resolve(batch []outcome) {
	now := time.Since(p.start)
	var acked, failed, endAcked, endFailed uint64
	lats := p.lats[:0]
	for _, o := range batch {
		if r := o.r; o.err == nil && !r.end {
			d := now - r.due
			lats = append(lats, d)
			r.topic.latH.Observe(d.Seconds())
			r.topic.batchAcked++
		} else if o.err != nil {
			if !r.end {
				r.topic.errC.Inc()
			}
			p.logProduceError(r.topic, r, o.err)
		}
	}
	p.lat.RecordAll(lats)
	p.lats = lats
	for _, o := range batch {
		if t := o.r.topic; t.batchAcked > 0 {
			t.ackedC.Add(float64(t.batchAcked))
			t.batchAcked = 0
		}
	}
	p.mu.Lock()
	for _, o := range batch {
		r := o.r
		s := &r.topic.streams[r.key]
		switch {
		case r.end && o.err == nil:
			s.endAcked = true
			endAcked++
		case r.end:
			s.endFailed = true
			endFailed++
		case o.err == nil:
			s.acked.Add(r.seq)
			acked++
		default:
			s.failed.Add(r.seq)
			failed++
		}
	}
	p.mu.Unlock()
	p.recycle(batch)
	p.acked.Add(acked)
	p.failed.Add(failed)
	p.endAcked.Add(endAcked)
	p.endFail.Add(endFailed)
	p.resolved.Add(uint64(len(batch)))
	// Sequentially consistent atomics: either this load sees flushing, or
	// drained's load of resolved sees the increment above.
	if p.flushing.Load() {
		p.mu.Lock()
		if p.idle != nil && p.inFlight() == 0 {
			close(p.idle)
			p.idle = nil
		}
		p.mu.Unlock()
	}
}

// logProduceError logs the first produce error at once and then at most one
// summary per warnInterval. Called from the ack goroutine only.
func (p *Producer) logProduceError(t *topicState, r *record, err error) {
	p.errsSinceLog++
	now := time.Now()
	if !p.lastErrLog.IsZero() && now.Sub(p.lastErrLog) < warnInterval {
		return
	}
	slog.Warn("produce failed", "producer", p.cfg.ID, "run", p.runID, "topic", t.name,
		"key", r.key, "seq", r.seq, "end_marker", r.end, "errors_since_last_log", p.errsSinceLog, "err", err)
	p.errsSinceLog = 0
	p.lastErrLog = now
}

// drained returns a channel closed once no message is in flight.
func (p *Producer) drained() <-chan struct{} {
	p.flushing.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	if p.inFlight() == 0 {
		close(ch)
		return ch
	}
	p.idle = ch
	return ch
}

// waitDrained waits until no message is in flight or timeout passes, and
// reports whether everything drained.
func (p *Producer) waitDrained(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.drained():
		return true
	case <-t.C:
		return false
	}
}

// monitor refreshes the behind gauges and warns, at most every warnInterval,
// while the producer is more than behindWarnAfter behind its schedule.
func (p *Producer) monitor(ctx context.Context, topics []*topicState, log *slog.Logger, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(monitorInterval)
	defer tick.Stop()
	var lastWarn time.Time
	warned := false
	update := func(final bool) {
		elapsed := p.pace.now()
		var total uint64
		for _, t := range topics {
			var b uint64
			if !final {
				b = p.pace.behind(elapsed, t.sent.Load())
			}
			t.behindG.Add(float64(b) - float64(t.lastBehind))
			t.lastBehind = b
			total += b
		}
		p.behind.Store(total)
		if final || p.cfg.Rate <= 0 {
			return
		}
		late := time.Duration(float64(total) / float64(len(topics)) / p.cfg.Rate * float64(time.Second))
		now := time.Now()
		switch {
		case late > behindWarnAfter && (lastWarn.IsZero() || now.Sub(lastWarn) >= warnInterval):
			log.Warn("producer behind schedule: the cluster or this process does not keep up",
				"behind_messages", total, "behind", late.Round(time.Millisecond), "target_rate_per_topic", p.cfg.Rate)
			lastWarn, warned = now, true
		case warned && total == 0:
			log.Info("producer back on schedule")
			warned = false
		}
	}
	for {
		select {
		case <-ctx.Done():
			update(true)
			return
		case <-tick.C:
			update(false)
		}
	}
}

// stop flushes, sends the end markers, waits for them and closes ap.
func (p *Producer) stop(ap sarama.AsyncProducer, topics []*topicState, log *slog.Logger, collected <-chan struct{}) {
	c := p.Counters()
	log.Info("producer stopping: waiting for in-flight messages", "sent", c.Sent, "in_flight", c.InFlight)
	if !p.waitDrained(p.cfg.FlushTimeout) {
		log.Warn("producer flush timed out; messages without an outcome stay unresolved",
			"in_flight", p.inFlight(), "timeout", p.cfg.FlushTimeout)
	}

	log.Info("producer sending end-of-stream markers")
	deadline := time.NewTimer(p.cfg.FlushTimeout)
	defer deadline.Stop()
	in := ap.Input()
send:
	for _, t := range topics {
		n := t.sent.Load()
		for k := uint32(0); k < t.keys; k++ {
			count := sentOnKey(n, uint64(t.keys), k)
			r := &record{topic: t, key: k, seq: count, end: true}
			now := time.Now()
			r.due = now.Sub(p.start)
			p.fill(r, now, p.cfg.MessageSize)
			p.mu.Lock()
			t.streams[k].endSent = true
			p.mu.Unlock()
			p.endSent.Add(1)
			p.handed.Add(1)
			select {
			case in <- &r.msg: // r belongs to the ack handler from here on
			case <-deadline.C:
				p.handed.Add(^uint64(0))
				p.endSent.Add(^uint64(0))
				p.mu.Lock()
				t.streams[k].endSent = false
				p.mu.Unlock()
				log.Warn("producer could not hand over every end marker in time", "timeout", p.cfg.FlushTimeout)
				break send
			}
		}
	}
	if !p.waitDrained(p.cfg.FlushTimeout) {
		log.Warn("producer timed out waiting for end-marker acknowledgements", "in_flight", p.inFlight())
	}

	ap.AsyncClose()
	select {
	case <-collected:
	case <-time.After(closeWaitTimeout):
		log.Warn("kafka producer did not close in time", "timeout", closeWaitTimeout)
	}
	c = p.Counters()
	log.Info("producer stopped", "sent", c.Sent, "acked", c.Acked, "errors", c.Errors,
		"unresolved", c.Sent-c.Acked-c.Errors, "end_markers_sent", c.EndSent, "end_markers_acked", c.EndAcked)
}

// sentOnKey returns how many of the first n messages of a topic went to key
// k when spread over keys keys.
func sentOnKey(n, keys uint64, k uint32) uint64 {
	c := n / keys
	if uint64(k) < n%keys {
		c++
	}
	return c
}
