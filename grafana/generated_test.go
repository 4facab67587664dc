package grafana_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kmtproject/kmt/grafana"
	"github.com/kmtproject/kmt/grafana/dashboard"
)

// TestGeneratedFilesUpToDate fails when a committed generated file differs
// from what the Go code produces: edit the code, then go generate.
func TestGeneratedFilesUpToDate(t *testing.T) {
	files, err := grafana.GeneratedFiles()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.FromSlash(name))
		if err != nil {
			t.Errorf("%s: %v; run go generate ./grafana/...", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("grafana/%s is out of date with the code that generates it; run go generate ./grafana/...", name)
		}
	}
}

// TestCommittedDashboardsValidate validates every dashboard JSON under
// grafana/dashboards/ (the generated ones and any added by hand) against the
// schema version it must declare.
func TestCommittedDashboardsValidate(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(grafana.DashboardsDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no dashboards under %s", grafana.DashboardsDir)
	}
	uids := map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := dashboard.Validate(data); err != nil {
			t.Errorf("%s:\n%v", p, err)
		}
		var d struct {
			UID string `json:"uid"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", p, other, d.UID)
		}
		uids[d.UID] = p
	}
}

// TestProvisioning checks the plain-Grafana provisioning files: a Prometheus
// datasource, and a file provider loading the dashboards directory.
func TestProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name      string         `yaml:"name"`
			UID       string         `yaml:"uid"`
			Type      string         `yaml:"type"`
			Access    string         `yaml:"access"`
			URL       string         `yaml:"url"`
			IsDefault bool           `yaml:"isDefault"`
			Editable  bool           `yaml:"editable"`
			JSONData  map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	decodeStrict(t, filepath.Join("provisioning", "datasources", "kmt.yaml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources: apiVersion %d, %d datasources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	d := ds.Datasources[0]
	if d.Type != "prometheus" || d.Access != "proxy" || !d.IsDefault || d.UID == "" {
		t.Errorf("datasource %+v: want a default prometheus datasource with proxy access and a uid", d)
	}
	if !strings.Contains(d.URL, "${KMT_PROMETHEUS_URL}") {
		t.Errorf("datasource url %q: want it from ${KMT_PROMETHEUS_URL}", d.URL)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name                  string         `yaml:"name"`
			OrgID                 int            `yaml:"orgId"`
			Folder                string         `yaml:"folder"`
			Type                  string         `yaml:"type"`
			DisableDeletion       bool           `yaml:"disableDeletion"`
			AllowUIUpdates        bool           `yaml:"allowUiUpdates"`
			UpdateIntervalSeconds int            `yaml:"updateIntervalSeconds"`
			Options               map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	decodeStrict(t, filepath.Join("provisioning", "dashboards", "kmt.yaml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 {
		t.Fatalf("dashboard providers: apiVersion %d, %d providers; want 1 and 1", dp.APIVersion, len(dp.Providers))
	}
	if p := dp.Providers[0]; p.Type != "file" || p.Options["path"] != "${KMT_DASHBOARDS_DIR}" {
		t.Errorf("provider %+v: want type file loading ${KMT_DASHBOARDS_DIR}", p)
	}
}

func decodeStrict(t *testing.T, path string, out any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
