// Package latency records durations in HdrHistograms for exact percentiles,
// both over a whole run and over the interval since the last window read.
package latency

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Range of recordable values: 1µs to 1h at 3 significant digits. Larger
// values are clamped to the maximum (and counted, see Summary.Clamped).
const (
	minValue = 1
	maxValue = int64(time.Hour / time.Microsecond)
	sigFigs  = 3
)

// Summary holds the percentiles of a set of recorded durations.
type Summary struct {
	Count   int64         `json:"count"`
	Min     time.Duration `json:"min"`
	P50     time.Duration `json:"p50"`
	P90     time.Duration `json:"p90"`
	P95     time.Duration `json:"p95"`
	P99     time.Duration `json:"p99"`
	P999    time.Duration `json:"p999"`
	Max     time.Duration `json:"max"`
	Mean    time.Duration `json:"mean"`
	Clamped int64         `json:"clamped"`
}

// Recorder is a concurrency-safe pair of histograms: one for the whole run
// and one for the current window.
type Recorder struct {
	mu      sync.Mutex
	total   *hdrhistogram.Histogram
	window  *hdrhistogram.Histogram
	clamped int64
}

// New returns an empty Recorder.
func New() *Recorder {
	return &Recorder{
		total:  hdrhistogram.New(minValue, maxValue, sigFigs),
		window: hdrhistogram.New(minValue, maxValue, sigFigs),
	}
}

// Record adds one duration. Negative durations (clock skew) count as zero.
// It does not allocate.
func (r *Recorder) Record(d time.Duration) {
	r.mu.Lock()
	r.record(d)
	r.mu.Unlock()
}

// RecordAll adds every duration in ds under one lock, as Record does one.
// It does not allocate.
func (r *Recorder) RecordAll(ds []time.Duration) {
	r.mu.Lock()
	for _, d := range ds {
		r.record(d)
	}
	r.mu.Unlock()
}

// record adds d; the caller holds r.mu.
func (r *Recorder) record(d time.Duration) {
	us := int64(d / time.Microsecond)
	if us < minValue {
		us = minValue
	}
	if us > maxValue {
		us = maxValue
		r.clamped++
	}
	_ = r.total.RecordValue(us)
	_ = r.window.RecordValue(us)
}

// Total summarises everything recorded so far.
func (r *Recorder) Total() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summarize(r.total)
	s.Clamped = r.clamped
	return s
}

// Window summarises what was recorded since the previous Window call and
// starts a new window.
func (r *Recorder) Window() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := summarize(r.window)
	r.window.Reset()
	return s
}

// Snapshot returns a copy of the whole-run histogram, for percentile curves.
func (r *Recorder) Snapshot() *hdrhistogram.Snapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total.Export()
}

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Summary{
		Count: h.TotalCount(),
		Min:   us(h.Min()),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P95:   us(h.ValueAtQuantile(95)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
		Mean:  time.Duration(h.Mean() * float64(time.Microsecond)),
	}
}

// CurvePercentiles are the percentiles of a latency distribution curve, in
// the style of HdrHistogram plots.
var CurvePercentiles = []float64{0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100}

// Curve returns the whole-run value at each of CurvePercentiles.
func (r *Recorder) Curve() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, len(CurvePercentiles))
	if r.total.TotalCount() == 0 {
		return out
	}
	for i, q := range CurvePercentiles {
		v := r.total.ValueAtQuantile(q)
		if q == 0 {
			v = r.total.Min()
		}
		out[i] = time.Duration(v) * time.Microsecond
	}
	return out
}

// Merge adds every value of a whole-run histogram exported by Snapshot (of
// this or another process's recorder) to r's whole-run histogram. The
// snapshot must come from a recorder of this package (same range and
// precision).
func (r *Recorder) Merge(s *hdrhistogram.Snapshot) {
	if s == nil {
		return
	}
	h := hdrhistogram.Import(s)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total.Merge(h)
}

// CurveBetween returns the value at each of CurvePercentiles over what was
// recorded between two snapshots of the same Recorder (from taken before
// to), all zero when nothing was. A nil from means since the start.
func CurveBetween(from, to *hdrhistogram.Snapshot) []time.Duration {
	out := make([]time.Duration, len(CurvePercentiles))
	if to == nil {
		return out
	}
	diff := *to
	diff.Counts = append([]int64(nil), to.Counts...)
	if from != nil && len(from.Counts) == len(diff.Counts) {
		for i, c := range from.Counts {
			diff.Counts[i] -= c
		}
	}
	h := hdrhistogram.Import(&diff)
	if h.TotalCount() == 0 {
		return out
	}
	for i, q := range CurvePercentiles {
		v := h.ValueAtQuantile(q)
		if q == 0 {
			v = h.Min()
		}
		out[i] = time.Duration(v) * time.Microsecond
	}
	return out
}
