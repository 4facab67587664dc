// Package workload is the traffic side every target with a workload of its
// own shares: topics, producers, the replicator's start, validating
// consumers, trimming, sampling, the drain at the end, reconciliation and
// loss attribution. What differs between targets (embedded clusters, real
// Kafka processes) is a Topology: how the clusters run and fail, and which
// replicator copies between them.
//
// A Target built with New implements controller.Target and
// controller.Workload, so the controller's Runner drives it like any
// target.
package workload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/readback"
	"github.com/kmtproject/kmt/controller/reconcile"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/killswitch"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/wan"
	"github.com/kmtproject/kmt/mirror"
	"github.com/kmtproject/kmt/producer"
)

// Option configures a Target.
type Option func(*options)

type options struct {
	reg          prometheus.Registerer
	faults       mirror.Faults
	trimEvery    time.Duration
	trimKeep     time.Duration
	anomalyLimit int
	consumerTune func(*sarama.Config)
	ignore       func(*sarama.ConsumerMessage) bool
	replicator   StartReplicator
	prefix       string
	rf           int
}

// Registry registers every component's metrics with reg. Default: a fresh
// private registry (metrics not exported).
func Registry(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// MirrorFaults makes the reference mirror inject faults (self-tests of the
// tester). Default: none.
func MirrorFaults(f mirror.Faults) Option { return func(o *options) { o.faults = f } }

// Trim deletes, every interval, what the replicator (on the source, when it
// commits there) and the consumers (on the destination) have committed
// past, so long runs keep a bounded amount of data. Default 0: keep
// everything (tests read the topics back; loss attribution needs it).
func Trim(interval time.Duration) Option { return func(o *options) { o.trimEvery = interval } }

// TrimKeep makes trimming spare every record younger than d (by record
// timestamp, the producer's creation time), so a person can still read the
// last d of traffic with any Kafka tool while the run goes on. Default 0:
// trim everything committed past.
func TrimKeep(d time.Duration) Option { return func(o *options) { o.trimKeep = d } }

// AnomalyLimit caps how many per-stream anomalies the outcome lists.
// Default 50.
func AnomalyLimit(n int) Option { return func(o *options) { o.anomalyLimit = n } }

// ConsumerIgnore makes the consumers skip the records ignore returns true
// for, as a buggy consumer would (self-tests of loss attribution). Default:
// none.
func ConsumerIgnore(ignore func(*sarama.ConsumerMessage) bool) Option {
	return func(o *options) { o.ignore = ignore }
}

// ConsumerTune adjusts the consumers' sarama configuration. Default: none.
func ConsumerTune(f func(*sarama.Config)) Option { return func(o *options) { o.consumerTune = f } }

// WithReplicator sets the replicator the workload starts. Default KMTMirror,
// kmt's reference mirror.
func WithReplicator(start StartReplicator) Option { return func(o *options) { o.replicator = start } }

// TopicPrefix is the prefix the replicator puts before destination topic
// names ("source." for MirrorMaker 2's default replication policy). The
// workload creates and reads the prefixed names on the destination.
// Default "": the same names.
func TopicPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// ReplicationFactor of the topics the workload creates. Default -1: the
// cluster's default.
func ReplicationFactor(n int) Option { return func(o *options) { o.rf = n } }

// proc is a component running in a goroutine of its own.
type proc struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	id     string             // the component's id (consumers)
	cut    *killswitch.Switch // its dialer, for an abrupt kill (consumers)
}

func start(parent context.Context, run func(context.Context) error) *proc {
	ctx, cancel := context.WithCancel(parent)
	p := &proc{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = run(ctx)
	}()
	return p
}

func (p *proc) stop() error {
	p.cancel()
	<-p.done
	return p.err
}

// Target is a workload running on a topology.
type Target struct {
	o      options
	w      scenario.Workload
	topo   Topology
	pm     *producer.Metrics
	cm     *consumer.Metrics
	mm     *mirror.Metrics
	ledger *consumer.Ledger
	lat    *latency.Recorder

	runCtx    context.Context
	cancelRun context.CancelFunc
	bg        sync.WaitGroup

	mu         sync.Mutex
	topics     []string
	prodSeq    int
	producers  []*producerProc
	consumers  []*proc
	consGen    int
	replicator Replicator
	degraded   bool
	started    time.Time
	stopped    time.Time
	finishing  bool // Finish has taken the list of producers to stop
}

type producerProc struct {
	p *producer.Producer
	*proc
	topics     []string
	partitions int
	cut        *killswitch.Switch // its dialer, for an abrupt kill
}

// New prepares the workload w on topo (started by the caller; Shutdown
// shuts it down). w must have its defaults applied (scenario.Parse or
// scenario.FromWorkload do).
func New(topo Topology, w scenario.Workload, opts ...Option) *Target {
	o := options{anomalyLimit: 50, replicator: KMTMirror, rf: -1}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	t := &Target{o: o, w: w, topo: topo, lat: latency.New()}
	t.pm = producer.NewMetrics(o.reg)
	t.cm = consumer.NewMetrics(o.reg)
	t.mm = mirror.NewMetrics(o.reg)
	t.ledger = consumer.NewLedger(t.cm, consumer.WithLossGrace(w.LossGrace.D()), consumer.WithLatencyRecorder(t.lat), consumer.WithIgnore(o.ignore))
	for i := 0; i < w.Topics; i++ {
		t.topics = append(t.topics, "kmt-"+strconv.Itoa(i))
	}
	t.runCtx, t.cancelRun = context.WithCancel(context.Background())
	return t
}

// Name returns the topology's name.
func (t *Target) Name() string { return t.topo.Name() }

// Topology returns the topology the workload runs on.
func (t *Target) Topology() Topology { return t.topo }

// SourceAddrs returns the source cluster's broker addresses.
func (t *Target) SourceAddrs() []string { return t.topo.Conn(controller.Source, "").Brokers }

// DestinationAddrs returns the destination cluster's broker addresses.
func (t *Target) DestinationAddrs() []string {
	return t.topo.Conn(controller.Destination, "").Brokers
}

// Topics returns the workload's current source topics.
func (t *Target) Topics() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.topics...)
}

// DestinationTopics returns the destination names of the workload's topics
// (the replicator's prefix before each).
func (t *Target) DestinationTopics() []string {
	out := t.Topics()
	for i := range out {
		out[i] = t.o.prefix + out[i]
	}
	return out
}

// LatencySnapshot returns the cumulative end-to-end latency histogram of
// every message received so far (microseconds); the controller takes one
// at each step boundary for the steps' latency curves.
func (t *Target) LatencySnapshot() *hdrhistogram.Snapshot { return t.lat.Snapshot() }

// Ledger returns the consumers' shared accounting.
func (t *Target) Ledger() *consumer.Ledger { return t.ledger }

func (t *Target) conn(c controller.Cluster, clientID string) kafkaconf.Conn {
	return t.topo.Conn(c, clientID)
}

func (t *Target) encoding() message.Encoding {
	if t.w.Headers != nil && !*t.w.Headers {
		return message.Body
	}
	return message.Headers
}

// ensureTopics creates topics on the source and their prefixed names on
// the destination, so consumers can join at once (the replicator would
// create the destination topics too, a moment later; a real broker would
// auto-create them with the wrong partition count for a consumer's
// metadata request).
func (t *Target) ensureTopics(ctx context.Context, topics []string, partitions int) error {
	if err := producer.EnsureTopics(ctx, t.conn(controller.Source, "kmt-admin"), topics, partitions, t.o.rf, 0); err != nil {
		return fmt.Errorf("%s: source: %w", t.Name(), err)
	}
	dst := make([]string, len(topics))
	for i, s := range topics {
		dst[i] = t.o.prefix + s
	}
	if err := producer.EnsureTopics(ctx, t.conn(controller.Destination, "kmt-admin"), dst, partitions, t.o.rf, 0); err != nil {
		return fmt.Errorf("%s: destination: %w", t.Name(), err)
	}
	return nil
}

// Start creates the topics and starts the replicator, the consumers and
// the producers.
func (t *Target) Start(ctx context.Context) error {
	if err := t.ensureTopics(ctx, t.Topics(), t.w.Partitions); err != nil {
		return err
	}
	r, err := t.o.replicator(ctx, t.topo, ReplicatorSpec{
		TopicRegex: "kmt-.*", TopicPrefix: t.o.prefix, Workers: t.w.Replicators, Partitions: t.w.Partitions * t.w.Topics,
		Unsafe: t.w.MirrorMode == "unsafe", Faults: t.o.faults, Metrics: t.mm,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", t.Name(), err)
	}
	t.mu.Lock()
	t.replicator = r
	t.mu.Unlock()
	t.startConsumers()
	// Producing before the groups have their partitions would count the
	// start-up as replication latency.
	if err := t.waitReady(ctx, time.Minute); err != nil {
		slog.Warn("workload groups not ready; producing anyway", "target", t.Name(), "err", err)
	}
	t.mu.Lock()
	t.started = time.Now()
	t.mu.Unlock()
	for i := 0; i < t.w.Producers; i++ {
		if err := t.startProducer(t.Topics(), t.w.Partitions); err != nil {
			return err
		}
	}
	if t.o.trimEvery > 0 {
		t.bg.Add(1)
		go t.trimLoop()
	}
	slog.Info("workload started", "target", t.Name(), "source", t.SourceAddrs(), "destination", t.DestinationAddrs(), "topics", t.Topics())
	return nil
}

// waitReady waits until the replicator holds its partitions and the
// consumers' group on the destination is stable with every member holding
// partitions.
func (t *Target) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := t.theReplicator()
	if err != nil {
		return err
	}
	if err := r.Ready(ctx); err != nil {
		return err
	}
	return waitGroup(ctx, t.topo, controller.Destination, ConsumerGroup, min(t.w.Consumers, t.w.Partitions*t.w.Topics))
}

func (t *Target) startProducer(topics []string, partitions int) error {
	t.mu.Lock()
	t.prodSeq++
	id := "producer-" + strconv.Itoa(t.prodSeq)
	t.mu.Unlock()
	return t.startProducerAs(id, topics, partitions)
}

// startProducerAs starts a producer with id (a new run of it when the id
// ran before).
func (t *Target) startProducerAs(id string, topics []string, partitions int) error {
	conn := t.conn(controller.Source, id)
	cut := killswitch.New(conn.Dialer)
	conn.Dialer = cut
	p, err := producer.New(conn, producer.Config{
		ID: id, Topics: topics, Rate: t.w.Rate, MessageSize: t.w.MessageSize,
		Partitions: partitions, Encoding: t.encoding(), Acks: t.w.Acks,
	}, t.pm)
	if err != nil {
		return fmt.Errorf("%s: producer %s: %w", t.Name(), id, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finishing { // Finish would not stop it
		return fmt.Errorf("%s: producer %s: the workload is finishing", t.Name(), id)
	}
	pp := &producerProc{p: p, proc: start(t.runCtx, p.Run), topics: topics, partitions: partitions, cut: cut}
	t.producers = append(t.producers, pp)
	return nil
}

// startConsumers starts the workload's consumers on the current topics.
func (t *Target) startConsumers() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.consGen++
	for i := 0; i < t.w.Consumers; i++ {
		id := fmt.Sprintf("consumer-%d", i+1)
		if t.consGen > 1 {
			id = fmt.Sprintf("consumer-%d.%d", i+1, t.consGen)
		}
		if c := t.newConsumerLocked(id); c != nil {
			t.consumers = append(t.consumers, c)
		}
	}
}

// newConsumerLocked starts consumer id of the group on the current topics,
// behind a kill switch. The caller holds t.mu.
func (t *Target) newConsumerLocked(id string) *proc {
	cfg := consumer.Config{Topics: append([]string(nil), t.topics...), TopicPrefix: t.o.prefix, Group: ConsumerGroup, Encoding: t.encoding(), ID: id, Tune: t.o.consumerTune}
	conn := t.conn(controller.Destination, id)
	cut := killswitch.New(conn.Dialer)
	conn.Dialer = cut
	c, err := consumer.New(conn, cfg, t.ledger, t.cm)
	if err != nil {
		slog.Error("workload consumer start failed", "consumer", id, "err", err)
		return nil
	}
	p := start(t.runCtx, c.Run)
	p.id, p.cut = id, cut
	return p
}

func (t *Target) stopConsumers() {
	t.mu.Lock()
	cs := t.consumers
	t.consumers = nil
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.stop() }()
	}
	wg.Wait()
}

func (t *Target) trimLoop() {
	defer t.bg.Done()
	tick := time.NewTicker(t.o.trimEvery)
	defer tick.Stop()
	r, err := t.theReplicator()
	if err != nil {
		return
	}
	// One long-lived connection per cluster (reopened after an error): an
	// embedded cluster keeps a goroutine for every connection it served.
	// The destination is trimmed only below what the ledger accounted: a
	// committed offset can run ahead of it (a session that ended while a
	// batch was still being accounted), and a record deleted before it
	// was accounted would read as lost.
	type side struct {
		c       controller.Cluster
		group   string
		prefix  string
		tr      *mirror.Trimmer
		limitOf func(string, int32) (int64, bool)
	}
	var sides []*side
	if g := r.Group(); g != "" {
		sides = append(sides, &side{c: controller.Source, group: g})
	}
	sides = append(sides, &side{c: controller.Destination, group: ConsumerGroup, prefix: t.o.prefix, limitOf: t.ledger.Accounted})
	defer func() {
		for _, s := range sides {
			if s.tr != nil {
				_ = s.tr.Close()
			}
		}
	}()
	for {
		select {
		case <-t.runCtx.Done():
			return
		case <-tick.C:
		}
		for _, s := range sides {
			topics := t.Topics()
			for i := range topics {
				topics[i] = s.prefix + topics[i]
			}
			var err error
			if s.tr == nil {
				s.tr, err = mirror.NewTrimmer(t.runCtx, t.conn(s.c, "kmt-trim"))
			}
			limit := s.limitOf
			if err == nil && t.o.trimKeep > 0 {
				var keep func(string, int32) (int64, bool)
				if keep, err = s.tr.OlderThan(topics, time.Now().Add(-t.o.trimKeep)); err == nil {
					limit = lowerLimit(limit, keep)
				}
			}
			if err == nil {
				if _, err = s.tr.TrimBelow(t.runCtx, s.group, topics, limit); err != nil {
					_ = s.tr.Close()
					s.tr = nil
				}
			}
			if err != nil && t.runCtx.Err() == nil {
				slog.Warn("trim failed", "cluster", s.c, "err", err)
			}
		}
	}
}

// Finish stops the producers cleanly (they send end markers), waits until
// the consumers saw every end marker and no gap is open (or nothing arrived
// for the loss grace), stops everything and reconciles.
func (t *Target) Finish(ctx context.Context) (*controller.Final, error) {
	t.mu.Lock()
	prods := append([]*producerProc(nil), t.producers...)
	t.finishing = true
	t.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range prods {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.stop() }()
	}
	wg.Wait()
	t.mu.Lock()
	t.stopped = time.Now()
	t.mu.Unlock()
	var wantEnds uint64
	for _, p := range prods {
		wantEnds += p.p.Counters().EndAcked
	}
	slog.Info("workload drain start", "end_markers", wantEnds, "loss_grace", t.w.LossGrace.D())
	// The drain lasts while messages keep arriving: a replicator far
	// behind (real Kafka on a busy machine) is still delivering, not
	// losing. It ends once nothing arrived for the loss grace (at least
	// 10 s) plus 5 s, or when ctx is done.
	quiet := max(t.w.LossGrace.D(), 10*time.Second) + 5*time.Second
	deadline := time.Now().Add(quiet)
	var last, notDrained uint64
	for {
		c := t.ledger.Counters()
		if c.EndMarkers >= wantEnds && c.InFlight == 0 && t.replicatorCaughtUp() {
			break
		}
		if seen := c.Received + c.Duplicates + c.EndMarkers + c.Late; seen != last {
			last = seen
			deadline = time.Now().Add(quiet)
		}
		if time.Now().After(deadline) {
			notDrained = t.unread(ctx)
			slog.Warn("workload drain timeout", "end_markers_seen", c.EndMarkers, "end_markers", wantEnds, "in_flight", c.InFlight, "unread", notDrained)
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: drain: %w", t.Name(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	slog.Info("workload drain done")
	t.stopConsumers()
	return t.outcome(ctx, prods, notDrained), nil
}

// lowerLimit combines two trim limits: in each partition the lower bound
// of the two, and no trimming where either says no. A nil limit is no
// bound.
func lowerLimit(a, b func(string, int32) (int64, bool)) func(string, int32) (int64, bool) {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return func(topic string, p int32) (int64, bool) {
		x, ok := a(topic, p)
		if !ok {
			return 0, false
		}
		y, ok := b(topic, p)
		if !ok {
			return 0, false
		}
		return min(x, y), true
	}
}

// unread returns how many records of the destination topics the consumers
// have not accounted: per partition, the high-water mark minus what the
// ledger accounted (or the oldest offset, for a partition it never read).
// A consumer that cannot drain (its fetches failing) leaves them there.
func (t *Target) unread(ctx context.Context) uint64 {
	var n uint64
	err := func() error {
		conn := t.conn(controller.Destination, "kmt-admin")
		cfg, err := conn.Sarama()
		if err != nil {
			return err
		}
		client, err := kafkaconf.Connect(ctx, conn, cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		for _, topic := range t.DestinationTopics() {
			ps, err := client.Partitions(topic)
			if err != nil {
				return err
			}
			for _, p := range ps {
				newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				from, ok := t.ledger.Accounted(topic, p)
				if !ok {
					if from, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
						return err
					}
				}
				n += uint64(max(newest-from, 0))
			}
		}
		return nil
	}()
	if err != nil {
		slog.Warn("unread records of the destination unknown", "err", err)
	}
	return n
}

// replicatorCaughtUp reports whether the replicator has nothing left to
// replicate, as far as it knows.
func (t *Target) replicatorCaughtUp() bool {
	t.mu.Lock()
	r := t.replicator
	t.mu.Unlock()
	return r == nil || r.Lag() <= 0
}

func (t *Target) outcome(ctx context.Context, prods []*producerProc, notDrained uint64) *controller.Final {
	var produced []reconcile.Produced
	var unresolved uint64
	for _, p := range prods {
		r := p.p.Report()
		unresolved += r.Unresolved
		for _, s := range r.Streams {
			produced = append(produced, reconcile.Produced{Stream: s.Stream, Sent: s.Sent, Acked: s.Acked, Failed: s.Failed})
		}
	}
	rep := t.ledger.Report()
	counters := t.ledger.Counters()
	received := make([]reconcile.Received, 0, len(rep.Streams))
	for _, s := range rep.Streams {
		received = append(received, reconcile.Received{Stream: s.Stream, Seen: s.Seen, Duplicates: s.Duplicates, DuplicatedSeqs: s.DuplicatedSeqs, Reordered: s.Reordered, Late: s.Late})
	}
	o := reconcile.Reconcile(produced, received)
	var inDest uint64
	if notDrained > 0 && o.Lost > 0 {
		inDest = t.undrainedLoss(ctx, &o)
	}
	if o.Lost > 0 {
		t.locate(ctx, &o)
	}
	t.mu.Lock()
	d := t.stopped.Sub(t.started)
	t.mu.Unlock()
	tot := t.lat.Total()
	msf := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	s := results.Summary{
		Verdict:   results.Fail,
		DurationS: d.Seconds(), Produced: o.Produced, Acked: o.Acked, ProduceErrors: o.ProduceErrors,
		Received: o.Received, Lost: o.Lost, Duplicated: o.Duplicated, Reordered: o.Reordered, Late: o.Late,
		Foreign: rep.Totals.Foreign, UnackedDelivered: o.UnackedDelivered, NeverAcked: o.NeverAcked,
		LatencyFuture: counters.LatencyFuture, LatencyOverCap: counters.LatencyOverCap,
		LatencyMs: results.Latencies{P50: msf(tot.P50), P90: msf(tot.P90), P99: msf(tot.P99), P999: msf(tot.P999), Max: msf(tot.Max)},
	}
	if o.Pass() {
		s.Verdict = results.Pass
	}
	if notDrained > 0 {
		s.NotDrained = notDrained
		s.Warnings = append(s.Warnings, fmt.Sprintf("the consumers did not drain: %d records were left unread in the destination at the end (their lag); the %d acked messages among them are in the destination and not counted as lost", notDrained, inDest))
	}
	if d > 0 {
		s.ThroughputMsgsPerS = float64(o.Received) / d.Seconds()
	}
	anomalies, totals := o.Anomalies(t.o.anomalyLimit)
	f := &controller.Final{Summary: s, Anomalies: anomalies, AnomalyTotals: totals, Exact: true}
	for i, v := range t.lat.Curve() {
		f.Latency = append(f.Latency, results.Percentile{Percentile: latency.CurvePercentiles[i], ValueMs: msf(v)})
	}
	if unresolved > 0 {
		slog.Warn("produces without outcome", "messages", unresolved)
	}
	return f
}

// undrainedLoss moves out of o's lost messages those the destination holds:
// the consumers did not drain it, so they are not lost but unread. It
// returns how many it moved.
func (t *Target) undrainedLoss(ctx context.Context, o *reconcile.Outcome) uint64 {
	dst, err := readback.Scan(ctx, t.conn(controller.Destination, "kmt-readback"), t.Topics(), t.o.prefix, t.encoding())
	if err != nil {
		slog.Warn("undrained records not read back; they stay counted as lost", "err", err)
		return 0
	}
	var moved uint64
	for i := range o.Streams {
		s := &o.Streams[i]
		held := dst[s.Stream]
		if s.Lost.Empty() || held == nil {
			continue
		}
		in := s.Lost.Intersect(*held)
		n := in.Len()
		s.Lost = s.Lost.Minus(in)
		o.Lost -= n
		moved += n
	}
	return moved
}

// locate reads both clusters back and records, per stream, where its lost
// messages went missing. With trimming on, deleted records would look like
// producer loss, so nothing is located then.
func (t *Target) locate(ctx context.Context, o *reconcile.Outcome) {
	if t.o.trimEvery > 0 {
		slog.Info("loss attribution skipped: records were trimmed")
		return
	}
	topics := t.Topics()
	src, err := readback.Scan(ctx, t.conn(controller.Source, "kmt-readback"), topics, "", t.encoding())
	if err != nil {
		slog.Warn("loss attribution failed", "cluster", "source", "err", err)
		return
	}
	dst, err := readback.Scan(ctx, t.conn(controller.Destination, "kmt-readback"), topics, t.o.prefix, t.encoding())
	if err != nil {
		slog.Warn("loss attribution failed", "cluster", "destination", "err", err)
		return
	}
	for i := range o.Streams {
		s := &o.Streams[i]
		if !s.Lost.Empty() {
			s.LostWhere = readback.Attribute(s.Stream, s.Lost, src, dst)
		}
	}
}

// Sample returns the workload's cumulative counters now.
func (t *Target) Sample(context.Context) (controller.Sample, error) {
	t.mu.Lock()
	prods := append([]*producerProc(nil), t.producers...)
	t.mu.Unlock()
	s := controller.Sample{Time: time.Now()}
	for _, p := range prods {
		c := p.p.Counters()
		s.Produced += c.Sent
		s.Acked += c.Acked
		if p.done != nil {
			select {
			case <-p.done:
				continue // stopped producers no longer count towards the target
			default:
			}
		}
		s.TargetRate += p.p.TargetRate()
		s.Behind += c.Behind
	}
	c := t.ledger.Counters()
	s.Received, s.Lost, s.Duplicated, s.Reordered, s.Late, s.Foreign = c.Received, c.Lost, c.Duplicates, c.Reordered, c.Late, c.Foreign
	s.InFlight = int64(c.InFlight)
	s.LatencyFuture, s.LatencyOverCap = c.LatencyFuture, c.LatencyOverCap
	s.Lag = c.Lag // the consumers' lag; the replicator's share is in the backlog the runner derives
	w := t.lat.Window()
	s.P50, s.P99, s.P999 = w.P50, w.P99, w.P999
	return s, nil
}

// KillBroker kills broker id of cluster ("random": any live one).
func (t *Target) KillBroker(ctx context.Context, c controller.Cluster, id string) (string, error) {
	return t.topo.KillBroker(ctx, c, id)
}

// RestartBroker restarts killed broker id of cluster.
func (t *Target) RestartBroker(ctx context.Context, c controller.Cluster, id string) error {
	return t.topo.RestartBroker(ctx, c, id)
}

// ResizeCluster sets the number of live brokers of cluster.
func (t *Target) ResizeCluster(ctx context.Context, c controller.Cluster, n int) error {
	return t.topo.ResizeCluster(ctx, c, n)
}

// Brokers returns the number of live brokers of cluster.
func (t *Target) Brokers(ctx context.Context, c controller.Cluster) (int, error) {
	return t.topo.Brokers(ctx, c)
}

// ScaleReplicator sets the number of replicator workers.
func (t *Target) ScaleReplicator(ctx context.Context, n int) error {
	r, err := t.theReplicator()
	if err != nil {
		return err
	}
	return r.Scale(ctx, n)
}

// Replicators returns the number of replicator workers.
func (t *Target) Replicators(context.Context) (int, error) {
	r, err := t.theReplicator()
	if err != nil {
		return 0, err
	}
	return r.Workers(), nil
}

// KillReplicator kills every replicator worker abruptly and starts as many
// new ones.
func (t *Target) KillReplicator(ctx context.Context) error {
	r, err := t.theReplicator()
	if err != nil {
		return err
	}
	return r.Kill(ctx)
}

func (t *Target) theReplicator() (Replicator, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.replicator == nil {
		return nil, fmt.Errorf("%s: the workload has not started", t.Name())
	}
	return t.replicator, nil
}

// Network degrades the WAN link between the replicator and the source
// cluster; the undo heals it.
func (t *Target) Network(_ context.Context, spec controller.NetworkSpec) (func(context.Context) error, error) {
	// Latency and jitter delay what the replicator sends to the source (its
	// fetch requests), one way, exactly what Chaos Mesh's delay does on the
	// kubernetes target (see docs/scenarios.md, "network: latency").
	c := wan.Conditions{Latency: spec.Latency, Jitter: spec.Jitter, UpOnly: true, Bandwidth: spec.Bandwidth, ResetPct: spec.ResetPct, Cut: spec.Cut}
	if spec.LossPct > 0 || spec.Stall > 0 {
		c.StallPct, c.Stall = spec.LossPct, spec.Stall
		if c.Stall == 0 {
			c.Stall = 200 * time.Millisecond
		}
		if c.StallPct == 0 {
			c.StallPct = 100
		}
	}
	link := t.topo.WAN()
	if err := link.Set(c); err != nil {
		return nil, fmt.Errorf("%s: %w", t.Name(), err)
	}
	t.mu.Lock()
	t.degraded = true
	t.mu.Unlock()
	return func(context.Context) error {
		link.Heal()
		t.mu.Lock()
		t.degraded = false
		t.mu.Unlock()
		return nil
	}, nil
}

// AddPartitions grows topic ("" = the first workload topic) on the source to
// total partitions and starts a producer that uses all of them (the
// replicator grows the destination).
func (t *Target) AddPartitions(ctx context.Context, topic string, total int) error {
	if topic == "" {
		topic = t.Topics()[0]
	}
	if err := Admin(ctx, t.conn(controller.Source, "kmt-admin"), func(a sarama.ClusterAdmin) error {
		return a.CreatePartitions(topic, int32(total), nil, false)
	}); err != nil {
		return fmt.Errorf("%s: grow %s to %d partitions: %w", t.Name(), topic, total, err)
	}
	return t.startProducer([]string{topic}, total)
}

// CreateTopic creates topic on the source (and its destination name, so
// the consumers can subscribe), starts a producer on it and restarts the
// consumers to read it (the replicator picks it up by pattern).
func (t *Target) CreateTopic(ctx context.Context, topic string, partitions int) error {
	if err := t.ensureTopics(ctx, []string{topic}, partitions); err != nil {
		return err
	}
	t.mu.Lock()
	t.topics = append(t.topics, topic)
	t.mu.Unlock()
	t.stopConsumers()
	t.startConsumers()
	return t.startProducer([]string{topic}, partitions)
}

// Admin runs f with a cluster admin connected with conn.
func Admin(ctx context.Context, conn kafkaconf.Conn, f func(sarama.ClusterAdmin) error) error {
	cfg, err := conn.Sarama()
	if err != nil {
		return err
	}
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return err
	}
	a, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return err
	}
	defer a.Close()
	return f(a)
}

// Close heals the WAN link if a fault left it degraded.
func (t *Target) Close(context.Context) error {
	t.mu.Lock()
	degraded := t.degraded
	t.degraded = false
	t.mu.Unlock()
	if degraded {
		t.topo.WAN().Heal()
	}
	return nil
}

// Shutdown stops every component, then the topology.
func (t *Target) Shutdown() {
	t.mu.Lock()
	prods := t.producers
	r := t.replicator
	t.mu.Unlock()
	for _, p := range prods {
		_ = p.stop()
	}
	t.stopConsumers()
	if r != nil {
		if err := r.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			slog.Debug("replicator stop", "err", err)
		}
	}
	t.cancelRun()
	t.bg.Wait()
	t.topo.Shutdown()
}
