package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
)

// All returns every dashboard kmt ships, keyed by its file name under
// grafana/dashboards/.
func All() map[string]Dashboard {
	return map[string]Dashboard{"kmt-replication.json": Replication()}
}

// JSON renders d the way the committed files are written: two-space
// indentation, no HTML escaping, a trailing newline.
func (d Dashboard) JSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encode dashboard %q: %w", d.UID, err)
	}
	return buf.Bytes(), nil
}

// PanelQuery is one Prometheus query of one panel.
type PanelQuery struct {
	PanelID    int
	PanelTitle string
	RefID      string
	Expr       string
	// Instant is true for instant queries (stats, tables), false for range
	// queries drawn over time.
	Instant bool
}

// String names the query for error messages: panel title, id and refId.
func (q PanelQuery) String() string {
	return fmt.Sprintf("panel %q (id %d) query %s", q.PanelTitle, q.PanelID, q.RefID)
}

// Queries returns every panel query of d, rows' nested panels included, in
// panel order.
func Queries(d Dashboard) []PanelQuery {
	var out []PanelQuery
	var walk func(ps []Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, PanelQuery{PanelID: p.ID, PanelTitle: p.Title, RefID: t.RefID, Expr: t.Expr, Instant: t.Instant})
			}
			if p.Panels != nil {
				walk(*p.Panels)
			}
		}
	}
	walk(d.Panels)
	return out
}

// AnnotationExprs returns the PromQL expressions of d's Prometheus
// annotation queries, keyed by annotation name.
func AnnotationExprs(d Dashboard) map[string]string {
	out := map[string]string{}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			out[a.Name] = a.Expr
		}
	}
	return out
}

// VariableQueries returns the label_values queries of d's query variables,
// keyed by variable name.
func VariableQueries(d Dashboard) map[string]string {
	out := map[string]string{}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(VariableQuery); ok {
			out[v.Name] = q.Query
		}
	}
	return out
}

// metricName matches the metric names kmt's dashboards and alerts use: kmt's
// own (kmt_) and the Kafka exporter's (kafka_). Label names never start with
// these prefixes, so a match is always a metric.
var metricName = regexp.MustCompile(`\b(?:kmt|kafka)_[a-zA-Z0-9_]+`)

// histogramSeries matches the series of a histogram whose family name ends
// in a base unit (kmt's histograms are all *_seconds): x_seconds_bucket,
// x_seconds_sum and x_seconds_count belong to the family x_seconds. Gauges
// such as the exporter's kafka_consumergroup_lag_sum keep their name.
var histogramSeries = regexp.MustCompile(`^(.*_(?:seconds|bytes))_(?:bucket|sum|count)$`)

// MetricNames returns the sorted, distinct metric family names expr
// references (histogram series such as x_seconds_bucket are reported as
// x_seconds), limited to kmt's and the Kafka exporter's metrics.
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	for _, m := range metricName.FindAllString(expr, -1) {
		m = histogramSeries.ReplaceAllString(m, "$1")
		seen[m] = true
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
