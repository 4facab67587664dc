package producer

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/promreg"
)

// LatencyBuckets are the produce-ack latency histogram buckets in seconds:
// 1ms to 60s, roughly exponential.
var LatencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60}

// Metrics are the producer's Prometheus metrics. One Metrics may be shared
// by several producers in a process: counters add up, and the target-rate
// and behind gauges hold the sum over the producers of a topic.
type Metrics struct {
	// Sent counts data messages handed to the Kafka client, per topic
	// (kmt_producer_messages_sent_total). End-of-stream markers are not
	// counted.
	Sent *prometheus.CounterVec
	// Acked counts data messages the cluster acknowledged, per topic
	// (kmt_producer_messages_acked_total).
	Acked *prometheus.CounterVec
	// Errors counts data messages that failed to produce, per topic
	// (kmt_producer_errors_total).
	Errors *prometheus.CounterVec
	// TargetRate is the configured rate in messages per second, per topic
	// (kmt_producer_target_rate); 0 while unlimited or stopped.
	TargetRate *prometheus.GaugeVec
	// AckLatency is the produce-ack latency from the scheduled send time,
	// per topic (kmt_producer_ack_latency_seconds).
	AckLatency *prometheus.HistogramVec
	// Behind is how many scheduled messages are not yet sent, per topic
	// (kmt_producer_behind_messages).
	Behind *prometheus.GaugeVec
	// Up is 1 while a producer runs, per producer id (kmt_producer_up).
	Up *prometheus.GaugeVec
}

// NewMetrics creates the producer metrics and registers them with reg. A nil
// reg leaves them unregistered. Metrics already registered with reg (by an
// earlier NewMetrics call) are reused, so producers in one process can each
// call NewMetrics with the same registry.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_producer_messages_sent_total",
			Help: "Data messages handed to the Kafka client (end-of-stream markers excluded).",
		}, []string{"topic"}),
		Acked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_producer_messages_acked_total",
			Help: "Data messages acknowledged by the cluster.",
		}, []string{"topic"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_producer_errors_total",
			Help: "Data messages that failed to produce after retries.",
		}, []string{"topic"}),
		TargetRate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_producer_target_rate",
			Help: "Configured produce rate in messages per second (0 = unlimited or stopped).",
		}, []string{"topic"}),
		AckLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmt_producer_ack_latency_seconds",
			Help:    "Produce-ack latency measured from the scheduled send time.",
			Buckets: LatencyBuckets,
		}, []string{"topic"}),
		Behind: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_producer_behind_messages",
			Help: "Messages whose scheduled send time has passed but that are not sent yet.",
		}, []string{"topic"}),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_producer_up",
			Help: "1 while the producer runs.",
		}, []string{"producer"}),
	}
	if reg != nil {
		m.Sent = promreg.Register("producer", reg, m.Sent)
		m.Acked = promreg.Register("producer", reg, m.Acked)
		m.Errors = promreg.Register("producer", reg, m.Errors)
		m.TargetRate = promreg.Register("producer", reg, m.TargetRate)
		m.AckLatency = promreg.Register("producer", reg, m.AckLatency)
		m.Behind = promreg.Register("producer", reg, m.Behind)
		m.Up = promreg.Register("producer", reg, m.Up)
	}
	return m
}
