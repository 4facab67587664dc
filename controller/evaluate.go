package controller

import (
	"time"

	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/results"
)

// Series turns cumulative samples into the per-second points of a report.
func Series(samples []Sample) []results.Point {
	out := make([]results.Point, 0, len(samples))
	for i, s := range samples {
		p := results.Point{
			T: s.Time, TargetRate: s.TargetRate,
			P50Ms: ms(s.P50), P99Ms: ms(s.P99), P999Ms: ms(s.P999),
			Lost: s.Lost, Duplicated: s.Duplicated, Reordered: s.Reordered,
			Lag: s.Lag, InFlight: s.InFlight,
			Backlog: s.Backlog, BacklogAgeS: s.BacklogAge.Seconds(),
			CPU: s.CPU, SchedLatencyMs: ms(s.SchedLatency), CPUPressure: s.CPUPressure,
		}
		if i > 0 {
			prev := samples[i-1]
			if dt := s.Time.Sub(prev.Time).Seconds(); dt > 0 {
				p.ProducedRate = float64(s.Produced-prev.Produced) / dt
				p.ReplicatedRate = float64(s.Received-prev.Received) / dt
			}
		}
		out = append(out, p)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// finalFromSamples builds the outcome of a run from its last sample, for
// targets that only observe metrics.
func finalFromSamples(samples []Sample, d time.Duration) *Final {
	f := &Final{}
	if len(samples) == 0 {
		f.Summary.Verdict = results.Fail
		f.NoData = true
		return f
	}
	last := samples[len(samples)-1]
	f.Summary = results.Summary{
		DurationS: d.Seconds(), Produced: last.Produced, Acked: last.Acked, Received: last.Received,
		Lost: last.Lost, Duplicated: last.Duplicated, Reordered: last.Reordered, Late: last.Late, Foreign: last.Foreign,
		LatencyFuture: last.LatencyFuture, LatencyOverCap: last.LatencyOverCap,
		LatencyMs: results.Latencies{P50: ms(last.P50), P99: ms(last.P99), P999: ms(last.P999)},
	}
	if d > 0 {
		f.Summary.ThroughputMsgsPerS = float64(last.Received) / d.Seconds()
	}
	return f
}

// Evaluate checks every step's assertions against the samples recorded in
// its window, the scenario's run-wide assertions against the summary, and
// sets the verdicts. It is a pure function of the scenario and what was
// recorded.
func Evaluate(sc *scenario.Scenario, res *results.Results, samples []Sample) {
	pass := true
	grace := sc.Workload.LossGrace.D()
	for i := range res.Steps {
		step := &res.Steps[i]
		if i >= len(sc.Steps) {
			break
		}
		if step.Verdict == results.Fail { // the action itself failed
			pass = false
			continue
		}
		stepPass, noData := true, false
		for _, a := range sc.Steps[i].Expect {
			ra := checkStep(a, step, samples, grace)
			if a.Recovers {
				d, ok := recovery(a, step.End, samples)
				step.Recoveries = append(step.Recoveries, results.Recovery{Metric: a.Metric, Recovered: ok, After: d, Within: a.Within, Pass: ra.Pass})
			}
			if a.Recovers && ra.Pass {
				d := time.Duration(ra.Value * float64(time.Second))
				if a.Metric == "throughput" {
					step.RecoveryThroughput = d
				} else {
					step.RecoveryLatency = d
				}
			}
			stepPass = stepPass && ra.Pass
			noData = noData || ra.NoData
			step.Assertions = append(step.Assertions, ra)
		}
		step.Verdict = verdict(stepPass)
		if noData && !failedWithData(step.Assertions) {
			step.Verdict = results.NoData
		}
		pass = pass && stepPass
	}
	res.Expect = nil
	for _, a := range sc.Expect {
		v := summaryValue(a.Metric, res.Summary, sc)
		ok := a.Holds(v)
		res.Expect = append(res.Expect, results.Assertion{Expr: a.Text, Measured: a.Format(v), Value: v, Pass: ok})
		pass = pass && ok
	}
	res.Verdict = verdict(pass)
	res.Summary.Verdict = res.Verdict
}

// failedWithData reports whether an assertion failed on samples it had.
func failedWithData(as []results.Assertion) bool {
	for _, a := range as {
		if !a.Pass && !a.NoData {
			return true
		}
	}
	return false
}

// noDataAssertion is an assertion over a window without samples.
func noDataAssertion(text string) results.Assertion {
	return results.Assertion{Expr: text, Measured: results.NoData, NoData: true}
}

// within reports whether any sample lies in [from, to].
func within(samples []Sample, from, to time.Time) bool {
	for _, s := range samples {
		if !s.Time.Before(from) && !s.Time.After(to) {
			return true
		}
	}
	return false
}

func verdict(ok bool) string {
	if ok {
		return results.Pass
	}
	return results.Fail
}

func summaryValue(metric string, s results.Summary, sc *scenario.Scenario) float64 {
	switch metric {
	case "lost":
		return float64(s.Lost)
	case "duplicated":
		return float64(s.Duplicated)
	case "reordered":
		return float64(s.Reordered)
	case "late":
		return float64(s.Late)
	case "foreign":
		return float64(s.Foreign)
	case "p50_latency":
		return s.LatencyMs.P50 / 1000
	case "p99_latency":
		return s.LatencyMs.P99 / 1000
	case "p999_latency":
		return s.LatencyMs.P999 / 1000
	case "throughput":
		target := sc.Workload.Rate * float64(sc.Workload.Topics)
		if target == 0 {
			return 100
		}
		return 100 * s.ThroughputMsgsPerS / target
	}
	return 0
}

// checkStep evaluates one assertion over a step's window. Count metrics are
// the increase of the cumulative counter from the step's start to its end
// plus the loss grace (so losses caused by the step are declared by then);
// latency is the worst per-second percentile during the step; throughput the
// mean replicated rate during the step as a share of target. Recovery
// assertions look for the first second after the step's end from which the
// condition holds.
func checkStep(a scenario.Assertion, step *results.Step, samples []Sample, grace time.Duration) results.Assertion {
	out := results.Assertion{Expr: a.Text}
	if len(samples) == 0 {
		return noDataAssertion(a.Text)
	}
	if a.Recovers {
		if !samples[len(samples)-1].Time.After(step.End) {
			return noDataAssertion(a.Text)
		}
		d, ok := recovery(a, step.End, samples)
		out.Value = d.Seconds()
		out.Pass = ok && d <= a.Within
		if ok {
			out.Measured = "recovered after " + d.Round(time.Second/10).String()
		} else {
			out.Measured = "did not recover"
		}
		return out
	}
	var v float64
	switch a.Metric {
	case "lost", "duplicated", "reordered", "late", "foreign":
		end := step.End.Add(grace + 2*time.Second)
		if !within(samples, step.Start.Add(-2*time.Second), end) {
			return noDataAssertion(a.Text)
		}
		from := sampleAt(samples, step.Start, false)
		to := sampleAt(samples, end, true)
		if from != nil && to != nil {
			v = float64(counter(a.Metric, *to) - counter(a.Metric, *from))
		}
	case "p50_latency", "p99_latency", "p999_latency":
		if !within(samples, step.Start, step.End.Add(time.Second)) {
			return noDataAssertion(a.Text)
		}
		for _, s := range samples {
			if s.Time.Before(step.Start) || s.Time.After(step.End.Add(time.Second)) {
				continue
			}
			v = max(v, latencyOf(a.Metric, s).Seconds())
		}
	case "throughput":
		if !within(samples, step.Start.Add(-2*time.Second), step.End.Add(2*time.Second)) {
			return noDataAssertion(a.Text)
		}
		v = meanThroughput(samples, step.Start, step.End)
	}
	out.Value = v
	out.Measured = a.Format(v)
	out.Pass = a.Holds(v)
	return out
}

func counter(metric string, s Sample) uint64 {
	switch metric {
	case "lost":
		return s.Lost
	case "duplicated":
		return s.Duplicated
	case "reordered":
		return s.Reordered
	case "late":
		return s.Late
	default:
		return s.Foreign
	}
}

func latencyOf(metric string, s Sample) time.Duration {
	switch metric {
	case "p50_latency":
		return s.P50
	case "p999_latency":
		return s.P999
	default:
		return s.P99
	}
}

// sampleAt returns the last sample at or before t (after=false), or the first
// at or after t, falling back to the last sample (after=true).
func sampleAt(samples []Sample, t time.Time, after bool) *Sample {
	if len(samples) == 0 {
		return nil
	}
	if after {
		for i := range samples {
			if !samples[i].Time.Before(t) {
				return &samples[i]
			}
		}
		return &samples[len(samples)-1]
	}
	var found *Sample
	for i := range samples {
		if samples[i].Time.After(t) {
			break
		}
		found = &samples[i]
	}
	if found == nil {
		found = &samples[0]
	}
	return found
}

func meanThroughput(samples []Sample, from, to time.Time) float64 {
	a, b := sampleAt(samples, from, false), sampleAt(samples, to, true)
	if a == nil || b == nil || !b.Time.After(a.Time) || a.TargetRate == 0 {
		return 0
	}
	rate := float64(b.Received-a.Received) / b.Time.Sub(a.Time).Seconds()
	return 100 * rate / a.TargetRate
}

// recovery returns how long after end the condition of a first held, at the
// close of the first whole sampling interval after end in which it held and
// kept holding in the next interval too. Intervals without a target rate
// (the workload had stopped) cannot be judged and are skipped.
func recovery(a scenario.Assertion, end time.Time, samples []Sample) (time.Duration, bool) {
	judge := func(i int) (holds, valid bool) {
		prev, s := samples[i-1], samples[i]
		if a.Metric == "throughput" {
			dt := s.Time.Sub(prev.Time).Seconds()
			if dt <= 0 || prev.TargetRate == 0 {
				return false, false
			}
			// The target of the interval is the one at its start.
			return a.Holds(100 * float64(s.Received-prev.Received) / dt / prev.TargetRate), true
		}
		return a.Holds(latencyOf(a.Metric, s).Seconds()), prev.TargetRate > 0
	}
	var valid []int
	for i := 1; i < len(samples); i++ {
		// An interval counts as after the fault when most of it is.
		mid := samples[i-1].Time.Add(samples[i].Time.Sub(samples[i-1].Time) / 2)
		if mid.Before(end) {
			continue
		}
		if _, ok := judge(i); ok {
			valid = append(valid, i)
		}
	}
	for k, i := range valid {
		if h, _ := judge(i); !h {
			continue
		}
		if k+1 < len(valid) {
			if next, _ := judge(valid[k+1]); !next {
				continue
			}
		}
		return samples[i].Time.Sub(end), true
	}
	return 0, false
}
