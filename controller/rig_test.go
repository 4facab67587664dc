package controller

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// rigSamples returns n one-second samples at target 70k msg/s with the
// given CPU use (cores), producers behind by behind(i) and p50 latency
// p50(i).
func rigSamples(n int, cpu float64, behind func(i int) uint64, p50 func(i int) time.Duration) []Sample {
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	out := make([]Sample, n)
	for i := range out {
		out[i] = Sample{Time: t0.Add(time.Duration(i) * time.Second), TargetRate: 70000, CPU: cpu, Behind: behind(i), P50: p50(i)}
	}
	return out
}

// starved sets every sample's goroutine scheduling latency to 45 ms: the
// process gets little CPU and waits for it.
func starved(ss []Sample) []Sample {
	for i := range ss {
		ss[i].SchedLatency = 45 * time.Millisecond
	}
	return ss
}

// TestSchedLatencyMeasures checks that the runtime's scheduling-latency
// histogram is read per interval: more runnable goroutines than CPUs for a
// while give a non-zero 90th percentile, and an interval with nothing
// scheduled gives 0 rather than the run-wide figure.
func TestSchedLatencyMeasures(t *testing.T) {
	s := newSchedLatency()
	if d := s.p90(); d != 0 {
		t.Fatalf("first read %v, want 0", d)
	}
	done := make(chan struct{})
	for range 4 * runtime.GOMAXPROCS(0) {
		go func() {
			x := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				for i := range 100000 {
					x += i
				}
				runtime.Gosched()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	close(done)
	if d := s.p90(); d <= 0 {
		t.Errorf("p90 scheduling latency %v with %d busy goroutines, want > 0", d, 4*runtime.GOMAXPROCS(0))
	}
}

// pressured sets every sample's machine CPU pressure to 97%.
func pressured(ss []Sample) []Sample {
	for i := range ss {
		ss[i].CPUPressure = 0.97
	}
	return ss
}

func TestParseCPUPressure(t *testing.T) {
	in := "some avg10=96.92 avg60=96.42 avg300=96.47 total=2795122045\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	if d, ok := parseCPUPressure(in); !ok || d != 2795122045*time.Microsecond {
		t.Errorf("parse = %v, %v", d, ok)
	}
	for _, bad := range []string{"", "full total=1\n", "some total=x\n"} {
		if _, ok := parseCPUPressure(bad); ok {
			t.Errorf("parse(%q) ok", bad)
		}
	}
}

func TestRigCheck(t *testing.T) {
	none := func(int) uint64 { return 0 }
	falling := func(i int) uint64 { return uint64(i) * 5000 } // ends 95k behind
	flat := func(int) time.Duration { return 3 * time.Millisecond }
	growing := func(i int) time.Duration { return time.Duration(i) * 200 * time.Millisecond }
	stepUp := func(i int) time.Duration { // 3 ms, then 4 s from the 10th second on
		if i < 10 {
			return 3 * time.Millisecond
		}
		return 4 * time.Second
	}
	for _, tc := range []struct {
		name      string
		samples   []Sample
		saturated bool
		warning   string
		faults    []Window
	}{
		{"healthy", rigSamples(20, 1.0, none, flat), false, "", nil},
		{"cpu-bound but keeping up", rigSamples(20, 1.95, none, flat), false, "", nil},
		{"cpu-bound and behind", rigSamples(20, 1.9, falling, flat), true, "the test rig saturated: kmt's own process used 1.9 of 2 cores, its goroutines waited 0s (p90) for a CPU and the machine's runnable tasks waited for one 0% of the time, while the producers ended 95000 messages (1.4 s of the target rate) behind their schedule", nil},
		{"starved by the machine and behind", starved(rigSamples(20, 0.2, falling, growing)), true, "used 0.2 of 2 cores, its goroutines waited 45ms (p90) for a CPU", nil},
		{"machine short of CPU and latency growing", pressured(rigSamples(20, 0.2, none, growing)), true, "the machine's runnable tasks waited for one 97% of the time, while end-to-end latency kept growing", nil},
		{"cpu-bound and latency growing", rigSamples(20, 1.9, none, growing), true, "end-to-end latency kept growing (median p50 1.4s in the second quarter of the run, 3.6s in the last)", nil},
		{"behind with CPU to spare", rigSamples(20, 0.8, falling, flat), false, "got a CPU without waiting (machine CPU pressure 0%): the source cluster did not keep up", nil},
		{"latency growing with CPU to spare (a fault)", rigSamples(20, 0.5, none, growing), false, "", nil},
		{"no CPU figures (workload elsewhere)", rigSamples(20, 0, falling, growing), false, "the source cluster or the producers' own CPU did not keep up", nil},
		{"too short to judge", rigSamples(3, 1.9, falling, growing), false, "", nil},
		{"latency raised in the second half", rigSamples(20, 1.9, none, stepUp), true, "end-to-end latency kept growing", nil},
		{"latency raised by a fault", rigSamples(20, 1.9, none, stepUp), false, "",
			[]Window{{From: time.Date(2026, 1, 2, 3, 4, 10, 0, time.UTC), To: time.Date(2026, 1, 2, 3, 4, 20, 0, time.UTC)}}},
		{"latency up and down again", rigSamples(20, 1.9, none, func(i int) time.Duration {
			return []time.Duration{1, 1, 1, 1, 1, 900, 900, 900, 900, 900, 5000, 5000, 5000, 5000, 5000, 3000, 3000, 3000, 3000, 3000}[i] * time.Millisecond
		}), false, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, sat := RigCheck(tc.samples, 2, tc.faults)
			if sat != tc.saturated {
				t.Errorf("saturated = %v, want %v (warnings %q)", sat, tc.saturated, w)
			}
			if tc.warning == "" && len(w) != 0 || tc.warning != "" && (len(w) != 1 || !strings.Contains(w[0], tc.warning)) {
				t.Errorf("warnings %q, want one containing %q", w, tc.warning)
			}
		})
	}
}

// TestApplyRigCheckVerdicts checks the verdict rules: a saturated rig or
// undrained consumers turn PASS into INCONCLUSIVE; FAIL stays FAIL.
func TestApplyRigCheckVerdicts(t *testing.T) {
	sat := rigSamples(20, 1.9, func(i int) uint64 { return uint64(i) * 5000 }, func(int) time.Duration { return time.Millisecond })
	ok := rigSamples(20, 0.5, func(int) uint64 { return 0 }, func(int) time.Duration { return time.Millisecond })
	for _, tc := range []struct {
		name       string
		verdict    string
		samples    []Sample
		notDrained uint64
		want       string
	}{
		{"pass stays pass", results.Pass, ok, 0, results.Pass},
		{"saturated pass", results.Pass, sat, 0, results.Inconclusive},
		{"not drained pass", results.Pass, ok, 10, results.Inconclusive},
		{"saturated fail", results.Fail, sat, 0, results.Fail},
	} {
		res := &results.Results{Verdict: tc.verdict, Summary: results.Summary{Verdict: tc.verdict, NotDrained: tc.notDrained}}
		applyRigCheck(res, tc.samples, 2)
		if res.Verdict != tc.want || res.Summary.Verdict != tc.want {
			t.Errorf("%s: verdict %s / summary %s, want %s", tc.name, res.Verdict, res.Summary.Verdict, tc.want)
		}
	}
}
