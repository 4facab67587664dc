package controller

import (
	"fmt"
	"slices"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// Thresholds of the rig check (see RigCheck).
const (
	// cpuBoundShare is the share of the cores available to kmt's process
	// (GOMAXPROCS) above which the process counts as CPU-bound.
	cpuBoundShare = 0.9
	// starvedLatency is the median (over the second half of the run) of
	// the per-second 90th percentile goroutine scheduling latency above
	// which the process counts as CPU-bound although it used less: its
	// runnable goroutines waited that long for a CPU (the machine's other
	// processes took the cores).
	starvedLatency = 10 * time.Millisecond
	// starvedPressure is the median CPU pressure (Sample.CPUPressure)
	// above which the machine kmt runs on counts as short of CPU: runnable
	// tasks waited for a CPU that share of the time.
	starvedPressure = 0.8
	// growthFactor and growthFloor: latency "grows without bound" when the
	// median p50 of the run's last quarter is above growthFactor times the
	// median of its second quarter and above growthFloor.
	growthFactor = 2
	growthFloor  = time.Second
)

// RigCheck looks at the samples of a run for the test rig's own
// saturation: kmt's process CPU-bound (Sample.CPU, in cores, at least 90%
// of cores; or its goroutines waiting for a CPU, Sample.SchedLatency, see
// starvedLatency; or the machine short of CPU, Sample.CPUPressure, see
// starvedPressure) while the producers end behind their schedule (at least one
// second of the target rate overdue at the last sample with a target) or
// end-to-end latency keeps growing (see growthFactor). It returns the
// warnings to show and whether the rig saturated, which makes a passing
// run INCONCLUSIVE: kmt, not the replicator, limited what was measured.
// Latency growth is not judged inside faults (the scenario's step windows,
// each extended by FaultSettle). Producers behind schedule while kmt had
// CPU to spare get a warning only
// (the source cluster did not keep up). Samples without CPU figures (a
// target whose workload runs elsewhere) never count as CPU-bound.
func RigCheck(samples []Sample, cores int, faults []Window) (warnings []string, saturated bool) {
	var run []Sample
	for _, s := range samples {
		if s.TargetRate > 0 {
			run = append(run, s)
		}
	}
	if len(run) < 4 || cores <= 0 {
		return nil, false
	}
	var cpu float64
	var measured int
	var waits []time.Duration
	var pressures []float64
	for _, s := range run[len(run)/2:] {
		if s.CPU > 0 {
			cpu += s.CPU
			measured++
			waits = append(waits, s.SchedLatency)
			pressures = append(pressures, s.CPUPressure)
		}
	}
	if measured > 0 {
		cpu /= float64(measured)
	}
	slices.Sort(waits)
	var wait time.Duration
	if len(waits) > 0 {
		wait = waits[len(waits)/2]
	}
	slices.Sort(pressures)
	var pressure float64
	if len(pressures) > 0 {
		pressure = pressures[len(pressures)/2]
	}
	cpuBound := measured > 0 && (cpu >= cpuBoundShare*float64(cores) || wait >= starvedLatency || pressure >= starvedPressure)
	last := run[len(run)-1]
	behind := float64(last.Behind) >= max(last.TargetRate, 100)
	// Latency growth is judged on the seconds in which messages arrived,
	// outside the scenario's fault windows and the settle time after them
	// (a fault is expected to raise latency), and must be sustained: the
	// median p50 of every quarter after the first at least the previous
	// one's.
	var calm []Sample
	for _, s := range run {
		if s.P50 > 0 && !inWindows(s.Time, faults) {
			calm = append(calm, s)
		}
	}
	var early, late time.Duration
	grows := false
	if q := len(calm) / 4; q > 0 {
		q2, q3, q4 := medianP50(calm[q:2*q]), medianP50(calm[2*q:3*q]), medianP50(calm[len(calm)-q:])
		early, late = q2, q4
		grows = q4 > growthFloor && q4 > growthFactor*q2 && q3 >= q2 && q4 >= q3
	}
	var what []string
	if behind {
		what = append(what, fmt.Sprintf("the producers ended %d messages (%.1f s of the target rate) behind their schedule", last.Behind, float64(last.Behind)/last.TargetRate))
	}
	if grows {
		what = append(what, fmt.Sprintf("end-to-end latency kept growing (median p50 %s in the second quarter of the run, %s in the last)", early.Round(time.Millisecond), late.Round(time.Millisecond)))
	}
	switch {
	case cpuBound && len(what) > 0:
		return []string{fmt.Sprintf("the test rig saturated: kmt's own process used %.1f of %d cores, its goroutines waited %s (p90) for a CPU and the machine's runnable tasks waited for one %.0f%% of the time, while %s; kmt, not the replicator, limited this run (lower the rate or give kmt more CPU)",
			cpu, cores, wait.Round(100*time.Microsecond), 100*pressure, join(what))}, true
	case behind && measured > 0:
		return []string{what[0] + fmt.Sprintf(" while kmt used %.1f of %d cores and got a CPU without waiting (machine CPU pressure %.0f%%): the source cluster did not keep up", cpu, cores, 100*pressure)}, false
	case behind:
		return []string{what[0] + ": the source cluster or the producers' own CPU did not keep up"}, false
	}
	return nil, false
}

// Window is a time interval [From, To).
type Window struct{ From, To time.Time }

// FaultSettle is how long after a fault window latency may stay raised
// without counting as the rig's own growth (see RigCheck).
const FaultSettle = 10 * time.Second

func inWindows(t time.Time, ws []Window) bool {
	for _, w := range ws {
		if !t.Before(w.From) && t.Before(w.To) {
			return true
		}
	}
	return false
}

func medianP50(ss []Sample) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	v := make([]time.Duration, len(ss))
	for i, s := range ss {
		v[i] = s.P50
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func join(parts []string) string {
	if len(parts) == 2 {
		return parts[0] + " and " + parts[1]
	}
	return parts[0]
}

// applyRigCheck adds the rig check's warnings to res and turns a passing
// verdict INCONCLUSIVE when the rig saturated or the consumers could not
// drain the destination (Summary.NotDrained).
func applyRigCheck(res *results.Results, samples []Sample, cores int) {
	var faults []Window
	for _, st := range res.Steps {
		faults = append(faults, Window{From: st.Start, To: st.End.Add(FaultSettle)})
	}
	w, saturated := RigCheck(samples, cores, faults)
	res.Summary.Warnings = append(res.Summary.Warnings, w...)
	if res.Verdict == results.Pass && (saturated || res.Summary.NotDrained > 0) {
		res.Verdict = results.Inconclusive
		res.Summary.Verdict = results.Inconclusive
	}
}
