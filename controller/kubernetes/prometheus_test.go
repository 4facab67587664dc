package kubernetes

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kmtproject/kmt/controller"
)

// fleet serves the kmt fleet's metrics under their fixed names, with values
// the test sets, from a registry it can swap (a restarted pod).
type fleet struct {
	mu  sync.Mutex
	reg *prometheus.Registry
}

func (f *fleet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	reg := f.reg
	f.mu.Unlock()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// fleetMetrics is one incarnation of the fleet's metrics.
type fleetMetrics struct {
	reg      *prometheus.Registry
	sent     *prometheus.CounterVec
	acked    *prometheus.CounterVec
	rate     *prometheus.GaugeVec
	messages *prometheus.CounterVec
	lost     *prometheus.CounterVec
	foreign  *prometheus.CounterVec
	e2e      *prometheus.HistogramVec
	skew     *prometheus.CounterVec
	lag      *prometheus.GaugeVec
}

func newFleetMetrics() *fleetMetrics {
	reg := prometheus.NewRegistry()
	f := &fleetMetrics{
		reg:      reg,
		sent:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_producer_messages_sent_total", Help: "sent"}, []string{"topic"}),
		acked:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_producer_messages_acked_total", Help: "acked"}, []string{"topic"}),
		rate:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kmt_producer_target_rate", Help: "rate"}, []string{"topic"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_consumer_messages_total", Help: "messages"}, []string{"topic", "producer", "result"}),
		lost:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_consumer_lost_messages_total", Help: "lost"}, []string{"topic", "producer"}),
		foreign:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_consumer_foreign_total", Help: "foreign"}, []string{"topic", "reason"}),
		skew:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kmt_consumer_latency_out_of_range_total", Help: "skew"}, []string{"topic", "reason"}),
		lag:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kmt_consumer_lag_messages", Help: "lag"}, []string{"topic"}),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kmt_consumer_e2e_latency_seconds", Help: "e2e",
			Buckets: []float64{0.01, 0.05, 0.1}}, []string{"topic"}),
	}
	reg.MustRegister(f.sent, f.acked, f.rate, f.messages, f.lost, f.foreign, f.e2e, f.skew, f.lag)
	return f
}

// startPrometheus runs the Prometheus server from the machine (Debian's
// package) scraping target every second, and returns its URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus is not installed but CI=true: scripts/test-deps.sh (make test-deps) installs it")
		}
		t.Skip("SKIPPED: prometheus is not installed (make test-deps installs it)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: kmt\n  static_configs:\n  - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("prometheus did not become ready within 30s")
	return ""
}

// sampleUntil samples until ok accepts a sample or the deadline passes.
func sampleUntil(t *testing.T, tg *Target, what string, ok func(controller.Sample) bool) controller.Sample {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last controller.Sample
	for time.Now().Before(deadline) {
		s, err := tg.Sample(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return s
		}
		last = s
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: last sample %+v", what, last)
	return last
}

func TestSampleFromRealPrometheus(t *testing.T) {
	fm := newFleetMetrics()
	fl := &fleet{reg: fm.reg}
	srv := httptest.NewServer(fl)
	t.Cleanup(srv.Close)
	url := startPrometheus(t, strings.TrimPrefix(srv.URL, "http://"))

	fm.sent.WithLabelValues("kmt-0").Add(1000)
	fm.sent.WithLabelValues("kmt-1").Add(500)
	fm.acked.WithLabelValues("kmt-0").Add(990)
	fm.acked.WithLabelValues("kmt-1").Add(500)
	fm.rate.WithLabelValues("kmt-0").Set(100)
	fm.rate.WithLabelValues("kmt-1").Set(50)
	for _, r := range []struct {
		producer, result string
		n                float64
	}{{"p1", "in_order", 900}, {"p2", "in_order", 470}, {"p1", "duplicate", 7}, {"p1", "reordered", 3}, {"p2", "gap", 2}, {"p2", "late", 1}} {
		fm.messages.WithLabelValues("kmt-0", r.producer, r.result).Add(r.n)
	}
	fm.lost.WithLabelValues("kmt-0", "p2").Add(4)
	fm.foreign.WithLabelValues("kmt-0", "no_headers").Add(6)
	fm.skew.WithLabelValues("kmt-0", "future").Add(8)
	fm.skew.WithLabelValues("kmt-1", "future").Add(1)
	fm.skew.WithLabelValues("kmt-0", "over_1h").Add(2)
	fm.lag.WithLabelValues("kmt-0").Set(30)
	fm.lag.WithLabelValues("kmt-1").Set(12)

	cfg := testConfig()
	cfg.PrometheusURL = url
	cfg.LatencyWindow = 20 * time.Second
	tg, err := New(newSimCluster(t, 0).cs, newSimCluster(t, 0).cs, newChaosMesh(t, false, 0).dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Latencies all in the (10ms, 50ms] bucket, observed across scrapes
	// so rate() sees them: p99 interpolates to 10+40*0.99 = 49.6ms, p50 to
	// 30ms.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				fm.e2e.WithLabelValues("kmt-0").Observe(0.04)
			}
		}
	}()
	s := sampleUntil(t, tg, "counters and latency", func(s controller.Sample) bool { return s.Produced > 0 && s.P99 > 0 })
	close(stop)
	wg.Wait()
	want := controller.Sample{Produced: 1500, Acked: 1490, Received: 900 + 470 + 3 + 2 + 1, Duplicated: 7, Reordered: 3, Late: 1, Lost: 4, Foreign: 6, TargetRate: 150,
		LatencyFuture: 9, LatencyOverCap: 2, Lag: 42}
	got := s
	got.Time, got.P99, got.P50 = time.Time{}, 0, 0
	if got != want {
		t.Fatalf("sample:\n got %+v\nwant %+v", got, want)
	}
	if d := math.Abs(s.P99.Seconds() - 0.0496); d > 1e-6 {
		t.Errorf("p99 = %v, want 49.6ms", s.P99)
	}
	if d := math.Abs(s.P50.Seconds() - 0.030); d > 1e-6 {
		t.Errorf("p50 = %v, want 30ms", s.P50)
	}

	// The producer of kmt-0 restarts: its counter starts again at 100
	// under the same labels. The cumulative count carries the 1000 it had.
	fm2 := newFleetMetrics()
	fm2.sent.WithLabelValues("kmt-0").Add(100)
	fm2.sent.WithLabelValues("kmt-1").Add(600)
	fl.mu.Lock()
	fl.reg = fm2.reg
	fl.mu.Unlock()
	s = sampleUntil(t, tg, "counter reset carried", func(s controller.Sample) bool { return s.Produced != 1500 })
	if s.Produced != 1000+100+600 {
		t.Fatalf("produced after restart = %d, want 1700", s.Produced)
	}
	// Series that vanished keep what they counted.
	if s.Acked != 1490 || s.Received != 1376 {
		t.Fatalf("acked/received after restart = %d/%d, want 1490/1376", s.Acked, s.Received)
	}
	if s.TargetRate != 0 {
		t.Fatalf("target rate with no producer gauge = %v, want 0", s.TargetRate)
	}
}

func TestSampleErrors(t *testing.T) {
	cs := newSimCluster(t, 0).cs
	dyn := newChaosMesh(t, false, 0).dyn
	tg, err := New(cs, cs, dyn, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Sample(context.Background()); err == nil || !strings.Contains(err.Error(), "--prometheus-url") {
		t.Fatalf("no URL: %v", err)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"status":"error","errorType":"bad_data","error":"parse error at char 3"}`, "prometheus bad_data: parse error at char 3"},
		{`<html>bad gateway</html>`, "answer is not Prometheus JSON"},
		{`{"status":"success","data":{"resultType":"matrix","result":[]}}`, `result type "matrix", want vector`},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(tc.body)) }))
		cfg := testConfig()
		cfg.PrometheusURL = srv.URL
		tg, err := New(cs, cs, dyn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tg.Sample(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("body %s: error %v, want %q", tc.body, err, tc.want)
		}
		srv.Close()
	}
}

func TestCounterAccumulation(t *testing.T) {
	p := newPromState()
	steps := []struct {
		values map[string]float64
		want   float64
	}{
		{map[string]float64{"a": 10, "b": 5}, 15},
		{map[string]float64{"a": 12, "b": 5}, 17},
		{map[string]float64{"a": 3, "b": 6}, 12 + 3 + 6}, // a reset
		{map[string]float64{"b": 7}, 12 + 3 + 7},         // a vanished
		{map[string]float64{"b": 7, "c": 1}, 12 + 3 + 7 + 1},
	}
	for i, s := range steps {
		if got := p.observe("q", s.values); got != s.want {
			t.Fatalf("step %d: total %v, want %v", i, got, s.want)
		}
	}
}
