// Package consumer is kmt's validating consumer: a Kafka consumer-group
// member that decodes every record's stream identity and sequence and
// accounts it per stream as in order, duplicate, reordered, gap (later lost
// or late) or foreign, and measures end-to-end latency.
//
// The accounting lives in a Ledger shared by every consumer of a process;
// each stream's state is a Tracker. How rebalances and restarts are kept
// from producing false loss or duplicates is described in
// docs/accounting.md.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/message"
)

// Config defaults.
const (
	DefaultGroup         = "kmt-consumer"
	DefaultSweepInterval = time.Second
	// DefaultBatch is how many records a consumer accounts under one
	// acquisition of the partition lock, when they are already waiting.
	DefaultBatch = 256
)

// Config configures a Consumer.
type Config struct {
	// Topics are the source topic names; the consumer reads TopicPrefix +
	// topic. Required.
	Topics []string
	// TopicPrefix is prepended to every topic to get the topic actually
	// read, for replicators that rename topics (MirrorMaker 2's default
	// policy writes "source.topic": prefix "source."). Streams are always
	// identified by the source topic name. Default "".
	TopicPrefix string
	// Group is the consumer group id. Default DefaultGroup ("kmt-consumer").
	Group string
	// Encoding says where the kmt metadata is: message.Headers (default) or
	// message.Body.
	Encoding message.Encoding
	// ID names this consumer in logs, metrics (kmt_consumer_up) and reports.
	// Default: the host name.
	ID string
	// SweepInterval is how often the ledger is swept (gaps past the loss
	// grace declared lost, metrics updated). Default DefaultSweepInterval
	// (1s).
	SweepInterval time.Duration
	// Batch is how many waiting records are accounted under one partition
	// lock and one offset mark. Default DefaultBatch (256).
	Batch int
	// Tune, when set, adjusts the sarama configuration after kmt's defaults
	// (session timeouts, fetch sizes). Default nil.
	Tune func(*sarama.Config)
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.ID == "" {
		c.ID, _ = os.Hostname()
		if c.ID == "" {
			c.ID = "kmt-consumer"
		}
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
}

// ConfigError is an invalid Config field.
type ConfigError struct {
	Field  string // the Config field, e.g. "Topics"
	Reason string
}

// Error returns "consumer config Field: reason".
func (e *ConfigError) Error() string { return "consumer config " + e.Field + ": " + e.Reason }

// Validate checks the configuration without connecting; errors are
// *ConfigError naming the field.
func (c Config) Validate() error {
	if len(c.Topics) == 0 {
		return &ConfigError{"Topics", "at least one topic is required"}
	}
	if c.TopicPrefix != "" {
		if err := validTopic(c.TopicPrefix); err != nil {
			return &ConfigError{"TopicPrefix", err.Error()}
		}
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if err := validTopic(c.TopicPrefix + t); err != nil {
			return &ConfigError{"Topics", err.Error()}
		}
		if seen[t] {
			return &ConfigError{"Topics", fmt.Sprintf("%q is listed twice", t)}
		}
		seen[t] = true
	}
	if c.Encoding != message.Headers && c.Encoding != message.Body {
		return &ConfigError{"Encoding", fmt.Sprintf("unknown encoding %d", c.Encoding)}
	}
	if c.Group == "" || strings.TrimSpace(c.Group) != c.Group {
		return &ConfigError{"Group", fmt.Sprintf("%q is empty or has leading or trailing spaces", c.Group)}
	}
	if c.Batch < 0 {
		return &ConfigError{"Batch", fmt.Sprintf("%d is negative", c.Batch)}
	}
	return nil
}

// validTopic applies Kafka's topic name rules (a prefix is checked the same
// way).
func validTopic(t string) error {
	if t == "" || t == "." || t == ".." {
		return fmt.Errorf("%q is not a valid topic name", t)
	}
	if len(t) > 249 {
		return fmt.Errorf("topic name %q is longer than 249 characters", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q contains %q (allowed: letters, digits, '.', '_', '-')", t, c)
		}
	}
	return nil
}

// Consumer is one member of a consumer group reading the destination
// topics and accounting every record in a shared Ledger.
type Consumer struct {
	conn    kafkaconf.Conn
	cfg     Config
	sarama  *sarama.Config
	ledger  *Ledger
	m       *Metrics
	sources map[string]string // topic read -> source topic
	topics  []string          // topics read
	records atomic.Uint64     // records accounted by this consumer

	mu     sync.Mutex
	group  sarama.ConsumerGroup
	client sarama.Client
	closed bool
}

// New returns a consumer that accounts into ledger. m carries the
// consumer's own metrics (kmt_consumer_up, lag); nil means the ledger's. It
// does not connect; Run does.
func New(conn kafkaconf.Conn, cfg Config, ledger *Ledger, m *Metrics) (*Consumer, error) {
	if ledger == nil {
		return nil, errors.New("consumer: ledger is nil")
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = ledger.m
	}
	sc, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", cfg.ID, err)
	}
	if conn.ClientID == "" {
		sc.ClientID = "kmt-consumer"
	}
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	sc.Consumer.Group.ResetInvalidOffsets = true
	sc.Consumer.Fetch.Default = 4 << 20
	sc.ChannelBufferSize = 1024
	if cfg.Tune != nil {
		cfg.Tune(sc)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("consumer %s: sarama configuration: %w", cfg.ID, err)
	}
	c := &Consumer{conn: conn, cfg: cfg, sarama: sc, ledger: ledger, m: m, sources: map[string]string{}}
	for _, t := range cfg.Topics {
		c.sources[cfg.TopicPrefix+t] = t
		c.topics = append(c.topics, cfg.TopicPrefix+t)
		// Exported at zero before the first message, so Prometheus's
		// rate() sees the first arrivals (a series that appears at N
		// hides its first N).
		m.Latency.declare(t)
	}
	ledger.addConsumer(cfg.ID)
	return c, nil
}

// ID returns the consumer's id.
func (c *Consumer) ID() string { return c.cfg.ID }

// Records returns how many records this consumer has accounted (re-reads
// and foreign records included).
func (c *Consumer) Records() uint64 { return c.records.Load() }

// Run connects (retrying until the connection's ConnectTimeout), joins the
// group and accounts records until ctx is cancelled or Close is called. A
// cancelled context is a clean stop and returns nil; the group's offsets are
// committed when the session ends. Run can be called once.
func (c *Consumer) Run(ctx context.Context) error {
	log := slog.With("consumer", c.cfg.ID, "group", c.cfg.Group)
	log.Info("consumer connecting", "brokers", c.conn.String(), "topics", c.topics)
	client, err := kafkaconf.Connect(ctx, c.conn, c.sarama)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("consumer %s: %w", c.cfg.ID, err)
	}
	group, err := sarama.NewConsumerGroupFromClient(c.cfg.Group, client)
	if err != nil {
		client.Close()
		return fmt.Errorf("consumer %s: join group %s: %w", c.cfg.ID, c.cfg.Group, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		group.Close()
		client.Close()
		return nil
	}
	c.group, c.client = group, client
	c.mu.Unlock()

	up := c.m.Up.WithLabelValues(c.cfg.ID)
	up.Set(1)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		// Leave the group (committing), which also closes its error
		// channel, then wait for the helpers.
		cancel()
		c.Close()
		wg.Wait()
		c.ledger.Sweep(time.Now())
		up.Set(0)
	}()
	wg.Add(2)
	go func() {
		defer wg.Done()
		for err := range group.Errors() {
			// Rebalance churn is expected (info); the rest may need a person.
			log.Log(ctx, kafkaconf.ChurnLevel(err), "consumer group error", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		tick := time.NewTicker(c.cfg.SweepInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				c.ledger.maybeSweep(now, c.cfg.SweepInterval)
				c.ledger.maybePublish(ctx, now)
			}
		}
	}()

	log.Info("consumer running", "topics", c.topics, "encoding", c.cfg.Encoding.String())
	h := &handler{c: c, log: log}
	backoff := 100 * time.Millisecond
	for {
		err := group.Consume(ctx, c.topics, h)
		if ctx.Err() != nil || errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		if err != nil {
			log.Log(ctx, kafkaconf.ChurnLevel(err), "consumer session failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
	log.Info("consumer stopped")
	return nil
}

// Close leaves the group and closes the connections. Safe to call more than
// once and concurrently with Run, which then returns.
func (c *Consumer) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.group != nil {
		if err := c.group.Close(); err != nil {
			slog.Warn("consumer close group", "consumer", c.cfg.ID, "err", err)
		}
	}
	if c.client != nil && !c.client.Closed() {
		c.client.Close()
	}
}

// handler is the sarama ConsumerGroupHandler.
type handler struct {
	c   *Consumer
	log *slog.Logger
}

// Setup logs the session's assignment.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.log.Info("consumer session started", "generation", sess.GenerationID(), "claims", sess.Claims())
	return nil
}

// Cleanup commits the marked offsets so that a graceful rebalance hands the
// partitions over without re-reads (unless Tune disabled committing).
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	if h.c.sarama.Consumer.Offsets.AutoCommit.Enable {
		sess.Commit()
	}
	h.log.Info("consumer session ended", "generation", sess.GenerationID())
	return nil
}

// ConsumeClaim owns one partition for the session: it takes the partition's
// claim lock in the ledger, accounts records in batches of those already
// waiting, and marks each batch's offsets once it is accounted.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c := h.c
	source, ok := c.sources[claim.Topic()]
	if !ok {
		source = strings.TrimPrefix(claim.Topic(), c.cfg.TopicPrefix)
	}
	p := c.ledger.partition(claim.Topic(), source, claim.Partition())
	if err := p.acquire(sess.Context()); err != nil {
		return nil // the session ended while another member still owned it
	}
	defer p.release()
	p.beginClaim(claim.InitialOffset())
	// With a publishing ledger, offsets are marked (and so committed) only
	// up to what a successful publication covered: a process killed at any
	// moment leaves no accounted offset that is neither published nor read
	// again by the next owner.
	var processed, marked int64 = -1, -1
	var gate <-chan time.Time
	if c.ledger.Publishing() {
		tick := time.NewTicker(c.ledger.pubInterval / 2)
		defer tick.Stop()
		gate = tick.C
		defer func() {
			// The claim ends (rebalance or shutdown): publish, then hand
			// the partition over at what is published.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.ledger.Publish(ctx, false); err != nil {
				h.log.Warn("consumer accounting publication at the end of a claim failed; the next owner re-reads from the last published offset",
					"topic", claim.Topic(), "partition", claim.Partition(), "err", err)
			}
			h.markPublished(sess, p, processed, &marked)
		}()
	}
	c.consume(sess.Context().Done(), claim.Messages(), p, gate, func(last *sarama.ConsumerMessage) {
		switch {
		case last == nil: // a gate tick: a publication may have covered more
			h.markPublished(sess, p, processed, &marked)
			return
		case gate == nil:
			sess.MarkOffset(last.Topic, last.Partition, last.Offset+1, "")
		default:
			processed = last.Offset + 1
			h.markPublished(sess, p, processed, &marked)
		}
		p.lag.Store(max(claim.HighWaterMarkOffset()-(last.Offset+1), 0))
	})
	return nil
}

// consume accounts the records of msgs in p until msgs closes or done is
// closed, calling mark with the last record of every accounted batch, and
// with nil at every tick of gate (nil: no ticks).
//
// A batch is the first record plus those already waiting (at most
// Config.Batch). They are taken off the channel first and the receive time
// is read after that: every record's receive time is then no earlier than
// when it reached the consumer (at most the few microseconds of taking the
// batch later), so a latency is never under-reported. Reading the clock
// once per batch rather than per record keeps it off the per-message cost.
func (c *Consumer) consume(done <-chan struct{}, msgs <-chan *sarama.ConsumerMessage, p *partition, gate <-chan time.Time, mark func(last *sarama.ConsumerMessage)) {
	enc := c.cfg.Encoding
	batch := make([]*sarama.ConsumerMessage, 0, c.cfg.Batch)
	for {
		batch = batch[:0]
		select {
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			batch = append(batch, msg)
		case <-gate:
			mark(nil)
			continue
		case <-done:
			return
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		now := c.ledger.clock()
		p.mu.Lock()
		for _, m := range batch {
			p.account(m, enc, now)
		}
		// The decode target aliases the last record, and with it the
		// whole fetch response it came in: let it go.
		p.meta.Producer, p.meta.Run = nil, nil
		p.mu.Unlock()
		c.records.Add(uint64(len(batch)))
		mark(batch[len(batch)-1])
		clear(batch)
	}
}

// markPublished marks the partition's offset up to what this claim
// processed and the last publication covered.
func (h *handler) markPublished(sess sarama.ConsumerGroupSession, p *partition, processed int64, marked *int64) {
	off := min(processed, p.published.Load())
	if off > *marked {
		sess.MarkOffset(p.topic, p.id, off, "")
		*marked = off
	}
}
