package local_test

import (
	"testing"
)

// TestStepLatencyCurves runs two steps, a quiet wait and then 300 ms of
// added WAN latency, and checks that the results carry a latency curve per
// step (what the report's distribution chart draws): the degraded step's
// slowest message is at least half the added 300 ms late and its p99 is
// above the quiet step's median (see TestNetworkLatencyBand for what the
// latency does end to end).
func TestStepLatencyCurves(t *testing.T) {
	sc := workload(t, `workload: {rate: 200, duration: 5s, loss_grace: 5s, replicators: 1}
steps:
  - at: 1s
    action: wait
    duration: 1500ms
  - action: network
    latency: 300ms
    for: 2s
`)
	res, _ := run(t, sc, nil)
	if len(res.Steps) != 2 {
		t.Fatalf("%d steps", len(res.Steps))
	}
	for i, s := range res.Steps {
		if len(s.Latency) == 0 {
			t.Fatalf("step %d has no latency curve", i+1)
		}
		for j := 1; j < len(s.Latency); j++ {
			if s.Latency[j].ValueMs < s.Latency[j-1].ValueMs || s.Latency[j].Percentile <= s.Latency[j-1].Percentile {
				t.Fatalf("step %d curve not monotonic: %+v", i+1, s.Latency)
			}
		}
	}
	pct := func(c int, q float64) float64 {
		for _, p := range res.Steps[c].Latency {
			if p.Percentile == q {
				return p.ValueMs
			}
		}
		t.Fatalf("step %d: no p%v", c+1, q)
		return 0
	}
	// A loaded machine only adds latency, to both steps.
	if m := pct(1, 100); m < 150 {
		t.Errorf("degraded step max %.1fms, want at least half the added 300ms", m)
	}
	if q, d := pct(0, 50), pct(1, 99); d <= q {
		t.Errorf("degraded step p99 %.1fms not above the quiet step's p50 %.1fms", d, q)
	}
	if whole := res.Latency; len(whole) == 0 {
		t.Error("no whole-run curve")
	}
}
