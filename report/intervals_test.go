package report

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// TestRateIntervals checks the throughput chart's partial intervals: the
// first point has no interval (no 0 drawn), the interval the producers
// stopped in is scaled to its active part (or dropped when under half), and
// target and produced after the stop are not drawn while replicated (the
// drain) is.
func TestRateIntervals(t *testing.T) {
	t0 := fixtureStart
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	pts := []results.Point{
		{T: at(0)},
		{T: at(1000), TargetRate: 100, ProducedRate: 100, ReplicatedRate: 100},
		{T: at(2000), TargetRate: 100, ProducedRate: 75, ReplicatedRate: 90}, // stop at 1750 ms: 75 in 0.75 s
		{T: at(3000), TargetRate: 100, ProducedRate: 0, ReplicatedRate: 10},
	}
	r := &results.Results{Started: t0, Target: results.Target{Kind: "local"}, Series: pts,
		Workload: results.Workload{Duration: 1750 * time.Millisecond}}
	got := rateIntervals(r)
	nan := math.IsNaN
	if !nan(got[0].TargetRate) || !nan(got[0].ProducedRate) || !nan(got[0].ReplicatedRate) {
		t.Errorf("first point %+v: rates must not be drawn", got[0])
	}
	if got[1].ProducedRate != 100 || got[2].ProducedRate != 100 || got[2].TargetRate != 100 {
		t.Errorf("full and stop intervals: %+v %+v; want produced 100 (75 over the 0.75 s before the stop)", got[1], got[2])
	}
	if !nan(got[3].ProducedRate) || !nan(got[3].TargetRate) || got[3].ReplicatedRate != 10 {
		t.Errorf("after the stop %+v: produced and target not drawn, replicated 10", got[3])
	}
	if pts[0].TargetRate != 0 {
		t.Error("rateIntervals changed the results' series")
	}
	r.Workload.Duration = 1200 * time.Millisecond // stop 0.2 s into the interval: dropped
	if got := rateIntervals(r); !nan(got[2].ProducedRate) {
		t.Errorf("stop 0.2 s into an interval: produced %v, want not drawn", got[2].ProducedRate)
	}
	r.Target.Kind = "kubernetes" // the fleet is not stopped by kmt
	if got := rateIntervals(r); got[3].ProducedRate != 0 || !nan(got[0].ProducedRate) {
		t.Errorf("kubernetes: %+v", got)
	}
	// The fixture: the throughput chart has no 0 at the start.
	fx := syntheticResults()
	fx.Series[0].ProducedRate, fx.Series[0].ReplicatedRate = 0, 0
	specs := timeCharts(chartPoints(fx), fx.Started)
	for _, s := range specs[0].Series {
		if y := s.XY[0].Y; !nan(y) {
			t.Errorf("throughput %s starts at %v, want no point", s.Name, y)
		}
	}
	// Reducing a long series keeps the finite values of a bucket.
	long := make([]results.Point, 3000)
	for i := range long {
		long[i] = results.Point{T: t0.Add(time.Duration(i) * time.Second), ProducedRate: 50}
	}
	long[0].ProducedRate = math.NaN()
	if got := reduce(long, 1000); got[0].ProducedRate != 50 {
		t.Errorf("first bucket rate %v, want 50 (the NaN left out)", got[0].ProducedRate)
	}
}

// TestRecoveryMarked checks that the recovery interval a verdict judged is
// marked on the throughput (and latency) chart: from the step's end to the
// recovery, or to the end of the run when there was none.
func TestRecoveryMarked(t *testing.T) {
	t0 := fixtureStart
	steps := []results.Step{{Index: 1, Action: "network", Start: t0.Add(10 * time.Second), End: t0.Add(20 * time.Second),
		Recoveries: []results.Recovery{
			{Metric: "throughput", Recovered: true, After: 4 * time.Second, Within: 10 * time.Second, Pass: true},
			{Metric: "p99_latency", Recovered: false, Within: 5 * time.Second},
		}}}
	end := t0.Add(60 * time.Second)
	b, legend, caption := recoveryBands(steps, t0, end, "throughput")
	if len(b) != 1 || b[0].X0 != 20 || b[0].X1 != 24 || !b[0].Outline || b[0].Text != colGreen || len(legend) != 1 {
		t.Fatalf("throughput bands %+v legend %+v", b, legend)
	}
	if !strings.Contains(caption, "#1 throughput recovered 4s after the step (bound 10s)") {
		t.Errorf("caption %q", caption)
	}
	b, _, caption = recoveryBands(steps, t0, end, "latency")
	if len(b) != 1 || b[0].X0 != 20 || b[0].X1 != 60 || b[0].Text != colCrimson || !strings.Contains(caption, "no recovery by the end of the run") {
		t.Fatalf("latency bands %+v, caption %q", b, caption)
	}
	r := syntheticResults()
	r.Steps[0].Recoveries = steps[0].Recoveries
	pg, err := buildPage(r, options{width: 300, height: 200})
	if err != nil {
		t.Fatal(err)
	}
	if c := pg.TimeCharts[0].Caption; !strings.Contains(c, "recovery interval each verdict judged") {
		t.Errorf("throughput chart caption lacks the recovery: %q", c)
	}
}
