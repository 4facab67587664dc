package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/results"
)

func writeScenario(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestControllerInvalidScenarioExits2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ body, want string }{
		{"workload:\n  rate: 10\nsteps:\n  - at: 1s\n    action: explode\n", `line 4: steps[0].action: "explode" is not one of`},
		{"workload:\n  partitons: 3\n", "line 2: unknown field workload.partitons"},
	} {
		p := writeScenario(t, c.body)
		for _, sub := range [][]string{{"controller", "run", "--scenario", p}, {"controller", "validate", "--scenario", p}} {
			expectUsage(ctx, t, c.want, sub...)
		}
	}
	expectUsage(ctx, t, "--time-scale", "controller", "run", "--scenario", writeScenario(t, "steps: []\n"), "--time-scale", "-1")
	expectUsage(ctx, t, "workload.message_size: 40: the in-body encoding needs at least", "controller", "run", "--metrics-addr", "",
		"--scenario", writeScenario(t, "workload:\n  headers: false\n  message_size: 40\n  duration: 1s\n"))
	expectUsage(ctx, t, "line 2: workload.partitions: must be at least 1, got 0", "controller", "run", "--metrics-addr", "",
		"--scenario", writeScenario(t, "workload:\n  partitions: 0\n  duration: 1s\n"))
	expectUsage(ctx, t, "--rate", "local", "--rate", "-5")
	expectUsage(ctx, t, "no-such-flag", "local", "--no-such-flag")
}

// TestControllerRunLocal runs a short scenario with one fault through the
// CLI: exit code by verdict, results and summary files, Grafana annotations.
func TestControllerRunLocal(t *testing.T) {
	var mu sync.Mutex
	var annotations []map[string]any
	grafana := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/annotations" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var a map[string]any
		_ = json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		annotations = append(annotations, a)
		mu.Unlock()
		w.Write([]byte(`{"id":1}`))
	}))
	defer grafana.Close()
	dir := t.TempDir()
	p := writeScenario(t, `name: cli
workload: {rate: 300, duration: 6s, loss_grace: 3s, replicators: 1}
steps:
  - at: 2s
    action: network
    latency: 20ms
    for: 2s
    expect:
      - lost == 0
      - "recovers: throughput >= 50% within 3s"
`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err, out := runKmt(ctx, t, "controller", "run", "--scenario", p, "--metrics-addr", "127.0.0.1:0",
		"--results-json", filepath.Join(dir, "results.json"), "--summary-json", filepath.Join(dir, "summary.json"),
		"--grafana-url", grafana.URL, "--grafana-token", "tok", "--report", filepath.Join(dir, "report"))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	for _, want := range []string{"degrade WAN link: latency 20ms", "lost == 0", "verdict: PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	res, err := results.ReadResults(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Steps) != 1 || len(res.Steps[0].Assertions) != 2 || res.Steps[0].End.Sub(res.Steps[0].Start) < 2*time.Second {
		t.Errorf("steps %+v", res.Steps)
	}
	// The report shows the run: embedded charts, the step with its measured
	// values from results.json, and the fault window.
	html, err := os.ReadFile(filepath.Join(dir, "report", "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data:image/png;base64,", res.Steps[0].Description, res.Steps[0].Assertions[1].Measured, "PASS"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	for _, f := range []string{"report.md", "results.json"} {
		if _, err := os.Stat(filepath.Join(dir, "report", f)); err != nil {
			t.Errorf("report: %v", err)
		}
	}
	var sum map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"verdict", "duration_s", "produced", "acked", "produce_errors", "received", "lost", "duplicated", "reordered", "late", "foreign", "latency_ms", "throughput_msgs_per_s"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(annotations) != 1 || annotations[0]["timeEnd"] == nil || !strings.Contains(annotations[0]["text"].(string), "latency") {
		t.Errorf("annotations %v", annotations)
	}
}

func TestControllerFailVerdictExits1(t *testing.T) {
	p := writeScenario(t, "workload: {rate: 200, duration: 3s, loss_grace: 2s, replicators: 1}\nexpect: [lost == 0, duplicated > 0]\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err, out := runKmt(ctx, t, "controller", "run", "--scenario", p, "--metrics-addr", "")
	var e *exit.Error
	if !errors.As(err, &e) || e.Code != exit.Fail || !strings.Contains(out, "verdict: FAIL") {
		t.Fatalf("err %v, want exit 1 and a FAIL verdict\n%s", err, out)
	}
}

// TestControllerScenarioArgument checks that the scenario file may be the
// argument of controller run and validate, and that a missing, doubled or
// misplaced one is a one-line error with exit 2, not the whole help.
func TestControllerScenarioArgument(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := writeScenario(t, "name: arg\nworkload:\n  duration: 1s\n")
	err, out := runKmt(ctx, t, "controller", "validate", p)
	if err != nil || !strings.Contains(out, "arg: valid, 0 steps") {
		t.Errorf("controller validate FILE: %v, %q", err, out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"controller", "run"}, "controller run: no scenario file: kmt controller run SCENARIO.yaml"},
		{[]string{"controller", "validate"}, "controller validate: no scenario file"},
		{[]string{"controller", "validate", p, p}, "one scenario file, got 2 arguments"},
		{[]string{"controller", "validate", "--scenario", "other.yaml", p}, "give one"},
		{[]string{"controller", "run", p, "--time-scale", "0.5"}, `flags go before the scenario file: kmt controller run [flags] SCENARIO.yaml (got "--time-scale" after it)`},
		{[]string{"controller", "run", "--time-scale", "-1", p}, "--time-scale"},
	} {
		r := runKmtProcess(ctx, t, nil, tc.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code != exit.Usage || !strings.Contains(r.stderr, tc.want) || len(lines) != 1 {
			t.Errorf("kmt %v: exit %d, stderr:\n%s\nwant exit 2 and one line saying %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestHelpPutsNewcomerFlagsFirst checks the order of the flag groups in
// --help: the command's own flags, then workload, output, Kubernetes.
func TestHelpPutsNewcomerFlagsFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args  []string
		order []string
	}{
		{[]string{"controller", "run", "--help"}, []string{"--scenario", "--time-scale", "\n   output\n", "--report", "\n   Kubernetes target (--target kubernetes)\n", "--prometheus-url", "k8s-source cluster security"}},
		{[]string{"local", "--help"}, []string{"\n   workload\n", "--duration", "--rate", "\n   output\n", "--report"}},
	} {
		_, out := runKmt(ctx, t, tc.args...)
		at := 0
		for _, w := range tc.order {
			i := strings.Index(out[at:], w)
			if i < 0 {
				t.Errorf("kmt %v: %q missing or out of order in:\n%s", tc.args, w, out)
				break
			}
			at += i
		}
	}
}
