package dashboard

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func replicationJSON(t *testing.T) []byte {
	t.Helper()
	data, err := Replication().JSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReplicationValidates(t *testing.T) {
	if err := Validate(replicationJSON(t)); err != nil {
		t.Fatalf("Validate:\n%v", err)
	}
}

// mutate decodes the replication dashboard into generic JSON, applies f and
// re-encodes it.
func mutate(t *testing.T, f func(d map[string]any)) []byte {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(replicationJSON(t), &d); err != nil {
		t.Fatal(err)
	}
	f(d)
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func panels(d map[string]any) []any { return d["panels"].([]any) }

// firstOfType returns the first top-level panel of type typ.
func firstOfType(d map[string]any, typ string) map[string]any {
	for _, p := range panels(d) {
		if p := p.(map[string]any); p["type"] == typ {
			return p
		}
	}
	panic("no panel of type " + typ)
}

func firstTarget(p map[string]any) map[string]any {
	return p["targets"].([]any)[0].(map[string]any)
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name string
		f    func(d map[string]any)
		want string
	}{
		{"wrong schema version", func(d map[string]any) { d["schemaVersion"] = 27 }, "schemaVersion: 27, want 39"},
		{"missing schema version", func(d map[string]any) { delete(d, "schemaVersion") }, "schemaVersion: missing"},
		{"bad uid", func(d map[string]any) { d["uid"] = "has space" }, "uid:"},
		{"empty title", func(d map[string]any) { d["title"] = "" }, "title: empty"},
		{"duplicate panel id", func(d map[string]any) {
			panels(d)[2].(map[string]any)["id"] = panels(d)[1].(map[string]any)["id"]
		}, "id already used"},
		{"unknown panel type", func(d map[string]any) { firstOfType(d, "timeseries")["type"] = "graph-old" }, `unknown panel type "graph-old"`},
		{"hard-coded datasource uid", func(d map[string]any) {
			firstOfType(d, "stat")["datasource"] = map[string]any{"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}
		}, "datasource must be"},
		{"target with another datasource", func(d map[string]any) {
			firstTarget(firstOfType(d, "timeseries"))["datasource"] = map[string]any{"type": "loki", "uid": "${datasource}"}
		}, "datasource must be"},
		{"panel wider than the grid", func(d map[string]any) {
			firstOfType(d, "stat")["gridPos"].(map[string]any)["x"] = 22
		}, "outside the 24-column grid"},
		{"overlapping panels", func(d map[string]any) {
			p := firstOfType(d, "heatmap")
			p["gridPos"].(map[string]any)["x"] = 0
		}, "overlaps"},
		{"row not full width", func(d map[string]any) {
			firstOfType(d, "row")["gridPos"].(map[string]any)["w"] = 12
		}, "want full width"},
		{"undefined variable", func(d map[string]any) {
			firstTarget(firstOfType(d, "timeseries"))["expr"] = `up{cluster=~"$cluster"}`
		}, "undefined variable $cluster"},
		{"empty expr", func(d map[string]any) { firstTarget(firstOfType(d, "stat"))["expr"] = "" }, "empty expr"},
		{"duplicate refId", func(d map[string]any) {
			ts := firstOfType(d, "timeseries")["targets"].([]any)
			ts[1].(map[string]any)["refId"] = ts[0].(map[string]any)["refId"]
		}, "empty or duplicate refId"},
		{"heatmap not in heatmap format", func(d map[string]any) {
			firstTarget(firstOfType(d, "heatmap"))["format"] = "time_series"
		}, `heatmap query format "time_series"`},
		{"thresholds out of order", func(d map[string]any) {
			steps := firstOfType(d, "stat")["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["thresholds"].(map[string]any)["steps"].([]any)
			firstOfType(d, "stat")["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["thresholds"].(map[string]any)["steps"] =
				append(steps, map[string]any{"color": "blue", "value": 0})
		}, "not above the previous"},
		{"no datasource variable", func(d map[string]any) {
			list := d["templating"].(map[string]any)["list"].([]any)
			d["templating"].(map[string]any)["list"] = list[1:]
		}, "no datasource variable"},
		{"variable used before it is defined", func(d map[string]any) {
			list := d["templating"].(map[string]any)["list"].([]any)
			list[2], list[3] = list[3], list[2] // producer (uses $topic) before topic
		}, "undefined variable $topic"},
		{"annotation on a fixed datasource", func(d map[string]any) {
			list := d["annotations"].(map[string]any)["list"].([]any)
			list[2].(map[string]any)["datasource"] = map[string]any{"type": "prometheus", "uid": "abc"}
		}, "neither Grafana's annotations"},
		{"not JSON", nil, "dashboard JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte("{not json")
			if tc.f != nil {
				data = mutate(t, tc.f)
			}
			err := Validate(data)
			if err == nil {
				t.Fatalf("Validate accepted it, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v\nwant an error containing %q", err, tc.want)
			}
		})
	}
}

func TestMetricNames(t *testing.T) {
	cases := map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(kmt_consumer_e2e_latency_seconds_bucket{topic=~"$topic"}[5m])))`: {"kmt_consumer_e2e_latency_seconds"},
		`sum(kmt_producer_up) / sum(kmt_consumer_up{region=~"$region"})`:                                             {"kmt_consumer_up", "kmt_producer_up"},
		`kafka_consumergroup_lag_sum + kafka_consumergroup_lag`:                                                      {"kafka_consumergroup_lag", "kafka_consumergroup_lag_sum"},
		`rate(kmt_producer_ack_latency_seconds_count[1m]) + kmt_producer_ack_latency_seconds_sum`:                    {"kmt_producer_ack_latency_seconds"},
		`up == 0`: {},
	}
	for expr, want := range cases {
		if got := MetricNames(expr); !reflect.DeepEqual(got, want) {
			t.Errorf("MetricNames(%s) = %v, want %v", expr, got, want)
		}
	}
}

// TestReplicationContent checks the dashboard shows what the replication
// test promises: variables, fault annotations, and the panels by metric.
func TestReplicationContent(t *testing.T) {
	d := Replication()
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, want := range []string{"datasource", "region", "topic", "producer"} {
		if !slices.Contains(vars, want) {
			t.Errorf("no %q variable (have %v)", want, vars)
		}
	}

	var promAnn, tagAnn bool
	for _, a := range d.Annotations.List {
		if a.Datasource == Prometheus && strings.Contains(a.Expr, "kmt_controller_fault_active") && strings.HasSuffix(a.Expr, "== 1") && a.Enable {
			promAnn = true
		}
		if a.Type == "tags" && a.Target != nil && slices.Contains(a.Target.Tags, AnnotationTag) && a.Enable {
			tagAnn = true
		}
	}
	if !promAnn || !tagAnn {
		t.Errorf("fault annotations: Prometheus on kmt_controller_fault_active == 1: %v; Grafana annotations tagged %q: %v", promAnn, AnnotationTag, tagAnn)
	}

	used := map[string]bool{}
	for _, q := range Queries(d) {
		for _, m := range MetricNames(q.Expr) {
			used[m] = true
		}
	}
	for _, want := range []string{
		"kmt_producer_messages_sent_total", "kmt_producer_messages_acked_total", "kmt_producer_errors_total",
		"kmt_producer_target_rate", "kmt_producer_ack_latency_seconds", "kmt_producer_behind_messages", "kmt_producer_up",
		"kmt_consumer_messages_total", "kmt_consumer_foreign_total", "kmt_consumer_lost_messages_total",
		"kmt_consumer_e2e_latency_seconds", "kmt_consumer_streams", "kmt_consumer_in_flight_messages",
		"kmt_consumer_lag_messages", "kmt_consumer_up",
		"kmt_mirror_messages_total", "kmt_mirror_errors_total", "kmt_mirror_lag_messages", "kmt_mirror_workers",
		"kmt_controller_fault_active", "kmt_controller_steps_total",
		"kafka_brokers", "kafka_topic_partition_under_replicated_partition", "kafka_consumergroup_lag",
	} {
		if !used[want] {
			t.Errorf("no panel uses %s", want)
		}
	}

	// Every outcome that must be red when non-zero has a panel that is.
	redTitles := map[string]bool{}
	for _, p := range d.Panels {
		if p.FieldConfig == nil {
			continue
		}
		for _, s := range p.FieldConfig.Defaults.Thresholds.Steps {
			if s.Color == "red" && s.Value != nil && *s.Value <= nonZero {
				redTitles[p.Title] = true
			}
		}
	}
	for _, want := range []string{"Lost", "Duplicated", "Reordered", "Late", "Foreign", "Lost /s", "Duplicated /s", "Reordered /s", "Late /s", "Foreign /s", "Produce errors /s"} {
		if !redTitles[want] {
			t.Errorf("panel %q is not red when non-zero", want)
		}
	}
}

func TestQueriesCoverEveryTarget(t *testing.T) {
	d := Replication()
	n := 0
	for _, p := range d.Panels {
		n += len(p.Targets)
	}
	qs := Queries(d)
	if len(qs) != n || n == 0 {
		t.Fatalf("Queries returned %d, panels hold %d targets", len(qs), n)
	}
	for _, q := range qs {
		if q.Expr == "" || q.RefID == "" || q.PanelTitle == "" {
			t.Errorf("incomplete query %+v", q)
		}
	}
}
