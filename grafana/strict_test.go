package grafana_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	sdkdashboard "github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/kmtproject/kmt/grafana"
)

var registerPlugins sync.Once

// decodeDashboardStrict decodes data with the Grafana Foundation SDK's
// strict decoder, which knows the schema of the dashboard, of every core
// panel's options and field config and of Prometheus queries: an unknown
// field, a field of the wrong type or a missing required field is an error.
func decodeDashboardStrict(data []byte) error {
	registerPlugins.Do(plugins.RegisterDefaultPlugins)
	var d sdkdashboard.Dashboard
	err := d.UnmarshalJSONStrict(data)
	// The SDK returns its error list even when it is empty.
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// TestDashboardsDecodeStrictly decodes every committed dashboard with the
// Grafana Foundation SDK's strict decoder, and checks that the decoder
// catches what it must on a copy of each: an unknown panel field, a panel
// option of the wrong type, a misspelt query field and an unknown
// field-config property.
func TestDashboardsDecodeStrictly(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(grafana.DashboardsDir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("dashboards: %v %v", paths, err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeDashboardStrict(data); err != nil {
			t.Errorf("%s does not decode strictly:\n%v", p, err)
		}
		for _, bad := range []struct {
			name, want string
			mutate     func(panel map[string]any)
		}{
			{"unknown panel field", "titel", func(p map[string]any) { p["titel"] = "x" }},
			{"mistyped grid position", "gridPos", func(p map[string]any) { p["gridPos"].(map[string]any)["h"] = "8" }},
			{"misspelt query field", "legendFromat", func(p map[string]any) {
				p["targets"].([]any)[0].(map[string]any)["legendFromat"] = "x"
			}},
			{"unknown custom field config", "lineWidht", func(p map[string]any) {
				p["fieldConfig"].(map[string]any)["defaults"].(map[string]any)["custom"].(map[string]any)["lineWidht"] = 2
			}},
			{"mistyped option", "legend", func(p map[string]any) { p["options"].(map[string]any)["legend"] = "bottom" }},
		} {
			var d map[string]any
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			var ts map[string]any
			for _, pp := range d["panels"].([]any) {
				if pp := pp.(map[string]any); pp["type"] == "timeseries" {
					ts = pp
					break
				}
			}
			if ts == nil {
				t.Fatalf("%s: no timeseries panel", p)
			}
			bad.mutate(ts)
			out, _ := json.Marshal(d)
			if err := decodeDashboardStrict(out); err == nil || !strings.Contains(err.Error(), bad.want) {
				t.Errorf("%s with %s: strict decode error %v, want one naming %q", p, bad.name, err, bad.want)
			}
		}
	}
}
