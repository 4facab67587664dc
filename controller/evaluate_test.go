package controller

import (
	"testing"
	"time"

	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/results"
)

// samplesOf builds one sample per second: received[i] cumulative, lost[i]
// cumulative, p99[i] in milliseconds, at a 100/s target.
func samplesOf(t0 time.Time, received, lost []uint64, p99 []int) []Sample {
	out := make([]Sample, len(received))
	for i := range received {
		out[i] = Sample{Time: t0.Add(time.Duration(i) * time.Second), Received: received[i], Lost: lost[i],
			P99: time.Duration(p99[i]) * time.Millisecond, TargetRate: 100}
	}
	return out
}

// TestRecoveryWindowWhenNeverRecovered checks that a recovery assertion
// that never held again still leaves its window (from the step's end, not
// recovered, failed) for the report to mark.
func TestRecoveryWindowWhenNeverRecovered(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
workload: {rate: 100, loss_grace: 2s, duration: 8s}
steps:
  - at: 2s
    action: wait
    for: 1s
    expect: ["recovers: throughput >= 90% within 2s"]
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	received := []uint64{0, 100, 200, 200, 200, 200, 200, 200}
	samples := samplesOf(t0, received, make([]uint64, 8), make([]int, 8))
	res := &results.Results{Steps: []results.Step{{Index: 1, Action: "wait", Start: t0.Add(2 * time.Second), End: t0.Add(3 * time.Second)}}}
	Evaluate(sc, res, samples)
	want := results.Recovery{Metric: "throughput", Within: 2 * time.Second}
	if rec := res.Steps[0].Recoveries; len(rec) != 1 || rec[0] != want {
		t.Errorf("recovery windows %+v, want %+v", rec, want)
	}
}

func TestEvaluate(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
workload: {rate: 100, loss_grace: 2s, duration: 12s}
steps:
  - at: 2s
    action: wait
    for: 3s
    expect:
      - lost == 0
      - p99_latency < 100ms
      - "recovers: throughput >= 90% within 3s"
      - latency recovers below 50ms within 2s
expect: [lost <= 5, duplicated == 0]
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	// Seconds 0..11. Traffic stalls during seconds 3-4, catches up at 6-7.
	received := []uint64{0, 100, 200, 300, 300, 300, 550, 800, 900, 1000, 1100, 1200}
	lost := []uint64{0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3}
	p99 := []int{10, 10, 10, 400, 900, 800, 60, 40, 20, 10, 10, 10}
	samples := samplesOf(t0, received, lost, p99)
	res := &results.Results{
		Steps:   []results.Step{{Index: 1, Action: "wait", Start: t0.Add(2 * time.Second), End: t0.Add(5 * time.Second)}},
		Summary: results.Summary{Lost: 3},
	}
	Evaluate(sc, res, samples)
	got := res.Steps[0].Assertions
	want := []struct {
		measured string
		pass     bool
	}{
		{"3", false},                 // lost rose from 0 to 3 between 2s and 5s+2s grace
		{"900ms", false},             // worst second
		{"recovered after 1s", true}, // second 6 (5->6) has 250/s and second 7 too
		{"recovered after 2s", true}, // p99 < 50ms from second 7 on
	}
	if len(got) != len(want) {
		t.Fatalf("assertions %+v", got)
	}
	for i, w := range want {
		if got[i].Measured != w.measured || got[i].Pass != w.pass {
			t.Errorf("%s: measured %q pass %v, want %q %v", got[i].Expr, got[i].Measured, got[i].Pass, w.measured, w.pass)
		}
	}
	if res.Steps[0].Verdict != results.Fail || res.Verdict != results.Fail {
		t.Errorf("verdicts step %s run %s", res.Steps[0].Verdict, res.Verdict)
	}
	if len(res.Expect) != 2 || !res.Expect[0].Pass || res.Expect[0].Measured != "3" {
		t.Errorf("run-wide expect %+v", res.Expect)
	}
	if res.Steps[0].RecoveryThroughput != time.Second || res.Steps[0].RecoveryLatency != 2*time.Second {
		t.Errorf("recovery %v %v", res.Steps[0].RecoveryThroughput, res.Steps[0].RecoveryLatency)
	}
	wantRec := []results.Recovery{
		{Metric: "throughput", Recovered: true, After: time.Second, Within: 3 * time.Second, Pass: true},
		{Metric: "p99_latency", Recovered: true, After: 2 * time.Second, Within: 2 * time.Second, Pass: true},
	}
	if rec := res.Steps[0].Recoveries; len(rec) != 2 || rec[0] != wantRec[0] || rec[1] != wantRec[1] {
		t.Errorf("recovery windows %+v, want %+v", rec, wantRec)
	}
	pts := Series(samples)
	if pts[6].ReplicatedRate != 250 || pts[4].ReplicatedRate != 0 {
		t.Errorf("series rates %v %v", pts[6].ReplicatedRate, pts[4].ReplicatedRate)
	}
}

// TestEvaluateNoData: assertions over windows without a single sample are
// NO DATA, never PASS, and the step says so.
func TestEvaluateNoData(t *testing.T) {
	sc, err := scenario.Parse([]byte(`
workload: {rate: 100, loss_grace: 2s, duration: 30s}
steps:
  - at: 2s
    action: wait
    for: 3s
    expect:
      - lost == 0
      - p99_latency < 100ms
      - throughput >= 90%
      - "recovers: throughput >= 90% within 3s"
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	step := results.Step{Index: 1, Action: "wait", Start: t0.Add(20 * time.Second), End: t0.Add(23 * time.Second)}
	for name, samples := range map[string][]Sample{
		"no samples at all":         nil,
		"samples before the window": samplesOf(t0, []uint64{0, 100, 200}, []uint64{0, 0, 0}, []int{1, 1, 1}),
	} {
		t.Run(name, func(t *testing.T) {
			res := &results.Results{Steps: []results.Step{step}}
			Evaluate(sc, res, samples)
			for _, a := range res.Steps[0].Assertions {
				if !a.NoData || a.Pass || a.Measured != results.NoData {
					t.Errorf("%s: %+v; want NO DATA, not passed", a.Expr, a)
				}
			}
			if res.Steps[0].Verdict != results.NoData || res.Verdict != results.Fail {
				t.Errorf("verdicts: step %s run %s; want NO DATA and FAIL", res.Steps[0].Verdict, res.Verdict)
			}
		})
	}
}
