package grafana_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kmtproject/kmt/grafana/alerts"
	"github.com/kmtproject/kmt/grafana/dashboard"
)

// metricsDoc is docs/metrics.md, relative to this package.
var metricsDoc = filepath.Join("..", "docs", "metrics.md")

// docMetric is one row of a metrics table of docs/metrics.md.
type docMetric struct {
	Name   string
	Type   string   // counter, gauge, histogram, summary
	Labels []string // sorted; empty for none
	Line   int
}

// metricsReference is what docs/metrics.md says.
type metricsReference struct {
	Metrics map[string]docMetric
	// Unused maps a metric to the reason it is on no dashboard or alert,
	// from the "Not on the dashboards or alerts" section.
	Unused map[string]string
}

var (
	docRow    = regexp.MustCompile("^\\|\\s*`((?:kmt|kafka)_[a-zA-Z0-9_]+)`\\s*\\|\\s*([a-z]+)\\s*\\|([^|]*)\\|\\s*(.*?)\\s*\\|\\s*$")
	unusedRow = regexp.MustCompile("^- `(kmt_[a-zA-Z0-9_]+)`:\\s*(.*)$")
	docLabel  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseMetricsDoc reads docs/metrics.md: every table row whose first cell is
// a backquoted metric name gives its type, labels (comma-separated, "—" for
// none) and meaning; the bullets of the "Not on the dashboards" section give
// the reason a metric has no panel or alert.
func parseMetricsDoc(t *testing.T) metricsReference {
	t.Helper()
	f, err := os.Open(metricsDoc)
	if err != nil {
		t.Fatalf("open %s: %v", metricsDoc, err)
	}
	defer f.Close()
	ref := metricsReference{Metrics: map[string]docMetric{}, Unused: map[string]string{}}
	inUnused := false
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			inUnused = strings.HasPrefix(strings.ToLower(text), "## not on the dashboards")
			continue
		}
		if inUnused {
			if m := unusedRow.FindStringSubmatch(text); m != nil {
				ref.Unused[m[1]] = strings.TrimSpace(m[2])
			}
			continue
		}
		m := docRow.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		dm := docMetric{Name: m[1], Type: m[2], Line: line}
		if _, dup := ref.Metrics[dm.Name]; dup {
			t.Errorf("%s:%d: %s documented twice", metricsDoc, line, dm.Name)
		}
		switch dm.Type {
		case "counter", "gauge", "histogram", "summary":
		default:
			t.Errorf("%s:%d: %s: type %q is not counter, gauge, histogram or summary", metricsDoc, line, dm.Name, dm.Type)
		}
		if labels := strings.TrimSpace(m[3]); labels != "—" && labels != "" {
			for _, l := range strings.Split(labels, ",") {
				l = strings.TrimSpace(l)
				if !docLabel.MatchString(l) {
					t.Errorf("%s:%d: %s: label %q is not a label name", metricsDoc, line, dm.Name, l)
				}
				dm.Labels = append(dm.Labels, l)
			}
		}
		sort.Strings(dm.Labels)
		if len(m[4]) < 10 {
			t.Errorf("%s:%d: %s: no meaning given", metricsDoc, line, dm.Name)
		}
		ref.Metrics[dm.Name] = dm
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", metricsDoc, err)
	}
	if len(ref.Metrics) == 0 {
		t.Fatalf("%s: no metric rows found", metricsDoc)
	}
	return ref
}

// referencedMetrics returns every metric family the dashboards and alerts
// use, each with where it is used.
func referencedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(expr, where string) {
		for _, m := range dashboard.MetricNames(expr) {
			used[m] = append(used[m], where)
		}
	}
	for file, d := range dashboard.All() {
		for _, q := range dashboard.Queries(d) {
			add(q.Expr, file+" "+q.String())
		}
		for name, expr := range dashboard.AnnotationExprs(d) {
			add(expr, file+" annotation "+name)
		}
		for name, expr := range dashboard.VariableQueries(d) {
			add(expr, file+" variable "+name)
		}
	}
	rules, err := alerts.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		add(r.Expr, "alert "+r.Alert)
	}
	return used
}

// TestMetricsDocCoversDashboardsAndAlerts: every metric a dashboard or alert
// uses is documented, and every documented kmt metric is used or says why
// not.
func TestMetricsDocCoversDashboardsAndAlerts(t *testing.T) {
	ref := parseMetricsDoc(t)
	used := referencedMetrics(t)
	for m, where := range used {
		if _, ok := ref.Metrics[m]; !ok {
			t.Errorf("%s is used by %s but not documented in %s", m, where[0], metricsDoc)
		}
	}
	for m := range ref.Metrics {
		_, isUsed := used[m]
		reason, hasReason := ref.Unused[m]
		switch {
		case !isUsed && !hasReason:
			t.Errorf("%s is documented but no panel or alert uses it, and the \"Not on the dashboards or alerts\" section gives no reason", m)
		case isUsed && hasReason:
			t.Errorf("%s is listed as not on the dashboards or alerts, but %s uses it", m, used[m][0])
		case hasReason && len(reason) < 20:
			t.Errorf("%s: the reason it is not on the dashboards (%q) is too short to explain anything", m, reason)
		}
	}
	for m := range ref.Unused {
		if _, ok := ref.Metrics[m]; !ok {
			t.Errorf("%s is listed as not on the dashboards but has no row in the metric tables", m)
		}
	}
}

// TestMetricsDocNamesTheBriefsMetrics checks the fixed metric names the
// other components are built on are all documented with their labels.
func TestMetricsDocNamesTheBriefsMetrics(t *testing.T) {
	ref := parseMetricsDoc(t)
	want := map[string][]string{
		"kmt_producer_messages_sent_total":  {"topic"},
		"kmt_producer_messages_acked_total": {"topic"},
		"kmt_producer_errors_total":         {"topic"},
		"kmt_producer_target_rate":          {"topic"},
		"kmt_producer_ack_latency_seconds":  {"topic"},
		"kmt_producer_behind_messages":      {"topic"},
		"kmt_producer_up":                   {"producer"},
		"kmt_consumer_messages_total":       {"producer", "result", "topic"},
		"kmt_consumer_foreign_total":        {"reason", "topic"},
		"kmt_consumer_lost_messages_total":  {"producer", "topic"},
		"kmt_consumer_e2e_latency_seconds":  {"topic"},
		"kmt_consumer_streams":              nil,
		"kmt_consumer_in_flight_messages":   {"topic"},
		"kmt_consumer_lag_messages":         {"topic"},
		"kmt_consumer_up":                   {"consumer"},
		"kmt_mirror_messages_total":         {"topic"},
		"kmt_mirror_errors_total":           {"topic"},
		"kmt_mirror_lag_messages":           {"topic"},
		"kmt_mirror_workers":                nil,
		"kmt_mirror_injected_total":         {"fault"},
		"kmt_controller_fault_active":       {"action", "target"},
		"kmt_controller_steps_total":        {"result"},
	}
	for name, labels := range want {
		dm, ok := ref.Metrics[name]
		if !ok {
			t.Errorf("%s not documented", name)
			continue
		}
		if !slices.Equal(dm.Labels, labels) {
			t.Errorf("%s:%d: %s labels %v, want %v", metricsDoc, dm.Line, name, dm.Labels, labels)
		}
	}
}
