package dashboard

import (
	"regexp"
	"strings"
	"testing"
)

// TestRatePanelsUseMps checks that every time-series panel drawing a
// per-second message rate uses Grafana's built-in "mps" unit (scaled:
// 2.5 Mmps), never a custom suffix (drawn unscaled with a double space).
func TestRatePanelsUseMps(t *testing.T) {
	msgRate := regexp.MustCompile(`rate\(kmt_(producer_messages_(sent|acked)|consumer_messages|consumer_lost_messages|consumer_foreign|mirror_messages)_total`)
	var walk func([]Panel)
	checked := 0
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Panels != nil {
				walk(*p.Panels)
			}
			if p.FieldConfig == nil {
				continue
			}
			unit := p.FieldConfig.Defaults.Unit
			if strings.HasPrefix(unit, "suffix:") {
				t.Errorf("panel %q: unit %q; use a built-in unit", p.Title, unit)
			}
			if p.Type != "timeseries" {
				continue
			}
			for _, q := range p.Targets {
				if msgRate.MatchString(q.Expr) && unit != "mps" {
					t.Errorf("panel %q draws a message rate with unit %q, want mps", p.Title, unit)
				}
				if msgRate.MatchString(q.Expr) {
					checked++
				}
			}
		}
	}
	walk(Replication().Panels)
	if checked < 8 {
		t.Errorf("only %d rate queries found", checked)
	}
}

// TestLegendsHaveNoStraySpaces renders every legend as Grafana would
// (a missing label renders as nothing) for series without a region label
// (kmt local) and with one (Kubernetes), and checks there is no leading,
// trailing or double space.
func TestLegendsHaveNoStraySpaces(t *testing.T) {
	label := regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)
	render := func(legend string, labels map[string]string) string {
		return label.ReplaceAllStringFunc(legend, func(m string) string {
			return labels[label.FindStringSubmatch(m)[1]]
		})
	}
	base := map[string]string{"topic": "kmt-0", "producer": "p", "le": "0.1", "action": "network", "target": "local",
		"result": "pass", "reason": "bad_header", "consumergroup": "g"}
	withRegion := map[string]string{"region": "source", "in_region": " source"}
	for k, v := range base {
		withRegion[k] = v
	}
	for _, q := range Queries(Replication()) {
		var legend string
		for _, p := range allPanels(Replication().Panels) {
			for _, tg := range p.Targets {
				if p.ID == q.PanelID && tg.RefID == q.RefID {
					legend = tg.LegendFormat
				}
			}
		}
		if strings.Contains(legend, "{{region}}") {
			t.Errorf("%s: legend %q uses {{region}}; end it with \" {{region}}\" so query() adds {{in_region}}", q, legend)
		}
		if strings.Contains(legend, "{{in_region}}") && !strings.Contains(q.Expr, `"in_region", " $1", "region", "(.+)"`) {
			t.Errorf("%s: legend %q uses in_region, which the query does not add", q, legend)
		}
		for _, labels := range []map[string]string{base, withRegion} {
			got := render(legend, labels)
			if got != strings.TrimSpace(got) || strings.Contains(got, "  ") {
				t.Errorf("%s: legend %q renders as %q", q, legend, got)
			}
		}
	}
	if got := render("sent {{topic}}{{in_region}}", withRegion); got != "sent kmt-0 source" {
		t.Errorf("with a region: %q", got)
	}
}

func allPanels(ps []Panel) []Panel {
	var out []Panel
	for _, p := range ps {
		out = append(out, p)
		if p.Panels != nil {
			out = append(out, allPanels(*p.Panels)...)
		}
	}
	return out
}

// TestHeatmapCountsEachMessageOnce checks the heatmap's query is a
// per-second rate: increase() over $__rate_interval (a window wider than
// the step) would count each message in several cells.
func TestHeatmapCountsEachMessageOnce(t *testing.T) {
	for _, p := range allPanels(Replication().Panels) {
		if p.Type != "heatmap" {
			continue
		}
		for _, q := range p.Targets {
			if strings.Contains(q.Expr, "increase(") || !strings.Contains(q.Expr, "rate(") {
				t.Errorf("heatmap %q: %s; want a per-second rate", p.Title, q.Expr)
			}
		}
	}
}
