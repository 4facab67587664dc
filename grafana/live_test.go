package grafana_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/grafana/alerts"
	"github.com/kmtproject/kmt/grafana/dashboard"
)

// kubernetesOnlyPanels are the panels allowed to return no data in the live
// test, with the reason: their metrics come from the Kafka exporter
// (danielqsj/kafka-exporter), which only the Kubernetes deployment runs
// against each cluster; `kmt local` has no exporter. The test also checks
// each of them uses nothing but exporter (kafka_) metrics, so this list
// cannot hide a broken kmt query.
var kubernetesOnlyPanels = map[string]string{
	"Replicator consumer-group lag": "kafka_consumergroup_lag comes from the Kafka exporter, deployed on Kubernetes only",
	"Brokers per cluster":           "kafka_brokers comes from the Kafka exporter, deployed on Kubernetes only",
	"Under-replicated partitions":   "kafka_topic_partition_under_replicated_partition comes from the Kafka exporter, deployed on Kubernetes only",
	"Offline partitions":            "kafka_topic_partitions and kafka_topic_partition_leader come from the Kafka exporter, deployed on Kubernetes only",
}

// kubernetesOnlyVariables are the template variables allowed to have no
// values locally, with the reason.
var kubernetesOnlyVariables = map[string]string{
	"region":           "the region label is attached by the Kubernetes scrape configuration, not by kmt",
	"replicator_group": "kafka_consumergroup_lag comes from the Kafka exporter, deployed on Kubernetes only",
}

// grafanaVars are the values the live test gives Grafana's variables: every
// template variable "All" (.*), the built-in intervals as Grafana would
// compute them for a 1 s scrape interval and a short time range.
var grafanaVars = map[string]string{
	"datasource":       "kmt-prometheus",
	"region":           ".*",
	"topic":            ".*",
	"producer":         ".*",
	"replicator_group": ".*",
	"__rate_interval":  "10s",
	"__interval":       "2s",
	"__range":          "1m",
	"__range_s":        "60",
}

var grafanaVarRef = regexp.MustCompile(`\$(?:\{([A-Za-z0-9_]+)(?::[A-Za-z0-9_]+)?\}|([A-Za-z0-9_]+))`)

// substitute replaces Grafana variables in expr the way Grafana would.
func substitute(t *testing.T, expr string) string {
	t.Helper()
	return grafanaVarRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVarRef.FindStringSubmatch(ref)
		if strings.Trim(m[1]+m[2], "0123456789") == "" {
			return ref // a label_replace group ($1): Grafana leaves it alone
		}
		v, ok := grafanaVars[m[1]+m[2]]
		if !ok {
			t.Errorf("%s: no test value for Grafana variable %s", expr, ref)
			return ref
		}
		return v
	})
}

// TestLiveDashboardsAndAlerts runs a real kmt workload and a real
// Prometheus (Debian's) scraping it every second with the alert rules
// loaded, then checks through Prometheus's HTTP API that every panel query
// parses and returns data, every alert expression parses, every rule
// evaluates healthily and none fires on the clean run, the template
// variables have values, and what kmt exports matches docs/metrics.md and
// passes promtool's linter.
func TestLiveDashboardsAndAlerts(t *testing.T) {
	t.Parallel()
	promBin := needTool(t, "prometheus")
	promtool := needTool(t, "promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	addr, kmt := startKmt(t)
	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	prom := startPrometheus(t, promBin, addr, rules)
	t.Logf("prometheus %s scraping kmt at %s", prom.url, addr)
	defer func() {
		if t.Failed() {
			t.Logf("kmt output:\n%s", tail(kmt.out.String(), 4000))
		}
	}()

	// A few scrapes with traffic in them before anything is judged.
	waitCtx, waitCancel := context.WithTimeout(ctx, 60*time.Second)
	err = waitFor(waitCtx, 500*time.Millisecond, func() error {
		n, err := prom.queryValue(ctx, `count_over_time(up{job="kmt"}[1m])`)
		if err != nil || n < 5 {
			return fmt.Errorf("fewer than 5 scrapes yet (%v, %v)", n, err)
		}
		if up, err := prom.queryValue(ctx, `up{job="kmt"}`); err != nil || up != 1 {
			return fmt.Errorf("kmt target not up (%v, %v)", up, err)
		}
		if _, err := prom.query(ctx, `sum(rate(kmt_consumer_e2e_latency_seconds_count[10s])) > 0`); err != nil {
			return fmt.Errorf("no end-to-end latency observed yet: %v", err)
		}
		return nil
	})
	waitCancel()
	if err != nil {
		t.Fatalf("waiting for data: %v", err)
	}

	t.Run("panel queries return data", func(t *testing.T) { checkPanels(ctx, t, prom) })
	t.Run("fault annotations", func(t *testing.T) { checkAnnotations(ctx, t, prom) })
	t.Run("template variables", func(t *testing.T) { checkVariables(ctx, t, prom) })
	t.Run("alert rules", func(t *testing.T) { checkRules(ctx, t, prom) })
	t.Run("exported metrics match the docs", func(t *testing.T) { checkExportedMetrics(ctx, t, prom) })
	t.Run("promtool check metrics", func(t *testing.T) { lintMetrics(t, promtool, "http://"+addr+"/metrics") })
}

// checkPanels evaluates every panel query until each returns data (or the
// deadline passes), then fails naming each panel and query still empty.
func checkPanels(ctx context.Context, t *testing.T, prom *promServer) {
	type pending struct {
		file string
		q    dashboard.PanelQuery
		expr string
		done bool  // returned data
		err  error // the last failure
	}
	var all []*pending
	for file, d := range dashboard.All() {
		for _, q := range dashboard.Queries(d) {
			reason, k8sOnly := kubernetesOnlyPanels[q.PanelTitle]
			if k8sOnly {
				for _, m := range dashboard.MetricNames(q.Expr) {
					if !strings.HasPrefix(m, "kafka_") {
						t.Errorf("%s %s is allowed no data (%s) but uses kmt metric %s", file, q, reason, m)
					}
				}
			}
			all = append(all, &pending{file: file, q: q, expr: substitute(t, q.Expr)})
		}
	}
	for title := range kubernetesOnlyPanels {
		if !slices.ContainsFunc(all, func(p *pending) bool { return p.q.PanelTitle == title }) {
			t.Errorf("allow-list names panel %q, which no dashboard has", title)
		}
	}
	// Some series need a moment (a histogram window filling, a sweep):
	// retry the empty ones for a while before judging.
	deadline, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	_ = waitFor(deadline, time.Second, func() error {
		left := 0
		for _, p := range all {
			if p.done {
				continue
			}
			if _, p.err = prom.query(ctx, p.expr); p.err == nil {
				p.done = true
				continue
			}
			if _, ok := kubernetesOnlyPanels[p.q.PanelTitle]; !ok || !errors.Is(p.err, errNoData) {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d queries without data", left)
		}
		return nil
	})
	checked, allowed := 0, 0
	for _, p := range all {
		if p.done {
			checked++
			continue
		}
		if reason, ok := kubernetesOnlyPanels[p.q.PanelTitle]; ok && errors.Is(p.err, errNoData) {
			allowed++
			t.Logf("no data, allowed: %s %s (%s)", p.file, p.q, reason)
			continue
		}
		t.Errorf("%s %s: %v\n  expr: %s", p.file, p.q, p.err, p.expr)
	}
	t.Logf("%d panel queries returned data, %d Kubernetes-only queries allowed empty", checked, allowed)
}

// checkAnnotations evaluates the Prometheus annotation queries: they must
// parse and return data (the run has a fault active).
func checkAnnotations(ctx context.Context, t *testing.T, prom *promServer) {
	for file, d := range dashboard.All() {
		for name, expr := range dashboard.AnnotationExprs(d) {
			if _, err := prom.query(ctx, substitute(t, expr)); err != nil {
				t.Errorf("%s annotation %q: %v\n  expr: %s", file, name, err, expr)
			}
		}
	}
}

// labelValuesQuery parses label_values(label) and label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((?:(.+),\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// checkVariables resolves every label_values variable through the API
// Grafana uses and requires values, except for the Kubernetes-only ones.
func checkVariables(ctx context.Context, t *testing.T, prom *promServer) {
	for file, d := range dashboard.All() {
		for name, q := range dashboard.VariableQueries(d) {
			m := labelValuesQuery.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s variable %s: %q is not label_values(...)", file, name, q)
				continue
			}
			selector, label := substitute(t, m[1]), m[2]
			var values []string
			if selector == "" {
				if err := prom.get(ctx, "/api/v1/label/"+label+"/values", nil, &values); err != nil {
					t.Errorf("%s variable %s: %v", file, name, err)
					continue
				}
			} else {
				var series []map[string]string
				if err := prom.get(ctx, "/api/v1/series", url.Values{"match[]": {selector}}, &series); err != nil {
					t.Errorf("%s variable %s: %v", file, name, err)
					continue
				}
				seen := map[string]bool{}
				for _, s := range series {
					if v, ok := s[label]; ok && !seen[v] {
						seen[v] = true
						values = append(values, v)
					}
				}
			}
			if reason, ok := kubernetesOnlyVariables[name]; ok {
				t.Logf("variable %s: %d values (may be empty locally: %s)", name, len(values), reason)
				continue
			}
			if len(values) == 0 {
				t.Errorf("%s variable %s: %s has no values", file, name, q)
			}
		}
	}
}

// checkRules checks every rule of the rules file is loaded, evaluates
// without error, and that no alert fires on the clean run; and evaluates
// every alert expression through the query API.
func checkRules(ctx context.Context, t *testing.T, prom *promServer) {
	want, err := alerts.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if _, err := prom.query(ctx, r.Expr); err != nil && !errors.Is(err, errNoData) {
			t.Errorf("alert %s: expression does not evaluate: %v\n  expr: %s", r.Alert, err, r.Expr)
		}
	}
	type rule struct {
		Name           string    `json:"name"`
		Health         string    `json:"health"`
		LastError      string    `json:"lastError"`
		State          string    `json:"state"`
		Type           string    `json:"type"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	var got map[string]rule
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = waitFor(waitCtx, 500*time.Millisecond, func() error {
		var data struct {
			Groups []struct {
				Rules []rule `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.get(ctx, "/api/v1/rules", nil, &data); err != nil {
			return err
		}
		got = map[string]rule{}
		for _, g := range data.Groups {
			for _, r := range g.Rules {
				got[r.Name] = r
			}
		}
		for _, r := range want {
			if g, ok := got[r.Alert]; !ok || g.LastEvaluation.Year() < 2000 {
				return fmt.Errorf("rule %s not evaluated yet", r.Alert)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	for _, r := range want {
		g := got[r.Alert]
		if g.Health != "ok" {
			t.Errorf("alert %s: health %q: %s", r.Alert, g.Health, g.LastError)
		}
		switch g.State {
		case "inactive":
		case "pending":
			t.Logf("alert %s is pending on the clean run (it has a for: clause and will not fire unless it persists)", r.Alert)
		default:
			t.Errorf("alert %s is %s on a clean run", r.Alert, g.State)
		}
	}
}

// checkExportedMetrics compares what Prometheus scraped from kmt with
// docs/metrics.md and with what the dashboards and alerts use: every kmt
// metric exported is documented with its type and exact label names, every
// kmt metric used is exported, and every documented kmt metric the run did
// not export is one the doc explains is not on the dashboards.
func checkExportedMetrics(ctx context.Context, t *testing.T, prom *promServer) {
	ref := parseMetricsDoc(t)
	used := referencedMetrics(t)

	var meta map[string][]struct {
		Type string `json:"type"`
		Help string `json:"help"`
	}
	if err := prom.get(ctx, "/api/v1/metadata", nil, &meta); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	var series []map[string]string
	if err := prom.get(ctx, "/api/v1/series", url.Values{"match[]": {`{__name__=~"kmt_.+"}`}}, &series); err != nil {
		t.Fatalf("series: %v", err)
	}
	exported := map[string]string{} // family -> type
	for name, ms := range meta {
		if strings.HasPrefix(name, "kmt_") && len(ms) > 0 {
			exported[name] = ms[0].Type
			if ms[0].Help == "" {
				t.Errorf("%s is exported without help text", name)
			}
		}
	}
	labels := map[string]map[string]bool{}
	for _, s := range series {
		name := s["__name__"]
		family := name
		if _, ok := exported[name]; !ok {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f := strings.TrimSuffix(name, suffix); f != name && exported[f] == "histogram" {
					family = f
				}
			}
		}
		if labels[family] == nil {
			labels[family] = map[string]bool{}
		}
		for l := range s {
			switch l {
			case "__name__", "job", "instance", "le":
			default:
				labels[family][l] = true
			}
		}
	}

	for name, typ := range exported {
		dm, ok := ref.Metrics[name]
		if !ok {
			t.Errorf("kmt exports %s (%s), which %s does not document", name, typ, metricsDoc)
			continue
		}
		if dm.Type != typ {
			t.Errorf("%s:%d: %s documented as %s, exported as %s", metricsDoc, dm.Line, name, dm.Type, typ)
		}
		var got []string
		for l := range labels[name] {
			got = append(got, l)
		}
		sort.Strings(got)
		if !slices.Equal(got, dm.Labels) {
			t.Errorf("%s:%d: %s documented with labels %v, exported with %v", metricsDoc, dm.Line, name, dm.Labels, got)
		}
	}
	for name, where := range used {
		if strings.HasPrefix(name, "kmt_") && exported[name] == "" {
			t.Errorf("%s is used by %s but the kmt run does not export it", name, where[0])
		}
	}
	for name := range ref.Metrics {
		if !strings.HasPrefix(name, "kmt_") || exported[name] != "" {
			continue
		}
		if _, explained := ref.Unused[name]; !explained {
			t.Errorf("%s is documented but the kmt run does not export it", name)
		}
	}
	t.Logf("%d kmt metric families exported, all documented", len(exported))
}

// lintMetrics runs `promtool check metrics` (promlint) on the exposition.
func lintMetrics(t *testing.T, promtool, metricsURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("fetch %s: %v", metricsURL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read %s: %v", metricsURL, err)
	}
	out, err := runTool(t, 30*time.Second, body, promtool, "check", "metrics")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("promtool check metrics found problems (%v):\n%s", err, out)
	}
}
