package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// MaxLatency is the largest end-to-end latency the histograms record:
// older first arrivals are recorded as MaxLatency and counted (see
// Counters.LatencyOverCap).
const MaxLatency = time.Hour

// Defaults of the Ledger options.
const (
	DefaultLossGrace  = 30 * time.Second
	DefaultMaxStreams = 100000
)

// LedgerOption configures a Ledger.
type LedgerOption func(*Ledger)

// WithLossGrace sets how long a gap may stay open before its sequences are
// declared lost. Default DefaultLossGrace (30s).
func WithLossGrace(d time.Duration) LedgerOption { return func(l *Ledger) { l.grace = d } }

// WithMaxStreams caps the number of tracked streams; messages of streams
// beyond the cap are counted as untracked (with one warning) instead of
// growing memory without bound. Default DefaultMaxStreams (100000).
func WithMaxStreams(n int) LedgerOption { return func(l *Ledger) { l.maxStreams = int64(n) } }

// WithLatencyRecorder makes the ledger record end-to-end latencies into r.
// Default: a new recorder, see Ledger.Latency.
func WithLatencyRecorder(r *latency.Recorder) LedgerOption { return func(l *Ledger) { l.lat = r } }

// WithIgnore makes the ledger skip, unaccounted, every record ignore returns
// true for, as a consumer with a bug would: self-tests of the controller's
// loss attribution use it. Default nil: nothing is skipped.
func WithIgnore(ignore func(*sarama.ConsumerMessage) bool) LedgerOption {
	return func(l *Ledger) { l.ignore = ignore }
}

// PublishFunc publishes the accounting of the partitions that changed since
// the last successful publication (every partition the first time). It must
// return only once the publication is durable: the consumers commit offsets
// only up to what a successful publication covered.
type PublishFunc func(ctx context.Context, parts []PartitionAccount) error

// WithPublisher makes the ledger publish its accounting with publish every
// interval (a non-positive interval means DefaultPublishInterval) and at the
// end of every claim, and makes its consumers commit a partition's offsets
// only up to what the last successful publication covered, so that a
// process killed at any moment leaves nothing accounted that no publication
// holds and no later owner re-reads (see docs/accounting.md). Default nil:
// nothing is published and offsets are committed as soon as they are
// accounted.
func WithPublisher(publish PublishFunc, interval time.Duration) LedgerOption {
	return func(l *Ledger) {
		l.publish = publish
		if interval <= 0 {
			interval = DefaultPublishInterval
		}
		l.pubInterval = interval
	}
}

// DefaultPublishInterval is how often a ledger with a publisher publishes.
const DefaultPublishInterval = time.Second

// Ledger is the accounting state shared by every consumer instance of one
// process: per (topic, partition) the streams seen there with their
// Trackers, the offset high-water mark that turns re-reads into no-ops, the
// foreign-record counts, and the end-to-end latency histogram.
//
// Each partition is accounted by one consumer at a time: a consumer holds
// the partition's claim lock from the start to the end of its claim, so
// after a rebalance the new owner starts only once the old one has finished.
type Ledger struct {
	m          *Metrics
	grace      time.Duration
	maxStreams int64
	lat        *latency.Recorder
	ignore     func(*sarama.ConsumerMessage) bool

	// now reads the wall clock in Unix nanoseconds; tests replace it.
	now func() int64

	streams   atomic.Int64
	limitHit  atomic.Bool
	lastSweep atomic.Int64

	publish     PublishFunc
	pubInterval time.Duration
	pubMu       sync.Mutex // serialises publications
	lastPublish atomic.Int64

	mu        sync.Mutex
	parts     map[partKey]*partition
	list      []*partition
	consumers []string

	// streamMu guards creating runs and streams in every partition (reads
	// of a partition's runs and streams maps from another partition's
	// account need it) and moved.
	streamMu sync.Mutex
	// moved holds the streams that have a tracker in more than one
	// partition of a topic (their key moved: partitions added and keys
	// remapped). Rare; see Sweep.
	moved map[movedKey]*movedStream
}

// movedKey identifies a stream across the partitions of its topic.
type movedKey struct {
	source, producer, run string
	key                   uint32
}

// movedStream lists the trackers of one stream in several partitions.
type movedStream struct {
	members []movedMember
}

type movedMember struct {
	p *partition
	t *Tracker
}

type partKey struct {
	topic string
	id    int32
}

// NewLedger returns an empty ledger reporting to m (nil: unregistered
// metrics).
func NewLedger(m *Metrics, opts ...LedgerOption) *Ledger {
	if m == nil {
		m = NewMetrics(nil)
	}
	l := &Ledger{
		m:          m,
		grace:      DefaultLossGrace,
		maxStreams: DefaultMaxStreams,
		parts:      map[partKey]*partition{},
		moved:      map[movedKey]*movedStream{},
	}
	for _, o := range opts {
		o(l)
	}
	if l.lat == nil {
		l.lat = latency.New()
	}
	if l.grace <= 0 {
		l.grace = DefaultLossGrace
	}
	if l.maxStreams <= 0 {
		l.maxStreams = DefaultMaxStreams
	}
	return l
}

// clock returns the receive time for a batch of records, Unix nanoseconds.
func (l *Ledger) clock() int64 {
	if l.now != nil {
		return l.now()
	}
	return time.Now().UnixNano()
}

// Accounted returns the offset below which this process has accounted every
// record of partition of topic (the topic read), and false when it has not
// read the partition at all. Trimming the destination must not delete at or
// above it.
func (l *Ledger) Accounted(topic string, partition int32) (int64, bool) {
	l.mu.Lock()
	p := l.parts[partKey{topic, partition}]
	l.mu.Unlock()
	if p == nil {
		return 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.nextOffset, p.started
}

// LossGrace returns the loss grace period.
func (l *Ledger) LossGrace() time.Duration { return l.grace }

// Latency returns the recorder of end-to-end latencies (first arrivals
// only), for the status line's window percentiles and the final summary.
func (l *Ledger) Latency() *latency.Recorder { return l.lat }

// Metrics returns the metrics the ledger reports to.
func (l *Ledger) Metrics() *Metrics { return l.m }

func (l *Ledger) addConsumer(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.consumers {
		if c == id {
			return
		}
	}
	l.consumers = append(l.consumers, id)
}

// partition returns the state of a Kafka partition, creating it. topic is
// the topic read; source is the stream topic (topic without the prefix a
// replicator added).
func (l *Ledger) partition(topic, source string, id int32) *partition {
	k := partKey{topic, id}
	l.mu.Lock()
	defer l.mu.Unlock()
	if p := l.parts[k]; p != nil {
		return p
	}
	p := &partition{
		l:       l,
		pubNext: -1,
		topic:   topic,
		source:  source,
		id:      id,
		own:     make(chan struct{}, 1),
		runs:    map[string]*run{},
	}
	for i := range p.foreign {
		p.foreign[i] = l.m.Foreign.WithLabelValues(source, reasonNames[i])
	}
	p.untrackedC = l.m.Untracked.WithLabelValues(source)
	p.published.Store(-1)
	p.futureC = l.m.LatencyOutOfRange.WithLabelValues(source, "future")
	p.overCapC = l.m.LatencyOutOfRange.WithLabelValues(source, "over_1h")
	l.parts[k] = p
	l.list = append(l.list, p)
	return p
}

func (l *Ledger) partitions() []*partition {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*partition(nil), l.list...)
}

// Why a record was not a kmt message.
const (
	reasonBadKey = iota
	reasonNoMetadata
	reasonBadSequence
	reasonBadTime
	reasonBadIdentity
	reasonWrongEncoding
	reasonOther
	numReasons
)

// reasonNames are the reason label values of kmt_consumer_foreign_total and
// the keys of Totals.ForeignByReason. wrong_encoding is a record that
// decodes with the other encoding (consumer --headers does not match the
// producer's).
var reasonNames = [numReasons]string{"bad_key", "no_metadata", "bad_sequence", "bad_time", "bad_identity", "wrong_encoding", "other"}

func reasonOf(err error) int {
	switch {
	case errors.Is(err, message.ErrNoKey):
		return reasonBadKey
	case errors.Is(err, message.ErrNoMetadata):
		return reasonNoMetadata
	case errors.Is(err, message.ErrBadSequence):
		return reasonBadSequence
	case errors.Is(err, message.ErrBadTime):
		return reasonBadTime
	case errors.Is(err, message.ErrBadIdentity):
		return reasonBadIdentity
	}
	return reasonOther
}

// partition is the accounting of one Kafka partition.
type partition struct {
	l      *Ledger
	topic  string // the topic read
	source string // the stream topic
	id     int32
	own    chan struct{} // claim lock: full while a consumer owns the partition
	lag    atomic.Int64
	// published is the next offset after what the last successful
	// publication covered (-1: nothing published); consumers commit no
	// further when the ledger publishes.
	published atomic.Int64
	// pubNext and pubResumes are the state of the last successful
	// publication (guarded by l.pubMu).
	pubNext    int64
	pubResumes int

	mu          sync.Mutex // guards everything below
	started     bool
	adopting    bool         // the first record this process saw was at offset > 0
	firstOffset int64        // offset of that first record
	nextOffset  int64        // every offset below was processed
	coverLo     int64        // start of the offsets processed since the last resume
	covered     seqrange.Set // offsets processed before the last resume
	resumes     int
	meta        message.Meta // decode target, reused
	scratch     []byte       // run lookup key, reused
	runs        map[string]*run
	last        *run
	gappy       []gappy // trackers with open gaps
	c           partCounts
	lat         latencyBatch // e2e latency observations not yet in Prometheus
	foreign     [numReasons]prometheus.Counter
	untrackedC  prometheus.Counter
	futureC     prometheus.Counter // latency out of range: created in the future
	overCapC    prometheus.Counter // latency out of range: over the 1 h cap
}

type partCounts struct {
	results    [numResults]uint64
	lost       uint64 // sequences declared lost
	endMarkers uint64
	rereads    uint64
	untracked  uint64
	foreign    [numReasons]uint64
	future     uint64 // first arrivals created after they were received
	overCap    uint64 // first arrivals older than MaxLatency
}

type gappy struct {
	t *Tracker
	r *run
}

// run is one producer run's streams in one partition.
type run struct {
	producer, run string
	streams       map[uint32]*Tracker
	rm            *runMetrics
	pending       [numResults]uint64 // not yet added to Prometheus
	pendingLost   uint64
}

// acquire takes the partition's claim lock, waiting for a previous owner to
// finish.
func (p *partition) acquire(ctx context.Context) error {
	select {
	case p.own <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// release gives the claim lock back, after flushing the metrics and
// clearing the partition's lag (another member may own it next).
func (p *partition) release() {
	p.mu.Lock()
	p.flush()
	p.mu.Unlock()
	p.lag.Store(0)
	<-p.own
}

// beginClaim notes a claim starting at offset initial (the group's committed
// offset, or negative for "oldest"). When it lies beyond what this process
// processed, another consumer process read the offsets in between: every
// stream of the partition resumes (see Tracker.Resume) so that what that
// process read is not declared lost here.
func (p *partition) beginClaim(initial int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started || initial < 0 || initial <= p.nextOffset {
		return
	}
	slog.Info("consumer partition resumed after offsets read by another process",
		"topic", p.topic, "partition", p.id, "processed_to", p.nextOffset, "resume_at", initial)
	for _, r := range p.runs {
		for _, t := range r.streams {
			t.Resume()
		}
	}
	p.resumes++
	p.covered.AddRange(uint64(p.coverLo), uint64(p.nextOffset))
	p.nextOffset, p.coverLo = initial, initial
}

// account validates one record received at now (Unix nanoseconds). The
// caller holds p.mu. It does not allocate once the record's stream exists.
func (p *partition) account(msg *sarama.ConsumerMessage, enc message.Encoding, now int64) {
	if msg.Offset < p.nextOffset {
		p.c.rereads++
		return
	}
	if !p.started {
		p.started, p.adopting, p.firstOffset, p.coverLo = true, msg.Offset > 0, msg.Offset, msg.Offset
	}
	p.nextOffset = msg.Offset + 1
	if p.l.ignore != nil && p.l.ignore(msg) {
		return
	}
	m := &p.meta
	var err error
	if enc == message.Body {
		err = message.DecodeBody(msg.Key, msg.Value, m)
	} else {
		err = message.DecodeHeaders(msg.Key, msg.Headers, m)
	}
	if err != nil {
		p.foreignRecord(msg, enc, err)
		return
	}
	r := p.lookup(m.Producer, m.Run)
	if r == nil {
		p.capped(string(m.Producer))
		return
	}
	t := r.streams[m.Key]
	if t == nil {
		if t = p.newStream(r, m); t == nil {
			return
		}
	}
	if m.End {
		p.c.endMarkers++
		p.addLost(r, t.End(m.Seq, now))
		p.list(t, r)
		return
	}
	res := t.Arrive(m.Seq, now)
	if res >= numResults { // above message.MaxSeq: the decoders refuse it already
		p.c.foreign[reasonBadSequence]++
		p.foreign[reasonBadSequence].Inc()
		return
	}
	p.c.results[res]++
	r.pending[res]++
	switch res {
	case Duplicate:
		return // a re-delivery: its age is not a delivery latency
	case Gap:
		p.list(t, r)
	}
	d := time.Duration(now - m.UnixNano)
	switch {
	case d < 0:
		p.c.future++
		p.futureC.Inc()
	case d > MaxLatency:
		p.c.overCap++
		p.overCapC.Inc()
	}
	p.l.lat.Record(d)
	p.lat.observe(d.Seconds())
}

// lookup finds or creates the run of producer/runID without allocating when
// it exists. It returns nil, creating nothing, for a new run while the
// stream cap is reached: a hostile writer inventing producer or run ids
// must not grow the ledger.
func (p *partition) lookup(producer, runID []byte) *run {
	if r := p.last; r != nil && string(producer) == r.producer && string(runID) == r.run {
		return r
	}
	p.scratch = append(append(append(p.scratch[:0], producer...), '/'), runID...)
	r := p.runs[string(p.scratch)]
	if r == nil {
		if p.l.streams.Load() >= p.l.maxStreams {
			return nil
		}
		r = &run{
			producer: string(producer),
			run:      string(runID),
			streams:  map[uint32]*Tracker{},
			rm:       p.l.m.forRun(p.source, string(producer)),
		}
		p.l.streamMu.Lock()
		p.runs[string(p.scratch)] = r
		p.l.streamMu.Unlock()
	}
	p.last = r
	return r
}

// newStream creates the tracker of a stream seen for the first time, or
// returns nil when the stream cap is reached. In a partition whose first
// record this process saw was beyond offset 0 the stream is adopted: its
// first sequence becomes its baseline.
func (p *partition) newStream(r *run, m *message.Meta) *Tracker {
	if p.l.streams.Add(1) > p.l.maxStreams {
		p.l.streams.Add(-1)
		p.capped(r.producer)
		return nil
	}
	t := &Tracker{}
	if p.adopting {
		t.Adopt(m.Seq)
	}
	l := p.l
	l.streamMu.Lock()
	r.streams[m.Key] = t
	l.noteMoved(p, r, m.Key, t)
	l.streamMu.Unlock()
	return t
}

// noteMoved records the stream (r, key) as moved when another partition
// of the same topic already has a tracker for it: its key moved between
// partitions. The caller holds l.streamMu and p.mu.
func (l *Ledger) noteMoved(p *partition, r *run, key uint32, t *Tracker) {
	var siblings []movedMember
	runKey := r.producer + "/" + r.run
	for _, q := range l.partitions() {
		if q == p || q.source != p.source {
			continue
		}
		if qr := q.runs[runKey]; qr != nil {
			if qt := qr.streams[key]; qt != nil {
				siblings = append(siblings, movedMember{q, qt})
			}
		}
	}
	if len(siblings) == 0 {
		return
	}
	t.moved = true
	k := movedKey{p.source, r.producer, r.run, key}
	ms := l.moved[k]
	if ms == nil {
		ms = &movedStream{members: siblings}
		l.moved[k] = ms
	}
	ms.members = append(ms.members, movedMember{p, t})
	slog.Info("consumer stream seen in a second partition; its loss is judged across both",
		"topic", p.source, "producer", r.producer, "run", r.run, "key", key, "partition", p.id)
}

// movedSeen returns, per tracker of a moved stream, the sequences the
// stream's trackers in its other partitions saw, each partition read
// under its own lock (never two at once).
func (l *Ledger) movedSeen() map[*partition]map[*Tracker]seqrange.Set {
	l.streamMu.Lock()
	streams := make([]*movedStream, 0, len(l.moved))
	for _, ms := range l.moved {
		streams = append(streams, &movedStream{members: append([]movedMember(nil), ms.members...)})
	}
	l.streamMu.Unlock()
	if len(streams) == 0 {
		return nil
	}
	out := map[*partition]map[*Tracker]seqrange.Set{}
	for _, ms := range streams {
		seen := make([]seqrange.Set, len(ms.members))
		for i, mb := range ms.members {
			mb.p.mu.Lock()
			seen[i] = mb.t.Seen()
			mb.p.mu.Unlock()
		}
		for i, mb := range ms.members {
			var others seqrange.Set
			for j := range ms.members {
				if j != i {
					others.Union(seen[j])
				}
			}
			if out[mb.p] == nil {
				out[mb.p] = map[*Tracker]seqrange.Set{}
			}
			out[mb.p][mb.t] = others
		}
	}
	return out
}

// capped counts a message of a stream beyond the stream cap, warning once
// per ledger. The caller holds p.mu.
func (p *partition) capped(producer string) {
	p.c.untracked++
	p.untrackedC.Inc()
	if p.l.limitHit.CompareAndSwap(false, true) {
		slog.Warn("consumer stream limit reached; messages of further streams are counted as untracked",
			"max_streams", p.l.maxStreams, "topic", p.source, "producer", producer)
	}
}

func (p *partition) list(t *Tracker, r *run) {
	if !t.listed && t.x != nil && len(t.x.gaps) > 0 {
		t.listed = true
		p.gappy = append(p.gappy, gappy{t, r})
	}
}

func (p *partition) addLost(r *run, n uint64) {
	p.c.lost += n
	r.pendingLost += n
}

func (p *partition) foreignRecord(msg *sarama.ConsumerMessage, enc message.Encoding, err error) {
	reason := reasonOf(err)
	if reason != reasonBadKey {
		var other error
		if enc == message.Body {
			other = message.DecodeHeaders(msg.Key, msg.Headers, &p.meta)
		} else {
			other = message.DecodeBody(msg.Key, msg.Value, &p.meta)
		}
		if other == nil {
			reason = reasonWrongEncoding
		}
	}
	p.c.foreign[reason]++
	p.foreign[reason].Inc()
}

// sweep declares lost the gaps opened at or before cutoff and drops
// trackers without open gaps from the list. The caller holds p.mu.
func (p *partition) sweep(cutoff int64) {
	keep := p.gappy[:0]
	for _, g := range p.gappy {
		p.addLost(g.r, g.t.Expire(cutoff))
		if len(g.t.x.gaps) > 0 {
			keep = append(keep, g)
		} else {
			g.t.listed = false
		}
	}
	clear(p.gappy[len(keep):])
	p.gappy = keep
}

// pending returns how many sequences are in open gaps. The caller holds
// p.mu.
func (p *partition) pending() uint64 {
	var n uint64
	for _, g := range p.gappy {
		n += g.t.PendingLen()
	}
	return n
}

// flush adds the counts accumulated since the last flush to Prometheus. The
// caller holds p.mu.
func (p *partition) flush() {
	p.l.m.Latency.add(p.source, &p.lat)
	for _, r := range p.runs {
		for i, n := range r.pending {
			if n > 0 {
				r.rm.results[i].Add(float64(n))
				r.pending[i] = 0
			}
		}
		if r.pendingLost > 0 {
			r.rm.lost.Add(float64(r.pendingLost))
			r.pendingLost = 0
		}
	}
}

// Sweep declares lost every gap that has been open for the loss grace
// period at now, and brings the Prometheus metrics up to date. Consumers
// call it once a second; call it yourself to account at a chosen time.
func (l *Ledger) Sweep(now time.Time) {
	l.lastSweep.Store(now.UnixNano())
	cutoff := now.Add(-l.grace).UnixNano()
	inflight := map[string]uint64{}
	lag := map[string]int64{}
	moved := l.movedSeen()
	for _, p := range l.partitions() {
		p.mu.Lock()
		for t, others := range moved[p] {
			// What a moved stream's other partition saw is not missing:
			// resolve it before anything expires.
			t.ResolveElsewhere(others)
		}
		p.sweep(cutoff)
		p.flush()
		inflight[p.source] += p.pending()
		p.mu.Unlock()
		lag[p.source] += p.lag.Load()
	}
	for topic, n := range inflight {
		l.m.InFlight.WithLabelValues(topic).Set(float64(n))
	}
	for topic, n := range lag {
		l.m.Lag.WithLabelValues(topic).Set(float64(n))
	}
	l.m.Streams.Set(float64(l.streams.Load()))
}

// maybeSweep sweeps unless another consumer of the ledger did within the
// last half interval.
func (l *Ledger) maybeSweep(now time.Time, interval time.Duration) {
	last := l.lastSweep.Load()
	if now.UnixNano()-last < int64(interval/2) {
		return
	}
	if l.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		l.Sweep(now)
	}
}

// Counters is a cheap snapshot of the ledger's totals, for a status line.
type Counters struct {
	// Received counts unique data messages: every arrival that was not a
	// duplicate (InOrder + Reordered + Gaps + Late).
	Received   uint64 `json:"received"`
	InOrder    uint64 `json:"in_order"`
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
	Gaps       uint64 `json:"gaps"`
	Late       uint64 `json:"late"`
	// LostDeclared counts sequences ever declared lost; Lost those still
	// missing (LostDeclared - Late).
	LostDeclared uint64 `json:"lost_declared"`
	Lost         uint64 `json:"lost"`
	// InFlight counts missing sequences still within the loss grace.
	InFlight   uint64 `json:"in_flight"`
	EndMarkers uint64 `json:"end_markers"`
	Foreign    uint64 `json:"foreign"`
	Rereads    uint64 `json:"rereads"`
	Untracked  uint64 `json:"untracked"`
	Streams    int64  `json:"streams"`
	// LatencyFuture counts first arrivals created after they were received
	// (the producer's clock ahead of the consumer's): their latency is
	// recorded as 0. LatencyOverCap counts first arrivals older than
	// MaxLatency (1 h), recorded as 1 h.
	LatencyFuture  uint64 `json:"latency_future"`
	LatencyOverCap uint64 `json:"latency_over_1h"`
	// Lag is the records in the destination not read yet: high-water mark
	// minus the next offset to read, summed over the partitions this
	// process owns (as of each partition's last batch).
	Lag int64 `json:"lag"`
}

// Counters returns the current totals over every partition.
func (l *Ledger) Counters() Counters {
	var c Counters
	for _, p := range l.partitions() {
		p.mu.Lock()
		c.InOrder += p.c.results[InOrder]
		c.Duplicates += p.c.results[Duplicate]
		c.Reordered += p.c.results[Reordered]
		c.Gaps += p.c.results[Gap]
		c.Late += p.c.results[Late]
		c.LostDeclared += p.c.lost
		c.InFlight += p.pending()
		c.EndMarkers += p.c.endMarkers
		c.Rereads += p.c.rereads
		c.Untracked += p.c.untracked
		c.LatencyFuture += p.c.future
		c.LatencyOverCap += p.c.overCap
		for _, n := range p.c.foreign {
			c.Foreign += n
		}
		p.mu.Unlock()
		c.Lag += p.lag.Load()
	}
	c.Received = c.InOrder + c.Reordered + c.Gaps + c.Late
	c.Lost = c.LostDeclared - c.Late
	c.Streams = l.streams.Load()
	return c
}

// sortPartitions orders partitions by topic and id.
func sortPartitions(ps []*partition) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].topic != ps[j].topic {
			return ps[i].topic < ps[j].topic
		}
		return ps[i].id < ps[j].id
	})
}
