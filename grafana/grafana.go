// Package grafana holds kmt's monitoring assets: the Grafana dashboards
// (generated from package dashboard into dashboards/), the provisioning files
// for a plain Grafana (provisioning/), and the Prometheus alerting rules
// (alerts/). Its tests prove them against a real Prometheus scraping a real
// `kmt local` run.
package grafana

//go:generate go run ./internal/gen

import (
	"fmt"
	"path"

	"github.com/kmtproject/kmt/grafana/alerts"
	"github.com/kmtproject/kmt/grafana/dashboard"
)

// DashboardsDir is where the generated dashboards live, relative to this
// directory; the Kubernetes deployment turns every JSON file there into a
// ConfigMap for the kube-prometheus-stack Grafana sidecar.
const DashboardsDir = "dashboards"

// GeneratedFiles returns every generated file, keyed by its path relative to
// this directory, after validating each dashboard against its schema.
func GeneratedFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, d := range dashboard.All() {
		data, err := d.JSON()
		if err != nil {
			return nil, err
		}
		if err := dashboard.Validate(data); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", name, err)
		}
		out[path.Join(DashboardsDir, name)] = data
	}
	out[path.Join("alerts", alerts.PrometheusRuleFileName)] = alerts.PrometheusRule()
	return out, nil
}
