package grafana_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kmtproject/kmt/grafana/alerts"
)

var (
	rulesPath = filepath.Join("alerts", alerts.RulesFileName)
	testsPath = filepath.Join("alerts", alerts.TestFileName)
)

// TestPromtoolCheckRules runs `promtool check rules` on the plain rules file
// and on the PrometheusRule's groups.
func TestPromtoolCheckRules(t *testing.T) {
	promtool := needTool(t, "promtool")
	out, err := runTool(t, 30*time.Second, nil, promtool, "check", "rules", rulesPath)
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesPath, err, out)
	}
	groups := prometheusRuleGroups(t)
	data, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "from-prometheusrule.yml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, 30*time.Second, nil, promtool, "check", "rules", p); err != nil {
		t.Fatalf("promtool check rules on the PrometheusRule's groups: %v\n%s", err, out)
	}
}

// TestPromtoolTestRules runs the rules' unit tests: each alert fires on its
// bad series and stays quiet on a clean run.
func TestPromtoolTestRules(t *testing.T) {
	promtool := needTool(t, "promtool")
	out, err := runTool(t, 60*time.Second, nil, promtool, "test", "rules", testsPath)
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", testsPath, err, out)
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// TestEveryAlertIsUnitTested checks the unit-test file covers every alert
// both ways: at least one evaluation expecting it to fire, and one expecting
// silence.
func TestEveryAlertIsUnitTested(t *testing.T) {
	rules, err := alerts.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(testsPath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name      string `yaml:"name"`
			AlertTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("parse %s: %v", testsPath, err)
	}
	if !reflect.DeepEqual(f.RuleFiles, []string{alerts.RulesFileName}) {
		t.Errorf("%s: rule_files = %v, want [%s]", testsPath, f.RuleFiles, alerts.RulesFileName)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	names := map[string]bool{}
	for _, r := range rules {
		names[r.Alert] = true
		if !fires[r.Alert] {
			t.Errorf("alert %s: no unit test expects it to fire", r.Alert)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s: no unit test expects it to stay quiet", r.Alert)
		}
	}
	for n := range fires {
		if !names[n] {
			t.Errorf("unit tests name alert %s, which the rules file does not define", n)
		}
	}
	// The brief's required alerts exist.
	for _, want := range []string{"KmtMessagesLost", "KmtMessagesDuplicated", "KmtE2ELatencyHigh", "KmtProducerFallingBehind", "KmtConsumersDown"} {
		if !names[want] {
			t.Errorf("required alert %s missing from %s", want, rulesPath)
		}
	}
}

// TestRulesHaveSeverityAndText checks every alert carries a severity and a
// summary and description for whoever receives it.
func TestRulesHaveSeverityAndText(t *testing.T) {
	rules, err := alerts.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		switch r.Labels["severity"] {
		case "critical", "warning":
		default:
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: needs a summary and a description annotation", r.Alert)
		}
	}
}

// prometheusRuleGroups parses the committed PrometheusRule manifest and
// returns its spec.groups.
func prometheusRuleGroups(t *testing.T) []alerts.Group {
	t.Helper()
	p := filepath.Join("alerts", alerts.PrometheusRuleFileName)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Groups []alerts.Group `yaml:"groups"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("parse %s: %v", p, err)
	}
	if m.APIVersion != "monitoring.coreos.com/v1" || m.Kind != "PrometheusRule" || m.Metadata.Name == "" {
		t.Fatalf("%s: apiVersion %q kind %q name %q, want a named monitoring.coreos.com/v1 PrometheusRule", p, m.APIVersion, m.Kind, m.Metadata.Name)
	}
	return m.Spec.Groups
}

// TestPrometheusRuleMatchesRulesFile checks the manifest carries exactly the
// rules file's groups.
func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	want, err := alerts.Groups()
	if err != nil {
		t.Fatal(err)
	}
	if got := prometheusRuleGroups(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("PrometheusRule spec.groups differ from %s; run go generate ./grafana/...\n got: %+v\nwant: %+v", rulesPath, got, want)
	}
}
