// Package local is the local target: two embedded Kafka-compatible clusters
// ("source" and "destination") on 127.0.0.1, a fault-injecting WAN link
// between them, kmt's reference mirror replicating across it, and the
// producers and validating consumers of the workload, all in one process.
// It implements controller.Target and controller.Workload, so the same
// scenario runs here as on Kubernetes.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/readback"
	"github.com/kmtproject/kmt/controller/reconcile"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/embedded"
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
	clusterOpts  []embedded.Option
	conn         func(kafkaconf.Conn) kafkaconf.Conn
	anomalyLimit int
	consumerTune func(*sarama.Config)
	ignore       func(*sarama.ConsumerMessage) bool
}

// Registry registers every component's metrics with reg. Default: a fresh
// private registry (metrics not exported).
func Registry(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// MirrorFaults makes the reference mirror inject faults (self-tests of the
// tester). Default: none.
func MirrorFaults(f mirror.Faults) Option { return func(o *options) { o.faults = f } }

// Trim deletes, every interval, what the mirror (on the source) and the
// consumers (on the destination) have committed past, so long runs keep a
// bounded amount of data in memory. Default 0: keep everything (tests read
// the topics back).
func Trim(interval time.Duration) Option { return func(o *options) { o.trimEvery = interval } }

// ClusterOptions are passed to both embedded clusters (TLS, SASL). Default:
// none.
func ClusterOptions(opts ...embedded.Option) Option {
	return func(o *options) { o.clusterOpts = append(o.clusterOpts, opts...) }
}

// ConnHook adjusts every connection's settings (credentials, TLS) before use.
// Default: none.
func ConnHook(f func(kafkaconf.Conn) kafkaconf.Conn) Option { return func(o *options) { o.conn = f } }

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

// MirrorSessionTimeout is the reference mirror's group session timeout on
// the local target: how long after an abrupt kill its partitions stay
// unclaimed.
const MirrorSessionTimeout = 6 * time.Second

// Consumer group ids of the local topology.
const (
	MirrorGroup   = "kmt-mirror"
	ConsumerGroup = "kmt-consumer"
)

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

// Target is a running local topology.
type Target struct {
	o        options
	w        scenario.Workload
	src, dst *embedded.Cluster
	link     *wan.Link
	dstLink  *wan.Link
	pm       *producer.Metrics
	cm       *consumer.Metrics
	mm       *mirror.Metrics
	ledger   *consumer.Ledger
	lat      *latency.Recorder

	runCtx    context.Context
	cancelRun context.CancelFunc
	bg        sync.WaitGroup

	mu        sync.Mutex
	topics    []string
	prodSeq   int
	producers []*producerProc
	consumers []*proc
	consGen   int
	mirror    *mirror.Mirror
	mirrorRun *proc
	degraded  bool
	started   time.Time
	stopped   time.Time
	finishing bool // Finish has taken the list of producers to stop
}

type producerProc struct {
	p *producer.Producer
	*proc
	topics     []string
	partitions int
	cut        *killswitch.Switch // its dialer, for an abrupt kill
}

// New starts the two embedded clusters and the WAN link. w must have its
// defaults applied (scenario.Parse or scenario.FromWorkload do).
func New(w scenario.Workload, opts ...Option) (*Target, error) {
	o := options{anomalyLimit: 50}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	t := &Target{o: o, w: w, lat: latency.New()}
	// Short group sessions: a killed replicator's partitions move on in
	// seconds, which keeps time-scaled scenarios meaningful.
	o.clusterOpts = append([]embedded.Option{embedded.KfakeOpts(kfake.GroupMinSessionTimeout(500 * time.Millisecond))}, o.clusterOpts...)
	var err error
	if t.src, err = embedded.Start(append([]embedded.Option{embedded.Name("source"), embedded.Brokers(w.Brokers)}, o.clusterOpts...)...); err != nil {
		return nil, err
	}
	if t.dst, err = embedded.Start(append([]embedded.Option{embedded.Name("destination"), embedded.Brokers(w.Brokers)}, o.clusterOpts...)...); err != nil {
		t.src.Close()
		return nil, err
	}
	t.link = wan.New(wan.Name("wan"))
	t.dstLink = wan.New(wan.Name("destination"))
	if d := w.DestinationLatency.D(); d > 0 {
		if err := t.dstLink.Set(wan.Conditions{Latency: d}); err != nil {
			t.src.Close()
			t.dst.Close()
			return nil, fmt.Errorf("local: destination latency: %w", err)
		}
	}
	t.pm = producer.NewMetrics(o.reg)
	t.cm = consumer.NewMetrics(o.reg)
	t.mm = mirror.NewMetrics(o.reg)
	t.ledger = consumer.NewLedger(t.cm, consumer.WithLossGrace(w.LossGrace.D()), consumer.WithLatencyRecorder(t.lat), consumer.WithIgnore(o.ignore))
	for i := 0; i < w.Topics; i++ {
		t.topics = append(t.topics, "kmt-"+strconv.Itoa(i))
	}
	t.runCtx, t.cancelRun = context.WithCancel(context.Background())
	return t, nil
}

// Name returns "local".
func (t *Target) Name() string { return "local" }

// SourceAddrs returns the source cluster's broker addresses.
func (t *Target) SourceAddrs() []string { return t.src.Addrs() }

// DestinationAddrs returns the destination cluster's broker addresses.
func (t *Target) DestinationAddrs() []string { return t.dst.Addrs() }

// Source returns the embedded source cluster.
func (t *Target) Source() *embedded.Cluster { return t.src }

// Destination returns the embedded destination cluster.
func (t *Target) Destination() *embedded.Cluster { return t.dst }

// Topics returns the workload's current source topics.
func (t *Target) Topics() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.topics...)
}

// Ledger returns the consumers' shared accounting.
func (t *Target) Ledger() *consumer.Ledger { return t.ledger }

func (t *Target) conn(c *embedded.Cluster, clientID string) kafkaconf.Conn {
	k := kafkaconf.Conn{Brokers: c.Addrs(), ClientID: clientID, ConnectTimeout: 30 * time.Second}
	if t.o.conn != nil {
		k = t.o.conn(k)
	}
	return k
}

func (t *Target) encoding() message.Encoding {
	if t.w.Headers != nil && !*t.w.Headers {
		return message.Body
	}
	return message.Headers
}

// Start creates the topics and starts the mirror, the consumers and the
// producers.
func (t *Target) Start(ctx context.Context) error {
	// Both sides get the topics up front so consumers can join at once
	// (the mirror would create the destination topics too, a moment later).
	for _, c := range []*embedded.Cluster{t.src, t.dst} {
		if err := producer.EnsureTopics(ctx, t.conn(c, "kmt-admin"), t.Topics(), t.w.Partitions, -1, 0); err != nil {
			return fmt.Errorf("local: %s: %w", c.Name(), err)
		}
	}
	mode := mirror.Safe
	if t.w.MirrorMode == "unsafe" {
		mode = mirror.UnsafeCommitBeforeAck
	}
	srcConn := t.conn(t.src, "kmt-mirror")
	srcConn.Dialer = t.link
	dstConn := t.conn(t.dst, "kmt-mirror")
	dstConn.Dialer = t.dstLink
	m, err := mirror.New(srcConn, dstConn, mirror.Config{
		TopicRegex: "kmt-.*", Group: MirrorGroup, Workers: t.w.Replicators, Mode: mode, Faults: t.o.faults,
		SessionTimeout: MirrorSessionTimeout,
	}, t.mm)
	if err != nil {
		return fmt.Errorf("local: mirror: %w", err)
	}
	t.mu.Lock()
	t.mirror = m
	t.mirrorRun = start(t.runCtx, m.Run)
	t.mu.Unlock()
	t.startConsumers()
	// Producing before the groups have their partitions would count the
	// start-up as replication latency.
	if err := t.waitGroups(ctx, 20*time.Second); err != nil {
		slog.Warn("local groups not ready; producing anyway", "err", err)
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
	slog.Info("local topology started", "source", t.src.Addrs(), "destination", t.dst.Addrs(), "topics", t.Topics())
	return nil
}

// waitGroups waits until the mirror's group on the source and the
// consumers' group on the destination are stable with every member holding
// partitions.
func (t *Target) waitGroups(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	checks := []struct {
		c       *embedded.Cluster
		group   string
		members int
	}{{t.src, MirrorGroup, t.w.Replicators}, {t.dst, ConsumerGroup, t.w.Consumers}}
	for _, ch := range checks {
		want := min(ch.members, t.w.Partitions*t.w.Topics)
		for {
			n, err := t.stableMembers(ctx, ch.c, ch.group)
			if err == nil && n >= want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("group %s on %s: %d of %d members hold partitions (last error: %v)", ch.group, ch.c.Name(), n, want, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// stableMembers returns how many members of a stable group hold partitions.
func (t *Target) stableMembers(ctx context.Context, c *embedded.Cluster, group string) (int, error) {
	var n int
	err := t.admin(ctx, c, func(a sarama.ClusterAdmin) error {
		gs, err := a.DescribeConsumerGroups([]string{group})
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.State != "Stable" {
				continue
			}
			for _, m := range g.Members {
				if as, err := m.GetMemberAssignment(); err == nil && len(as.Topics) > 0 {
					n++
				}
			}
		}
		return nil
	})
	return n, err
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
	conn := t.conn(t.src, id)
	cut := killswitch.New(nil)
	conn.Dialer = cut
	p, err := producer.New(conn, producer.Config{
		ID: id, Topics: topics, Rate: t.w.Rate, MessageSize: t.w.MessageSize,
		Partitions: partitions, Encoding: t.encoding(),
	}, t.pm)
	if err != nil {
		return fmt.Errorf("local: producer %s: %w", id, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finishing { // Finish would not stop it
		return fmt.Errorf("local: producer %s: the workload is finishing", id)
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
	cfg := consumer.Config{Topics: append([]string(nil), t.topics...), Group: ConsumerGroup, Encoding: t.encoding(), ID: id, Tune: t.o.consumerTune}
	conn := t.conn(t.dst, id)
	cut := killswitch.New(nil)
	conn.Dialer = cut
	c, err := consumer.New(conn, cfg, t.ledger, t.cm)
	if err != nil {
		slog.Error("local consumer start failed", "consumer", id, "err", err)
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
	// One long-lived connection per cluster (reopened after an error): an
	// embedded cluster keeps a goroutine for every connection it served.
	// The destination is trimmed only below what the ledger accounted: a
	// committed offset can run ahead of it (a session that ended while a
	// batch was still being accounted), and a record deleted before it
	// was accounted would read as lost.
	sides := []struct {
		name  string
		c     *embedded.Cluster
		group string
		limit func(string, int32) (int64, bool)
		tr    *mirror.Trimmer
	}{{"source", t.src, MirrorGroup, nil, nil}, {"destination", t.dst, ConsumerGroup, t.ledger.Accounted, nil}}
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
		topics := t.Topics()
		for i := range sides {
			s := &sides[i]
			var err error
			if s.tr == nil {
				s.tr, err = mirror.NewTrimmer(t.runCtx, t.conn(s.c, "kmt-trim"))
			}
			if err == nil {
				if _, err = s.tr.TrimBelow(t.runCtx, s.group, topics, s.limit); err != nil {
					_ = s.tr.Close()
					s.tr = nil
				}
			}
			if err != nil && t.runCtx.Err() == nil {
				slog.Warn("trim failed", "cluster", s.name, "err", err)
			}
		}
	}
}

// Finish stops the producers cleanly (they send end markers), waits until
// the consumers saw every end marker and no gap is open (or the loss grace
// passed), stops everything and reconciles.
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
	deadline := time.Now().Add(max(t.w.LossGrace.D(), 10*time.Second) + 5*time.Second)
	var notDrained uint64
	for {
		c := t.ledger.Counters()
		if c.EndMarkers >= wantEnds && c.InFlight == 0 && t.mirrorCaughtUp() {
			break
		}
		if time.Now().After(deadline) {
			notDrained = t.unread(ctx)
			slog.Warn("workload drain timeout", "end_markers_seen", c.EndMarkers, "end_markers", wantEnds, "in_flight", c.InFlight, "unread", notDrained)
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("local: drain: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	slog.Info("workload drain done")
	t.stopConsumers()
	return t.outcome(ctx, prods, notDrained), nil
}

// unread returns how many records of the destination topics the consumers
// have not accounted: per partition, the high-water mark minus what the
// ledger accounted (or the oldest offset, for a partition it never read).
// A consumer that cannot drain (its fetches failing) leaves them there.
func (t *Target) unread(ctx context.Context) uint64 {
	var n uint64
	err := func() error {
		conn := t.conn(t.dst, "kmt-admin")
		cfg, err := conn.Sarama()
		if err != nil {
			return err
		}
		client, err := kafkaconf.Connect(ctx, conn, cfg)
		if err != nil {
			return err
		}
		defer client.Close()
		for _, topic := range t.Topics() {
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

// mirrorCaughtUp reports whether the mirror has nothing left to replicate.
func (t *Target) mirrorCaughtUp() bool {
	t.mu.Lock()
	m := t.mirror
	t.mu.Unlock()
	return m == nil || m.Counters().Lag <= 0
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
	dst, err := readback.Scan(ctx, t.conn(t.dst, "kmt-readback"), t.Topics(), "", t.encoding())
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
	src, err := readback.Scan(ctx, t.conn(t.src, "kmt-readback"), topics, "", t.encoding())
	if err != nil {
		slog.Warn("loss attribution failed", "cluster", "source", "err", err)
		return
	}
	dst, err := readback.Scan(ctx, t.conn(t.dst, "kmt-readback"), topics, "", t.encoding())
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
	s.Lag = c.Lag // the consumers' lag; the mirror's share is in the backlog the runner derives
	w := t.lat.Window()
	s.P50, s.P99, s.P999 = w.P50, w.P99, w.P999
	return s, nil
}

func (t *Target) cluster(c controller.Cluster) (*embedded.Cluster, error) {
	switch c {
	case controller.Source:
		return t.src, nil
	case controller.Destination:
		return t.dst, nil
	}
	return nil, fmt.Errorf("local: unknown cluster %q", c)
}

// KillBroker kills broker id of cluster ("random": any live one).
func (t *Target) KillBroker(_ context.Context, c controller.Cluster, id string) (string, error) {
	cl, err := t.cluster(c)
	if err != nil {
		return "", err
	}
	live := cl.Brokers()
	if len(live) < 2 {
		return "", fmt.Errorf("local: %s has %d broker(s) left; killing one would stop the cluster", c, len(live))
	}
	var n int32
	if id == "random" {
		// The embedded cluster's controller (topic and partition creation)
		// is its highest broker id and never moves, so a random kill
		// spares it, as a KRaft cluster's separate controllers would be.
		n = live[rand.IntN(len(live)-1)]
	} else {
		v, err := strconv.Atoi(id)
		if err != nil {
			return "", fmt.Errorf("local: broker id %q: %w", id, err)
		}
		n = int32(v)
	}
	if err := cl.KillBroker(n); err != nil {
		return "", err
	}
	return strconv.Itoa(int(n)), nil
}

// RestartBroker restarts killed broker id of cluster.
func (t *Target) RestartBroker(_ context.Context, c controller.Cluster, id string) error {
	cl, err := t.cluster(c)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("local: broker id %q: %w", id, err)
	}
	return cl.RestartBroker(int32(v))
}

// ResizeCluster sets the number of live brokers of cluster.
func (t *Target) ResizeCluster(_ context.Context, c controller.Cluster, n int) error {
	cl, err := t.cluster(c)
	if err != nil {
		return err
	}
	return cl.Resize(n)
}

// Brokers returns the number of live brokers of cluster.
func (t *Target) Brokers(_ context.Context, c controller.Cluster) (int, error) {
	cl, err := t.cluster(c)
	if err != nil {
		return 0, err
	}
	return len(cl.Brokers()), nil
}

// ScaleReplicator sets the number of mirror workers.
func (t *Target) ScaleReplicator(_ context.Context, n int) error {
	m, err := t.theMirror()
	if err != nil {
		return err
	}
	return m.Scale(n)
}

// Replicators returns the number of mirror workers.
func (t *Target) Replicators(context.Context) (int, error) {
	m, err := t.theMirror()
	if err != nil {
		return 0, err
	}
	return m.Workers(), nil
}

// KillReplicator kills every mirror worker abruptly and starts as many new
// ones.
func (t *Target) KillReplicator(context.Context) error {
	m, err := t.theMirror()
	if err != nil {
		return err
	}
	n := m.Kill()
	return m.Scale(n)
}

func (t *Target) theMirror() (*mirror.Mirror, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mirror == nil {
		return nil, errors.New("local: the workload has not started")
	}
	return t.mirror, nil
}

// Network degrades the WAN link; the undo heals it.
func (t *Target) Network(_ context.Context, spec controller.NetworkSpec) (func(context.Context) error, error) {
	c := wan.Conditions{Latency: spec.Latency, Jitter: spec.Jitter, Bandwidth: spec.Bandwidth, ResetPct: spec.ResetPct, Cut: spec.Cut}
	if spec.LossPct > 0 || spec.Stall > 0 {
		c.StallPct, c.Stall = spec.LossPct, spec.Stall
		if c.Stall == 0 {
			c.Stall = 200 * time.Millisecond
		}
		if c.StallPct == 0 {
			c.StallPct = 100
		}
	}
	if err := t.link.Set(c); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	t.mu.Lock()
	t.degraded = true
	t.mu.Unlock()
	return func(context.Context) error {
		t.link.Heal()
		t.mu.Lock()
		t.degraded = false
		t.mu.Unlock()
		return nil
	}, nil
}

// AddPartitions grows topic ("" = the first workload topic) on the source to
// total partitions and starts a producer that uses all of them (the mirror
// grows the destination).
func (t *Target) AddPartitions(ctx context.Context, topic string, total int) error {
	if topic == "" {
		topic = t.Topics()[0]
	}
	if err := t.admin(ctx, t.src, func(a sarama.ClusterAdmin) error {
		return a.CreatePartitions(topic, int32(total), nil, false)
	}); err != nil {
		return fmt.Errorf("local: grow %s to %d partitions: %w", topic, total, err)
	}
	return t.startProducer([]string{topic}, total)
}

// CreateTopic creates topic on the source, starts a producer on it and
// restarts the consumers to read it (the mirror picks it up by pattern).
func (t *Target) CreateTopic(ctx context.Context, topic string, partitions int) error {
	if err := producer.EnsureTopics(ctx, t.conn(t.src, "kmt-admin"), []string{topic}, partitions, -1, 0); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	t.mu.Lock()
	t.topics = append(t.topics, topic)
	t.mu.Unlock()
	t.stopConsumers()
	t.startConsumers()
	return t.startProducer([]string{topic}, partitions)
}

func (t *Target) admin(ctx context.Context, c *embedded.Cluster, f func(sarama.ClusterAdmin) error) error {
	conn := t.conn(c, "kmt-admin")
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
		t.link.Heal()
	}
	return nil
}

// Shutdown stops every component and both clusters.
func (t *Target) Shutdown() {
	t.mu.Lock()
	prods := t.producers
	mr := t.mirrorRun
	t.mu.Unlock()
	for _, p := range prods {
		_ = p.stop()
	}
	t.stopConsumers()
	if mr != nil {
		_ = mr.stop()
	}
	t.cancelRun()
	t.bg.Wait()
	_ = t.link.Close()
	_ = t.dstLink.Close()
	t.src.Close()
	t.dst.Close()
}
