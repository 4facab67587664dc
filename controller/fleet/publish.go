package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/promreg"
	"github.com/kmtproject/kmt/producer"
)

// Metrics are the publisher's Prometheus metrics.
type Metrics struct {
	// Published counts accounting records published, by role (producer,
	// consumer): kmt_accounting_records_published_total.
	Published *prometheus.CounterVec
	// Failures counts publications that failed, by role:
	// kmt_accounting_publish_failures_total.
	Failures *prometheus.CounterVec
}

// NewMetrics creates the publisher metrics and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_accounting_records_published_total",
			Help: "Accounting records published into the accounting topic, by role.",
		}, []string{"role"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_accounting_publish_failures_total",
			Help: "Publications of accounting records that failed (retried at the next interval), by role.",
		}, []string{"role"}),
	}
	if reg != nil {
		m.Published = promreg.Register("accounting", reg, m.Published)
		m.Failures = promreg.Register("accounting", reg, m.Failures)
	}
	return m
}

// ErrConnect wraps NewPublisher's failures to connect to the cluster (as
// opposed to failures to create or write the accounting topic).
var ErrConnect = errors.New("cannot connect")

// Publisher writes accounting records into the accounting topic of one
// cluster, synchronously and acknowledged by every in-sync replica.
type Publisher struct {
	topic  string
	m      *Metrics
	client sarama.Client
	prod   sarama.SyncProducer
	mu     sync.Mutex
}

// NewPublisher connects to conn (retrying until its ConnectTimeout),
// creates the compacted accounting topic when it is missing (topic "":
// DefaultTopic) and returns a publisher. m may be nil.
func NewPublisher(ctx context.Context, conn kafkaconf.Conn, topic string, m *Metrics) (*Publisher, error) {
	if topic == "" {
		topic = DefaultTopic
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	cfg, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("accounting publisher: %w", err)
	}
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Compression = sarama.CompressionGZIP
	cfg.Producer.MaxMessageBytes = 64 << 20 // the broker limits the compressed batch
	cfg.Producer.Retry.Max = 5
	cfg.Producer.Timeout = 10 * time.Second
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("accounting publisher: %w: %w", ErrConnect, err)
	}
	if err := ensureTopic(client, topic); err != nil {
		client.Close()
		return nil, err
	}
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("accounting publisher: producer on %s: %w", conn, err)
	}
	return &Publisher{topic: topic, m: m, client: client, prod: prod}, nil
}

// ensureTopic creates the compacted accounting topic with one partition and
// up to three replicas, unless it exists.
func ensureTopic(client sarama.Client, topic string) error {
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("accounting publisher: cluster admin: %w", err)
	}
	// Not closing admin: that would close the shared client.
	rf := int16(min(3, len(client.Brokers())))
	compact := "compact"
	err = admin.CreateTopic(topic, &sarama.TopicDetail{
		NumPartitions: 1, ReplicationFactor: max(rf, 1),
		ConfigEntries: map[string]*string{"cleanup.policy": &compact},
	}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("accounting publisher: create topic %s: %w", topic, err)
	}
	if err == nil {
		slog.Info("accounting topic created", "topic", topic, "replication_factor", rf)
	}
	return nil
}

// Close closes the connections.
func (p *Publisher) Close() {
	_ = p.prod.Close()
	_ = p.client.Close()
}

// send writes msgs and returns once every one is acknowledged.
func (p *Publisher) send(role string, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.prod.SendMessages(msgs); err != nil {
		p.m.Failures.WithLabelValues(role).Inc()
		return fmt.Errorf("publish %d accounting records into %s: %w", len(msgs), p.topic, err)
	}
	p.m.Published.WithLabelValues(role).Add(float64(len(msgs)))
	return nil
}

func (p *Publisher) message(key string, v any) (*sarama.ProducerMessage, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode accounting record %s: %w", key, err)
	}
	return &sarama.ProducerMessage{Topic: p.topic, Partition: 0, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)}, nil
}

// PublishProducer publishes a producer run's report, one record per topic.
// final says the producer has stopped cleanly and rep is its last word.
func (p *Publisher) PublishProducer(rep producer.Report, final bool) error {
	now := time.Now().UTC()
	byTopic := map[string]*ProducerRecord{}
	var order []string
	for _, s := range rep.Streams {
		r := byTopic[s.Stream.Topic]
		if r == nil {
			r = &ProducerRecord{V: version, Producer: rep.Producer, Run: rep.Run, Topic: s.Stream.Topic, Final: final, At: now}
			byTopic[s.Stream.Topic] = r
			order = append(order, s.Stream.Topic)
		}
		r.Streams = append(r.Streams, ProducedStream{Key: s.Stream.Key, Partition: s.Partition, Sent: s.Sent, Acked: s.Acked, Failed: s.Failed})
	}
	msgs := make([]*sarama.ProducerMessage, 0, len(order))
	for _, t := range order {
		msg, err := p.message(producerKey(rep.Producer, rep.Run, t), byTopic[t])
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	return p.send("producer", msgs)
}

// RunProducer publishes prod's report every interval until prod's Run has
// returned (done closed), then once more, marked final: after Run returns
// the report is complete. It returns when the final publication is
// acknowledged or failed.
func (p *Publisher) RunProducer(prod *producer.Producer, interval time.Duration, done <-chan struct{}) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return p.PublishProducer(prod.Report(), true)
		case <-tick.C:
			if err := p.PublishProducer(prod.Report(), false); err != nil {
				slog.Warn("producer accounting publication failed; retrying at the next interval", "err", err)
			}
		}
	}
}

// NewInstance returns a random instance id for a consumer process.
func NewInstance() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ConsumerFunc returns the publish function of a consumer process's ledger
// (consumer.WithPublisher): every publication writes the changed
// partitions and the process's latency histogram lat (nil: none).
func (p *Publisher) ConsumerFunc(id, instance string, lat *latency.Recorder) consumer.PublishFunc {
	return func(_ context.Context, parts []consumer.PartitionAccount) error {
		now := time.Now().UTC()
		msgs := make([]*sarama.ProducerMessage, 0, len(parts)+1)
		for _, a := range parts {
			r := ConsumerRecord{V: version, Consumer: id, Instance: instance, At: now, Partition: a.Partition}
			for _, s := range a.Streams {
				r.Streams = append(r.Streams, ConsumedStream{
					Producer: s.Stream.Producer, Run: s.Stream.Run, Key: s.Stream.Key, Seen: s.Seen,
					Duplicates: s.Duplicates, DuplicatedSeqs: s.DuplicatedSeqs, Reordered: s.Reordered, Below: s.Below, Late: s.Late,
					First: s.FirstArrival, Last: s.LastArrival,
				})
			}
			msg, err := p.message(consumerKey(id, instance, a.Partition.Topic, a.Partition.Partition), r)
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		if lat != nil {
			msg, err := p.message(latencyKey(id, instance), LatencyRecord{V: version, Consumer: id, Instance: instance, At: now, Latency: sparse(lat.Snapshot())})
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		return p.send("consumer", msgs)
	}
}
