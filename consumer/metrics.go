package consumer

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/promreg"
)

// latencyBounds are the end-to-end latency histogram bucket upper bounds in
// seconds: 1ms to 60s, roughly exponential (the producer's ack-latency
// buckets).
var latencyBounds = [...]float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60}

// LatencyBuckets returns the end-to-end latency histogram bucket upper
// bounds in seconds: 1ms to 60s, roughly exponential.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBounds[:]...) }

// MaxProducerLabels caps the distinct values of the producer label: the
// first MaxProducerLabels producer ids seen keep their own label, later ones
// share OtherProducer.
const MaxProducerLabels = 100

// OtherProducer is the producer label of producers beyond MaxProducerLabels.
const OtherProducer = "other"

// Metrics are the consumer's Prometheus metrics. Every topic label is the
// source topic name (the stream's topic), also when the consumer reads a
// renamed destination topic. One Metrics is shared by every consumer and the
// Ledger of a process.
type Metrics struct {
	// Messages counts data-message arrivals by topic, producer and result
	// (in_order, duplicate, reordered, gap, late):
	// kmt_consumer_messages_total. Re-reads and foreign records are not
	// counted here. Updated by the ledger's sweep, once a second.
	Messages *prometheus.CounterVec
	// Foreign counts records that are not kmt messages, by topic and reason:
	// kmt_consumer_foreign_total.
	Foreign *prometheus.CounterVec
	// Lost counts sequences declared lost (loss grace expired or end
	// marker), by topic and producer: kmt_consumer_lost_messages_total.
	// Sequences that arrive afterwards are counted as late, this counter does
	// not go down.
	Lost *prometheus.CounterVec
	// Latency is the end-to-end latency (receive time minus the producer's
	// creation timestamp) of first arrivals, by topic:
	// kmt_consumer_e2e_latency_seconds. Updated by the ledger's sweep.
	Latency *LatencyHistogram
	// LatencyOutOfRange counts first arrivals whose latency could not be
	// measured as is, by topic and reason: "future" (created after it was
	// received: the producer's clock is ahead of the consumer's; recorded
	// as 0) and "over_1h" (older than the latency histograms' 1 h cap;
	// recorded as 1 h): kmt_consumer_latency_out_of_range_total.
	LatencyOutOfRange *prometheus.CounterVec
	// Untracked counts messages of streams beyond the stream cap
	// (WithMaxStreams), counted but not validated, by topic:
	// kmt_consumer_untracked_messages_total.
	Untracked *prometheus.CounterVec
	// Streams is the number of tracked streams: kmt_consumer_streams.
	Streams prometheus.Gauge
	// InFlight is the number of missing sequences still within the loss
	// grace, by topic: kmt_consumer_in_flight_messages.
	InFlight *prometheus.GaugeVec
	// Lag is the sum over the partitions this process owns of high-water
	// mark minus the next offset to read, by topic:
	// kmt_consumer_lag_messages.
	Lag *prometheus.GaugeVec
	// Up is 1 while a consumer runs, by consumer id: kmt_consumer_up.
	Up *prometheus.GaugeVec

	mu        sync.Mutex
	producers map[string]bool
}

// NewMetrics creates the consumer metrics and registers them with reg. A nil
// reg leaves them unregistered. Metrics already registered with reg (by an
// earlier NewMetrics call) are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_consumer_messages_total",
			Help: "Data messages received, by result: in_order, duplicate, reordered, gap (opened a gap), late (arrived after being declared lost).",
		}, []string{"topic", "producer", "result"}),
		Foreign: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_consumer_foreign_total",
			Help: "Records that are not kmt messages (or are malformed), by reason; counted and skipped.",
		}, []string{"topic", "reason"}),
		Lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_consumer_lost_messages_total",
			Help: "Sequences declared lost: missing after the loss grace period or below a stream's end marker.",
		}, []string{"topic", "producer"}),
		Latency: newLatencyHistogram(),
		LatencyOutOfRange: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_consumer_latency_out_of_range_total",
			Help: "First arrivals whose end-to-end latency was out of range, by reason: future (created after it was received: clock skew; recorded as 0), over_1h (older than the 1 h cap; recorded as 1 h).",
		}, []string{"topic", "reason"}),
		Untracked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_consumer_untracked_messages_total",
			Help: "Messages of streams beyond the stream cap (--max-streams): counted, not validated.",
		}, []string{"topic"}),
		Streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kmt_consumer_streams",
			Help: "Streams (topic, producer, run, key) tracked by this process.",
		}),
		InFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_consumer_in_flight_messages",
			Help: "Missing sequences still within the loss grace period.",
		}, []string{"topic"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_consumer_lag_messages",
			Help: "Messages between the partition high-water marks and the consumer's position, summed over owned partitions.",
		}, []string{"topic"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_consumer_up",
			Help: "1 while the consumer runs.",
		}, []string{"consumer"}),
		producers: map[string]bool{},
	}
	if reg != nil {
		m.Messages = promreg.Register("consumer", reg, m.Messages)
		m.Foreign = promreg.Register("consumer", reg, m.Foreign)
		m.Lost = promreg.Register("consumer", reg, m.Lost)
		m.Latency = promreg.Register("consumer", reg, m.Latency)
		m.LatencyOutOfRange = promreg.Register("consumer", reg, m.LatencyOutOfRange)
		m.Untracked = promreg.Register("consumer", reg, m.Untracked)
		m.Streams = promreg.Register("consumer", reg, m.Streams)
		m.InFlight = promreg.Register("consumer", reg, m.InFlight)
		m.Lag = promreg.Register("consumer", reg, m.Lag)
		m.Up = promreg.Register("consumer", reg, m.Up)
	}
	return m
}

// ProducerLabel returns the label value for producer id: the id itself for
// the first MaxProducerLabels ids seen, OtherProducer afterwards.
func (m *Metrics) ProducerLabel(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.producers[id] {
		return id
	}
	if len(m.producers) < MaxProducerLabels {
		m.producers[id] = true
		return id
	}
	return OtherProducer
}

// runMetrics are the counters of one (topic, producer label), resolved once
// per producer run so the hot path never looks labels up.
type runMetrics struct {
	results [numResults]prometheus.Counter
	lost    prometheus.Counter
}

func (m *Metrics) forRun(topic, producer string) *runMetrics {
	label := m.ProducerLabel(producer)
	rm := &runMetrics{lost: m.Lost.WithLabelValues(topic, label)}
	for i := range rm.results {
		rm.results[i] = m.Messages.WithLabelValues(topic, label, Result(i).String())
	}
	return rm
}

// LatencyHistogram is the kmt_consumer_e2e_latency_seconds histogram, by
// topic. It is a Prometheus collector like a HistogramVec, but the ledger's
// partitions accumulate observations in plain per-partition buckets under
// the lock they already hold and add them here at each sweep, which keeps
// atomic operations off the per-message path.
type LatencyHistogram struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	series map[string]*latencyBatch
}

func newLatencyHistogram() *LatencyHistogram {
	return &LatencyHistogram{
		desc: prometheus.NewDesc("kmt_consumer_e2e_latency_seconds",
			"End-to-end latency: consumer receive time minus producer creation timestamp (first arrivals only).",
			[]string{"topic"}, nil),
		series: map[string]*latencyBatch{},
	}
}

// Describe implements prometheus.Collector.
func (h *LatencyHistogram) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

// Collect implements prometheus.Collector.
func (h *LatencyHistogram) Collect(ch chan<- prometheus.Metric) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for topic, s := range h.series {
		buckets := make(map[float64]uint64, len(latencyBounds))
		var cum uint64
		for i, ub := range latencyBounds {
			cum += s.counts[i]
			buckets[ub] = cum
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, s.count, s.sum, buckets, topic)
	}
}

// Observe records one latency in seconds for topic. The ledger does not use
// it on its hot path; it is for callers outside a ledger.
func (h *LatencyHistogram) Observe(topic string, seconds float64) {
	var b latencyBatch
	b.observe(seconds)
	h.add(topic, &b)
}

// Count returns how many observations topic has.
func (h *LatencyHistogram) Count(topic string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s := h.series[topic]; s != nil {
		return s.count
	}
	return 0
}

// declare exports topic's series at zero when it has none yet.
func (h *LatencyHistogram) declare(topic string) {
	h.mu.Lock()
	if h.series[topic] == nil {
		h.series[topic] = &latencyBatch{}
	}
	h.mu.Unlock()
}

// add adds b's observations to topic's series and resets b.
func (h *LatencyHistogram) add(topic string, b *latencyBatch) {
	if b.count == 0 {
		return
	}
	h.mu.Lock()
	s := h.series[topic]
	if s == nil {
		s = &latencyBatch{}
		h.series[topic] = s
	}
	for i, n := range b.counts {
		s.counts[i] += n
	}
	s.count += b.count
	s.sum += b.sum
	h.mu.Unlock()
	*b = latencyBatch{}
}

// latencyBatch holds histogram observations: counts per bucket (not
// cumulative; the last one is +Inf), their number and sum.
type latencyBatch struct {
	counts [len(latencyBounds) + 1]uint64
	count  uint64
	sum    float64
}

// observe adds one value in seconds. Negative values (clock skew) count as
// zero; NaN is ignored.
func (b *latencyBatch) observe(v float64) {
	if math.IsNaN(v) {
		return
	}
	v = max(v, 0)
	i := 0
	for i < len(latencyBounds) && v > latencyBounds[i] {
		i++
	}
	b.counts[i]++
	b.count++
	b.sum += v
}
