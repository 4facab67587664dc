package latency

import (
	"math"
	"testing"
	"time"
)

// within reports whether got is within HdrHistogram's 3-significant-digit
// precision (0.1%) of want.
func within(got, want time.Duration) bool {
	return math.Abs(float64(got-want)) <= float64(want)/1000+float64(time.Microsecond)
}

func TestPercentilesAgainstHandComputed(t *testing.T) {
	r := New()
	// 1ms, 2ms, ..., 1000ms: the q-th percentile is q*10ms by hand.
	for i := 1; i <= 1000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	s := r.Total()
	for _, c := range []struct {
		name      string
		got, want time.Duration
	}{
		{"min", s.Min, time.Millisecond}, {"p50", s.P50, 500 * time.Millisecond}, {"p90", s.P90, 900 * time.Millisecond},
		{"p99", s.P99, 990 * time.Millisecond}, {"p99.9", s.P999, 999 * time.Millisecond}, {"max", s.Max, time.Second},
	} {
		if !within(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count %d", s.Count)
	}
	if w := r.Window(); w.Count != 1000 || !within(w.P99, 990*time.Millisecond) {
		t.Errorf("first window %+v", w)
	}
	r.Record(5 * time.Millisecond)
	if w := r.Window(); w.Count != 1 || !within(w.Max, 5*time.Millisecond) {
		t.Errorf("second window %+v, want only the 5ms recorded since", w)
	}
	curve := r.Curve()
	if len(curve) != len(CurvePercentiles) || !within(curve[0], time.Millisecond) || !within(curve[len(curve)-1], time.Second) {
		t.Errorf("curve %v", curve)
	}
}

func TestClampAndNegative(t *testing.T) {
	r := New()
	r.Record(-time.Second)  // clock skew counts as the minimum
	r.Record(2 * time.Hour) // beyond the range: clamped and counted
	s := r.Total()
	if s.Count != 2 || s.Clamped != 1 || s.Min != time.Microsecond || !within(s.Max, time.Hour) {
		t.Errorf("%+v", s)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	r := New()
	if n := testing.AllocsPerRun(1000, func() { r.Record(3 * time.Millisecond) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

func TestRecordAllEqualsRecordOneByOne(t *testing.T) {
	ds := []time.Duration{-time.Second, 0, 3 * time.Microsecond, 7 * time.Millisecond, 7 * time.Millisecond, 2 * time.Hour}
	one, all := New(), New()
	for _, d := range ds {
		one.Record(d)
	}
	all.RecordAll(ds)
	if a, b := one.Total(), all.Total(); a != b {
		t.Fatalf("RecordAll %+v, Record one by one %+v", b, a)
	}
	if a, b := one.Window(), all.Window(); a != b {
		t.Fatalf("windows differ: RecordAll %+v, Record %+v", b, a)
	}
	if n := testing.AllocsPerRun(100, func() { all.RecordAll(ds) }); n != 0 {
		t.Errorf("RecordAll allocates %v times", n)
	}
}

// TestCurveBetween records two sets far apart, snapshotting in between: the
// curve between the snapshots covers only the second set.
func TestCurveBetween(t *testing.T) {
	r := New()
	for i := 1; i <= 1000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	mid := r.Snapshot()
	for i := 5001; i <= 6000; i++ {
		r.Record(time.Duration(i) * time.Millisecond)
	}
	end := r.Snapshot()
	c := CurveBetween(mid, end)
	near := func(got, want time.Duration) bool { return got >= want-want/500 && got <= want+want/500 }
	if !near(c[0], 5001*time.Millisecond) || !near(c[2], 5500*time.Millisecond) || !near(c[len(c)-1], 6000*time.Millisecond) {
		t.Errorf("curve between: min %v p50 %v max %v; want 5001ms, 5500ms, 6000ms (±0.2%%)", c[0], c[2], c[len(c)-1])
	}
	if c := CurveBetween(nil, mid); !near(c[2], 500*time.Millisecond) {
		t.Errorf("curve since start: p50 %v, want 500ms", c[2])
	}
	if c := CurveBetween(end, end); c[2] != 0 || c[len(c)-1] != 0 {
		t.Errorf("empty window: %v, want zeros", c)
	}
}
