package mirror

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/internal/promreg"
)

// Metrics are the mirror's Prometheus metrics. Several mirrors may share one
// Metrics; their values add up.
type Metrics struct {
	messages *prometheus.CounterVec
	errors   *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	workers  prometheus.Gauge
	injected *prometheus.CounterVec
}

// NewMetrics creates the mirror metrics and registers them with reg (nil:
// not registered). Registering twice with the same registry reuses the
// collectors already there.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_mirror_messages_total",
			Help: "Records the mirror replicated: acknowledged by the destination cluster, by source topic.",
		}, []string{"topic"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_mirror_errors_total",
			Help: "Records the destination cluster failed to acknowledge, by source topic.",
		}, []string{"topic"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_mirror_lag_messages",
			Help: "Source records not yet acknowledged by the destination: partition high-water marks minus the next unacknowledged offset, by source topic.",
		}, []string{"topic"}),
		workers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kmt_mirror_workers",
			Help: "Mirror workers running (consumer group members).",
		}),
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_mirror_injected_total",
			Help: "Faults the mirror injected on purpose (self-test modes only), by fault: drop, duplicate, swap.",
		}, []string{"fault"}),
	}
	if reg != nil {
		m.messages = promreg.Register("mirror", reg, m.messages)
		m.errors = promreg.Register("mirror", reg, m.errors)
		m.lag = promreg.Register("mirror", reg, m.lag)
		m.workers = promreg.Register("mirror", reg, m.workers)
		m.injected = promreg.Register("mirror", reg, m.injected)
	}
	return m
}
