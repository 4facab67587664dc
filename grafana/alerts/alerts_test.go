package alerts

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestGroupsParse(t *testing.T) {
	rules, err := Alerts()
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("no alerts in the rules file")
	}
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Name()] {
			t.Errorf("alert %s defined twice", r.Name())
		}
		seen[r.Name()] = true
		if strings.TrimSpace(r.Expr) == "" {
			t.Errorf("alert %s: empty expr", r.Name())
		}
	}
}

func TestParseGroupsRejects(t *testing.T) {
	for name, text := range map[string]string{
		"unknown field": "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        severity: page\n",
		"no groups":     "groups: []\n",
		"not yaml":      "groups: [\n",
	} {
		if _, err := ParseGroups([]byte(text)); err == nil {
			t.Errorf("%s: ParseGroups accepted %q", name, text)
		}
	}
}

func TestPrometheusRuleCarriesTheRulesFile(t *testing.T) {
	var m struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []Group `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(PrometheusRule(), &m); err != nil {
		t.Fatalf("PrometheusRule is not YAML: %v", err)
	}
	want, err := Groups()
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != "PrometheusRule" || len(m.Spec.Groups) != len(want) || len(m.Spec.Groups[0].Rules) != len(want[0].Rules) {
		t.Fatalf("PrometheusRule kind %q with %d groups, want PrometheusRule with %d", m.Kind, len(m.Spec.Groups), len(want))
	}
}
