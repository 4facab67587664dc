package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// TestLocalCommand runs `kmt local`, the command `make run` runs, as a
// separate process: it prints both clusters' broker addresses, which answer
// while it runs (the source holds the producers' topics, the destination
// the mirror's copies), then the summary table and a PASS verdict, exits 0
// and writes the summary JSON with every field other tooling reads. Every
// message produced is acknowledged and received exactly once. The producers
// run until the controller ends the step, so the number produced is
// rate × duration × topics give or take the last few slots (the stop comes
// a few milliseconds after the 5 s; CI once saw 2502 for 2500): the test
// allows a quarter of a second's worth either way.
func TestLocalCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const rate, seconds, topics = 250, 5, 2
	summary := filepath.Join(t.TempDir(), "summary.json")
	cmd := exec.CommandContext(ctx, os.Args[0], "local", "--duration", "5s", "--rate", "250", "--topics", "2",
		"--loss-grace", "2s", "--summary-json", summary, "--metrics-addr", "")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := map[string][]string{}
	lines := bufio.NewScanner(stderr)
	for len(addrs) < 2 && lines.Scan() {
		for _, side := range []string{"source", "destination"} {
			if v, ok := strings.CutPrefix(lines.Text(), side+" brokers:"); ok {
				addrs[side] = strings.Split(strings.TrimSpace(v), ",")
			}
		}
	}
	var rest bytes.Buffer
	drained := make(chan struct{})
	go func() { // keep reading so kmt never blocks on a full pipe
		defer close(drained)
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
	}()
	if len(addrs["source"]) != 3 || len(addrs["destination"]) != 3 {
		t.Fatalf("broker addresses printed: %v", addrs)
	}
	for _, topic := range []string{"kmt-0", "kmt-1"} {
		for _, side := range []string{"source", "destination"} {
			for kafkatest.Records(t, addrs[side], topic) == 0 {
				if ctx.Err() != nil {
					t.Fatalf("%s topic %s stayed empty at %v", side, topic, addrs[side])
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	err = cmd.Wait()
	<-drained
	if err != nil {
		t.Fatalf("kmt local: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), rest.String())
	}
	for _, want := range []string{"received (unique)", "latency p99 / p99.9", "verdict: PASS"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	var sum struct {
		Verdict       string             `json:"verdict"`
		Produced      int64              `json:"produced"`
		Acked         int64              `json:"acked"`
		ProduceErrors int64              `json:"produce_errors"`
		Received      int64              `json:"received"`
		Lost          int64              `json:"lost"`
		Duplicated    int64              `json:"duplicated"`
		Reordered     int64              `json:"reordered"`
		Late          int64              `json:"late"`
		Foreign       int64              `json:"foreign"`
		Latency       map[string]float64 `json:"latency_ms"`
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"verdict", "duration_s", "produced", "acked", "produce_errors", "received", "lost", "duplicated", "reordered", "late", "foreign", "latency_ms", "throughput_msgs_per_s"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	const want, slack = rate * seconds * topics, rate * topics / 4
	if sum.Produced < want-slack || sum.Produced > want+slack {
		t.Errorf("produced %d; want %d ± %d (rate × duration × topics)", sum.Produced, want, slack)
	}
	if sum.Verdict != "PASS" || sum.Acked != sum.Produced || sum.Received != sum.Produced || sum.ProduceErrors != 0 ||
		sum.Lost != 0 || sum.Duplicated != 0 || sum.Reordered != 0 || sum.Late != 0 || sum.Foreign != 0 {
		t.Errorf("summary %+v; want PASS with every produced message acked and received once, no errors", sum)
	}
	for _, p := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := sum.Latency[p]; !ok {
			t.Errorf("latency_ms lacks %q: %v", p, sum.Latency)
		}
	}
	if sum.Latency["p50"] > sum.Latency["p99"] || sum.Latency["p99"] > sum.Latency["max"] {
		t.Errorf("latency percentiles out of order: %v", sum.Latency)
	}
}

// TestLocalZeroAndTooSmallRefusedBeforeStart checks that a zero the user
// gives kmt local is refused naming the flag (never swapped for the
// default), and that a message size too small for the in-body encoding is
// refused the same way, before either cluster starts (no broker addresses
// printed). --duration 1s keeps a wrongly accepted run short.
func TestLocalZeroAndTooSmallRefusedBeforeStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--partitions", "0"}, "--partitions: must be at least 1, got 0"},
		{[]string{"--message-size", "0"}, "--message-size: must be at least 1, got 0"},
		{[]string{"--brokers", "0"}, "--brokers: must be at least 1, got 0"},
		{[]string{"--topics", "0"}, "--topics: must be at least 1, got 0"},
		{[]string{"--producers", "0"}, "--producers: must be at least 1, got 0"},
		{[]string{"--consumers", "0"}, "--consumers: must be at least 1, got 0"},
		{[]string{"--replicators", "0"}, "--replicators: must be at least 1, got 0"},
		{[]string{"--loss-grace", "0s"}, "--loss-grace: must be positive"},
		{[]string{"--rate", "-1"}, "--rate: must be a finite number >= 0 (0 = unlimited)"},
		{[]string{"--headers=false", "--message-size", "40"}, "--message-size: 40: the in-body encoding needs at least"},
	} {
		app := newApp()
		var stderr bytes.Buffer
		app.Writer, app.ErrWriter = &bytes.Buffer{}, &stderr
		args := append([]string{"kmt", "local", "--duration", "1s", "--metrics-addr", ""}, tc.args...)
		err := app.RunContext(ctx, args)
		if exit.Code(err) != exit.Usage || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("kmt local %v: exit %d, error %v; want exit 2 saying %q", tc.args, exit.Code(err), err, tc.want)
		}
		if strings.Contains(stderr.String(), "brokers:") {
			t.Errorf("kmt local %v started the clusters before refusing:\n%s", tc.args, stderr.String())
		}
	}
}

// TestTwoLocalRunsShareTheDefaultMetricsPort holds the default metrics
// address 127.0.0.1:9102 (as a first kmt local would) and runs kmt local
// without --metrics-addr: it must run, serve its metrics on another port
// and print that URL. The same address given explicitly is refused (exit 2).
func TestTwoLocalRunsShareTheDefaultMetricsPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:9102")
	if err != nil {
		t.Logf("127.0.0.1:9102 already taken (%v): that is the case under test", err)
	} else {
		t.Cleanup(func() { ln.Close() })
	}
	r := runKmtProcess(ctx, t, nil, "local", "--duration", "1s", "--rate", "50", "--loss-grace", "2s", "--brokers", "1", "--consumers", "1", "--replicators", "1")
	if r.code != 0 {
		t.Fatalf("second kmt local: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`metrics: +http://127\.0\.0\.1:(\d+)/metrics \(127\.0\.0\.1:9102 is in use`).FindStringSubmatch(r.stderr)
	if m == nil || m[1] == "9102" {
		t.Fatalf("no fallback metrics URL printed:\n%s", r.stderr)
	}
	r = runKmtProcess(ctx, t, nil, "local", "--duration", "1s", "--metrics-addr", "127.0.0.1:9102")
	if r.code != 2 || !strings.Contains(r.stderr, "--metrics-addr") {
		t.Errorf("explicit taken --metrics-addr: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}
