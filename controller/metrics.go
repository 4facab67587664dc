package controller

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	FaultActive *prometheus.GaugeVec
	Steps       *prometheus.CounterVec
	// Backlog is the replication backlog in messages (see
	// Sample.Backlog): kmt_replication_backlog_messages.
	Backlog prometheus.Gauge
	// BacklogAge is how long ago the oldest message of the backlog was
	// acknowledged on the source: kmt_replication_backlog_age_seconds.
	BacklogAge prometheus.Gauge
}

// NewMetrics registers the controller's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		FaultActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kmt_controller_fault_active",
			Help: "1 while a scenario fault is in effect, by action and target.",
		}, []string{"action", "target"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmt_controller_steps_total",
			Help: "Scenario steps completed, by verdict (pass, fail).",
		}, []string{"result"}),
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kmt_replication_backlog_messages",
			Help: "Messages acknowledged on the source and not yet in the destination: acked - received - lost - consumer lag, sampled by the controller once a second.",
		}),
		BacklogAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kmt_replication_backlog_age_seconds",
			Help: "How long ago the oldest message of the replication backlog was acknowledged on the source (0 without a backlog).",
		}),
	}
	reg.MustRegister(m.FaultActive, m.Steps, m.Backlog, m.BacklogAge)
	for _, r := range []string{"pass", "fail"} {
		m.Steps.WithLabelValues(r)
	}
	return m
}
