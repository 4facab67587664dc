package controller

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the controller's Prometheus metrics.
type Metrics struct {
	FaultActive *prometheus.GaugeVec
	Steps       *prometheus.CounterVec
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
	}
	reg.MustRegister(m.FaultActive, m.Steps)
	for _, r := range []string{"pass", "fail"} {
		m.Steps.WithLabelValues(r)
	}
	return m
}
