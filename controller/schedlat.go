package controller

import (
	"runtime/metrics"
	"time"
)

// schedLatencyMetric is the Go runtime's histogram of the time goroutines
// spent runnable before they ran.
const schedLatencyMetric = "/sched/latencies:seconds"

// schedLatency measures, per interval, how long this process's runnable
// goroutines waited for a CPU: a process whose threads do not get the CPU
// they need (all GOMAXPROCS busy, or the machine's other processes taking
// the cores) shows it here even when the CPU time it gets is small.
type schedLatency struct {
	sample []metrics.Sample
	prev   []uint64
}

func newSchedLatency() *schedLatency {
	return &schedLatency{sample: []metrics.Sample{{Name: schedLatencyMetric}}}
}

// p90 returns the 90th percentile of the scheduling latencies since the
// previous call (0 on the first call or when unavailable).
func (s *schedLatency) p90() time.Duration {
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0
	}
	h := s.sample[0].Value.Float64Histogram()
	prev := s.prev
	s.prev = append(s.prev[:0:0], h.Counts...)
	if len(prev) != len(h.Counts) {
		return 0
	}
	var total uint64
	delta := make([]uint64, len(h.Counts))
	for i, c := range h.Counts {
		delta[i] = c - prev[i]
		total += delta[i]
	}
	if total == 0 {
		return 0
	}
	want := (total*9 + 9) / 10
	var cum uint64
	for i, d := range delta {
		cum += d
		if cum >= want {
			// The bucket's upper bound (Buckets has one more entry than
			// Counts); an infinite one falls back to its lower bound.
			ub := h.Buckets[i+1]
			if ub > 1e9 {
				ub = h.Buckets[i]
			}
			return time.Duration(ub * float64(time.Second))
		}
	}
	return 0
}
