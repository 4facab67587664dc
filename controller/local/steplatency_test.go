package local_test

import (
	"testing"
)

// TestStepLatencyCurves runs two steps, a quiet wait and then 300 ms of
// added WAN latency, and checks that the results carry a latency curve per
// step (what the report's distribution chart draws): the wait's messages
// arrive fast, the degraded step's are at least 300 ms late at the median.
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
	median := func(c int) float64 {
		for _, p := range res.Steps[c].Latency {
			if p.Percentile == 50 {
				return p.ValueMs
			}
		}
		t.Fatalf("step %d: no p50", c+1)
		return 0
	}
	if m := median(0); m >= 250 {
		t.Errorf("quiet step p50 %.1fms, want well under the 300ms of the next step", m)
	}
	if m := median(1); m < 300 {
		t.Errorf("degraded step p50 %.1fms, want at least the added 300ms", m)
	}
	if whole := res.Latency; len(whole) == 0 {
		t.Error("no whole-run curve")
	}
}
