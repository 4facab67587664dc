package grafana_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/grafana/dashboard"
)

// rangeSeries is one series of a range query's result.
type rangeSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// queryRange runs a Prometheus range query as Grafana does for a panel.
func (p *promServer) queryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]rangeSeries, error) {
	var data struct {
		Result []rangeSeries `json:"result"`
	}
	params := url.Values{"query": {expr}, "start": {strconv.FormatInt(start.Unix(), 10)},
		"end": {strconv.FormatInt(end.Unix(), 10)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := p.get(ctx, "/api/v1/query_range", params, &data); err != nil {
		return nil, err
	}
	return data.Result, nil
}

// TestHeatmapCellsAddUpToMessagesReceived runs a known kmt local workload
// scraped every second by a real Prometheus, then evaluates the dashboard's
// latency heatmap query the way Grafana does for several time ranges (step
// = $__interval, $__rate_interval = max(step + scrape interval, 4 × scrape
// interval)), turns the cumulative buckets into cells as Grafana's heatmap
// does, and checks that the cells, each times the step, add up to the
// messages received: the last scraped count of the consumers' histogram,
// itself checked against the run's summary. Counting a message in several
// cells (increase() over a window wider than the step) fails it.
func TestHeatmapCellsAddUpToMessagesReceived(t *testing.T) {
	t.Parallel()
	promBin := needTool(t, "prometheus")
	bin := buildKmt(t)
	rules, err := filepath.Abs(rulesPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	prom := startPrometheus(t, promBin, addr, rules)
	// Prometheus applies its targets a few seconds after it starts: wait
	// until it is scraping (and failing on) kmt's address, so the first
	// scrape comes within a second of kmt's metrics appearing.
	waitCtx, waitCancel := context.WithTimeout(ctx, time.Minute)
	err = waitFor(waitCtx, 250*time.Millisecond, func() error {
		_, err := prom.queryValue(ctx, `up{job="kmt"}`)
		return err
	})
	waitCancel()
	if err != nil {
		t.Fatalf("prometheus never scraped: %v", err)
	}
	const rate = 250
	summary := filepath.Join(t.TempDir(), "summary.json")
	started := time.Now()
	kmt := startProcess(t, bin, "--log-level", "warn", "local", "--duration", "15s", "--rate", strconv.Itoa(rate),
		"--loss-grace", "3s", "--brokers", "1", "--replicators", "1", "--consumers", "1",
		"--metrics-addr", addr, "--summary-json", summary)
	select {
	case <-kmt.done:
	case <-ctx.Done():
		t.Fatalf("kmt local did not end: %v", ctx.Err())
	}
	if kmt.err != nil {
		t.Fatalf("kmt local: %v\n%s", kmt.err, tail(kmt.out.String(), 3000))
	}
	ended := time.Now()
	var s struct {
		Received uint64 `json:"received"`
		Lost     uint64 `json:"lost"`
	}
	data, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil || s.Received == 0 || s.Lost != 0 {
		t.Fatalf("summary %s: %+v, %v", data, s, err)
	}
	time.Sleep(3 * time.Second) // a failed scrape marks the series stale
	scraped, err := prom.queryValue(ctx, `sum(max_over_time(kmt_consumer_e2e_latency_seconds_count[10m]))`)
	if err != nil {
		t.Fatal(err)
	}
	// kmt may exit up to a scrape interval after its last messages arrived.
	if scraped > float64(s.Received) || float64(s.Received)-scraped > 2*rate {
		t.Fatalf("Prometheus scraped %v messages received, the summary says %d", scraped, s.Received)
	}
	t.Logf("%d messages received (summary), %v in the last scrape", s.Received, scraped)

	var expr string
	for _, q := range dashboard.Queries(dashboard.Replication()) {
		if q.PanelTitle == "End-to-end latency heatmap" {
			expr = q.Expr
		}
	}
	if expr == "" {
		t.Fatal("no heatmap panel")
	}
	// Prometheus's rate() extrapolates at the edges of the traffic (its
	// first and last window), which is worth up to about one scrape
	// interval of messages; counting each message in several cells is worth
	// (rate interval / step - 1) times all of them: 4x, 2x and 1.2x here.
	tolerance := float64(rate) // one second (one scrape interval) of messages
	for _, step := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second} {
		rateInterval := max(step+time.Second, 4*time.Second)
		e := strings.NewReplacer("$__rate_interval", fmt.Sprintf("%ds", int(rateInterval.Seconds())),
			"$__interval", fmt.Sprintf("%ds", int(step.Seconds())), "$region", ".*", "$topic", ".*").Replace(expr)
		series, err := prom.queryRange(ctx, e, started.Add(-30*time.Second), ended.Add(rateInterval+2*step), step)
		if err != nil {
			t.Fatalf("%s: %v", e, err)
		}
		total := heatmapTotal(t, series) * step.Seconds()
		if math.Abs(total-scraped) > tolerance {
			t.Errorf("step %s, rate interval %s: the heatmap's cells add up to %.0f messages, %.0f were received (±%.0f allowed)", step, rateInterval, total, scraped, tolerance)
		} else {
			t.Logf("step %s, rate interval %s: cells add up to %.0f messages of %.0f", step, rateInterval, total, scraped)
		}
	}

	// The region legend suffix the dashboard's queries add (checked here
	// against the real Prometheus): " source" with a region, nothing without.
	for _, c := range []struct{ expr, want string }{
		{`label_replace(label_replace(vector(1), "region", "source", "", ""), "in_region", " $1", "region", "(.+)")`, " source"},
		{`label_replace(vector(1), "in_region", " $1", "region", "(.+)")`, ""},
	} {
		vec, err := prom.query(ctx, c.expr)
		if err != nil || len(vec) != 1 || vec[0].Metric["in_region"] != c.want {
			t.Errorf("%s: %+v, %v; want in_region %q", c.expr, vec, err, c.want)
		}
	}
}

// heatmapTotal converts a heatmap query's cumulative le buckets into cells
// (bucket minus the one below, as Grafana's heatmap does for the heatmap
// format) and returns the sum of every cell at every step.
func heatmapTotal(t *testing.T, series []rangeSeries) float64 {
	t.Helper()
	type bucket struct {
		le     float64
		values map[float64]float64
	}
	var buckets []bucket
	for _, s := range series {
		le, err := strconv.ParseFloat(s.Metric["le"], 64)
		if err != nil {
			t.Fatalf("bucket label %q: %v", s.Metric["le"], err)
		}
		b := bucket{le: le, values: map[float64]float64{}}
		for _, v := range s.Values {
			ts, _ := v[0].(float64)
			f, err := strconv.ParseFloat(v[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			b.values[ts] = f
		}
		buckets = append(buckets, b)
	}
	sort.Slice(buckets, func(i, j int) bool { return buckets[i].le < buckets[j].le })
	if len(buckets) < 2 || !math.IsInf(buckets[len(buckets)-1].le, 1) {
		t.Fatalf("%d buckets, the last not +Inf", len(buckets))
	}
	var total float64
	for i, b := range buckets {
		for ts, v := range b.values {
			cell := v
			if i > 0 {
				cell -= buckets[i-1].values[ts]
			}
			if cell < -1e-9 {
				t.Fatalf("bucket le=%v at %v: negative cell %v (buckets not cumulative)", b.le, ts, cell)
			}
			total += cell
		}
	}
	return total
}
