package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/results"
)

// Workload is implemented by targets that run the traffic themselves (the
// local target). On targets without it (Kubernetes) the fleet runs on its own
// and the controller only observes.
type Workload interface {
	// Start starts producers, replicator and consumers.
	Start(ctx context.Context) error
	// Finish stops the producers cleanly (end markers), waits for the
	// consumers to drain, and returns the reconciled outcome.
	Finish(ctx context.Context) (*Final, error)
}

// Preflighter is implemented by targets whose measurements come from
// elsewhere (Prometheus, the fleet's published accounting). Preflight
// checks that every one can be reached; the Runner calls it before the first
// step and stops the run (exit 2) when it fails: without data there is no
// verdict.
type Preflighter interface {
	Preflight(ctx context.Context) error
}

// Reconciler is implemented by targets that observe a fleet running on its
// own (Kubernetes): Reconcile returns the fleet's exact outcome from its
// published accounting at the end of the run.
type Reconciler interface {
	Reconcile(ctx context.Context, lossGrace time.Duration) (*Final, error)
}

// ErrPreflight wraps a failed preflight check.
var ErrPreflight = errors.New("preflight")

// Final is a run's reconciled outcome as a Workload reports it.
type Final struct {
	Summary       results.Summary
	Anomalies     []results.Anomaly
	AnomalyTotals map[string]uint64
	Latency       []results.Percentile
	// Exact is true when the counts come from reconciling every producer's
	// and consumer's records (local target, or a fleet's published
	// accounting), false when they are sums of metrics.
	Exact bool
	// NoData is true when nothing was measured (no sample at all): the
	// run-wide assertions are NO DATA, never PASS.
	NoData bool
}

// LatencySnapshotter is implemented by targets that keep an exact
// end-to-end latency histogram of every message received (the local target).
// The runner takes a snapshot when each step starts and one after the
// drain, and gives each step (results.Step.Latency) the distribution of the
// messages received from its start until the next step started, or the run
// ended: the step and the recovery that followed it.
type LatencySnapshotter interface {
	// LatencySnapshot returns the cumulative histogram so far, in
	// microseconds.
	LatencySnapshot() *hdrhistogram.Snapshot
}

// Runner runs one scenario on one target.
type Runner struct {
	Target   Target
	Scenario *scenario.Scenario
	// Metrics, when set, exports fault windows and step results.
	Metrics *Metrics
	// Annotator, when set, posts each fault window to Grafana.
	Annotator *Annotator
	// Status receives a live status line each second; nil for none.
	Status io.Writer
	// Interval between samples. Default 1s.
	Interval time.Duration
	// Version is recorded in the results.
	Version string

	mu      sync.Mutex
	marks   []*hdrhistogram.Snapshot // latency at each step's start
	samples []Sample
	current string // current step, for the status line
	start   time.Time
	// measureCPU: the workload runs in this process, so its CPU use is
	// the rig's (see RigCheck); lastCPU is the process CPU time at the
	// previous sample.
	measureCPU bool
	lastCPU    time.Duration
	sched      *schedLatency
	pressure   cpuPressure
}

// ErrAborted is returned when the run was cancelled before it finished.
var ErrAborted = errors.New("scenario aborted")

// Run executes the scenario: start the workload (when the target runs it),
// sample every second, run the steps on their timeline, finish, and evaluate.
// Every injected fault is removed before Run returns, also on abort.
func (r *Runner) Run(ctx context.Context) (*results.Results, error) {
	sc := r.Scenario
	if r.Interval <= 0 {
		r.Interval = time.Second
	}
	faults := make([]Fault, len(sc.Steps))
	for i, st := range sc.Steps {
		f, err := NewFault(st)
		if err != nil {
			return nil, err
		}
		faults[i] = f
	}
	if pf, ok := r.Target.(Preflighter); ok {
		if err := pf.Preflight(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w (no verdict without data; nothing was started)", ErrPreflight, err)
		}
	}
	wl, runsWorkload := r.Target.(Workload)
	r.measureCPU = runsWorkload
	if runsWorkload {
		slog.Info("workload start", "scenario", sc.Name, "target", r.Target.Name())
		if err := wl.Start(ctx); err != nil {
			return nil, fmt.Errorf("start workload: %w", err)
		}
	}
	r.start = time.Now()
	res := &results.Results{
		Version:  r.Version,
		Scenario: sc.Name,
		Started:  r.start,
		Target:   results.Target{Kind: r.Target.Name()},
	}
	sampleCtx, stopSampling := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.sampleLoop(sampleCtx) }()

	stepErr := r.runSteps(ctx, faults, res)
	// Remove whatever is still injected, even on abort.
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := r.Target.Close(cleanup); err != nil {
		slog.Error("fault cleanup failed", "err", err)
	}
	if ctx.Err() == nil && stepErr == nil {
		// Let the workload run to its configured end, and past it while a
		// step's recovery window is still open: a step that ended late
		// (a broker slow to restart) must still see traffic to recover.
		end := r.start.Add(sc.Workload.Duration.D())
		for _, st := range res.Steps {
			if st.Index < 1 || st.Index > len(sc.Steps) {
				continue
			}
			for _, a := range sc.Steps[st.Index-1].Expect {
				if a.Recovers && st.End.Add(a.Within+time.Second).After(end) {
					end = st.End.Add(a.Within + time.Second)
				}
			}
		}
		if rest := time.Until(end); rest > 0 {
			r.setCurrent("steady state")
			select {
			case <-ctx.Done():
			case <-time.After(rest):
			}
		}
	}
	// The drain gets its own bound, counted from now: the wait for the rest
	// of the workload above may have used up the fault cleanup's.
	finish, cancelFinish := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute+sc.Workload.LossGrace.D())
	defer cancelFinish()
	var final *Final
	if runsWorkload {
		r.setCurrent("draining")
		slog.Info("workload finish", "scenario", sc.Name)
		f, err := wl.Finish(finish)
		if err != nil {
			stopSampling()
			wg.Wait()
			return nil, fmt.Errorf("finish workload: %w", err)
		}
		final = f
	} else if rc, ok := r.Target.(Reconciler); ok {
		r.setCurrent("reconciling")
		slog.Info("fleet reconcile", "scenario", sc.Name, "settle", sc.Workload.LossGrace.D())
		f, err := rc.Reconcile(finish, sc.Workload.LossGrace.D())
		if err != nil {
			stopSampling()
			wg.Wait()
			return nil, fmt.Errorf("reconcile the fleet: %w", err)
		}
		final = f
	}
	stopSampling()
	wg.Wait()
	if s, err := r.Target.Sample(finish); err == nil {
		r.record(s)
	}
	res.Ended = time.Now()
	samples := r.snapshot()
	res.Series = Series(samples)
	if final == nil {
		final = finalFromSamples(samples, res.Ended.Sub(r.start))
	}
	res.Summary = final.Summary
	for _, s := range samples {
		res.Summary.BacklogMax = max(res.Summary.BacklogMax, s.Backlog)
		res.Summary.BacklogAgeMaxS = max(res.Summary.BacklogAgeMaxS, s.BacklogAge.Seconds())
	}
	res.Anomalies = final.Anomalies
	res.AnomalyTotals = final.AnomalyTotals
	res.Latency = final.Latency
	r.stepLatency(res)
	Evaluate(sc, res, samples)
	if stepErr == nil && ctx.Err() == nil {
		applyRigCheck(res, samples, runtime.GOMAXPROCS(0))
	}
	if final.NoData {
		for i := range res.Expect {
			res.Expect[i] = noDataAssertion(res.Expect[i].Expr)
		}
		res.Verdict, res.Summary.Verdict = results.Fail, results.Fail
	}
	if r.Metrics != nil {
		for _, st := range res.Steps {
			r.Metrics.Steps.WithLabelValues(strings.ToLower(st.Verdict)).Inc()
		}
	}
	if stepErr != nil {
		res.Verdict = results.Fail
		return res, stepErr
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%w: %v", ErrAborted, context.Cause(ctx))
	}
	return res, nil
}

func (r *Runner) runSteps(ctx context.Context, faults []Fault, res *results.Results) error {
	sc := r.Scenario
	prevEnd := r.start
	for i, st := range sc.Steps {
		at := prevEnd
		if st.At != nil {
			at = r.start.Add(st.At.D())
		} else if st.After != nil {
			at = prevEnd.Add(st.After.D())
		}
		r.setCurrent(fmt.Sprintf("step %d/%d waiting", i+1, len(sc.Steps)))
		if err := sleepUntil(ctx, at); err != nil {
			return nil
		}
		f := faults[i]
		step := results.Step{Index: i + 1, Action: st.Action, Start: time.Now()}
		r.markLatency()
		r.setCurrent(fmt.Sprintf("step %d/%d %s", i+1, len(sc.Steps), f.Describe()))
		slog.Info("fault inject start", "step", i+1, "action", st.Action, "target", r.Target.Name(), "fault", f.Describe())
		r.faultActive(st.Action, 1)
		err := f.Inject(ctx, r.Target)
		step.Description = f.Describe()
		r.setCurrent(fmt.Sprintf("step %d/%d %s", i+1, len(sc.Steps), step.Description))
		if err != nil {
			r.faultActive(st.Action, 0)
			step.End = time.Now()
			step.Error = err.Error()
			step.Verdict = results.Fail
			res.Steps = append(res.Steps, step)
			slog.Error("fault inject failed", "step", i+1, "action", st.Action, "target", r.Target.Name(), "fault", step.Description, "err", err)
			return fmt.Errorf("step %d (%s, line %d): %w", i+1, st.Action, st.Line, err)
		}
		slog.Info("fault inject done", "step", i+1, "action", st.Action, "target", r.Target.Name(), "fault", step.Description)
		hold := st.Duration.D()
		if st.For != nil {
			hold = st.For.D()
		}
		if hold > 0 {
			if err := sleepUntil(ctx, time.Now().Add(hold)); err != nil {
				r.faultActive(st.Action, 0)
				step.End = time.Now()
				res.Steps = append(res.Steps, step)
				return nil
			}
		}
		if st.For != nil {
			slog.Info("fault recover start", "step", i+1, "action", st.Action, "target", r.Target.Name(), "fault", step.Description)
			if err := f.Recover(ctx, r.Target); err != nil {
				r.faultActive(st.Action, 0)
				step.End = time.Now()
				step.Error = "recover: " + err.Error()
				step.Verdict = results.Fail
				res.Steps = append(res.Steps, step)
				return fmt.Errorf("step %d (%s, line %d) recover: %w", i+1, st.Action, st.Line, err)
			}
			slog.Info("fault recover done", "step", i+1, "action", st.Action, "target", r.Target.Name(), "fault", step.Description)
		}
		r.faultActive(st.Action, 0)
		step.End = time.Now()
		prevEnd = step.End
		if r.Annotator != nil {
			if err := r.Annotator.Annotate(ctx, step.Start, step.End, step.Description, st.Action); err != nil {
				slog.Warn("grafana annotation failed", "step", i+1, "err", err)
			}
		}
		res.Steps = append(res.Steps, step)
	}
	return nil
}

// markLatency records the target's latency histogram at a step's start.
func (r *Runner) markLatency() {
	if ls, ok := r.Target.(LatencySnapshotter); ok {
		r.marks = append(r.marks, ls.LatencySnapshot())
	}
}

// stepLatency fills each step's latency curve from the marks: from its
// start to the next step's start, the last one to now (after the drain).
func (r *Runner) stepLatency(res *results.Results) {
	ls, ok := r.Target.(LatencySnapshotter)
	if !ok || len(r.marks) != len(res.Steps) {
		return
	}
	end := ls.LatencySnapshot()
	for i := range res.Steps {
		to := end
		if i+1 < len(r.marks) {
			to = r.marks[i+1]
		}
		curve := latency.CurveBetween(r.marks[i], to)
		if curve[len(curve)-1] == 0 {
			continue // nothing arrived in the window
		}
		for j, v := range curve {
			res.Steps[i].Latency = append(res.Steps[i].Latency, results.Percentile{
				Percentile: latency.CurvePercentiles[j], ValueMs: float64(v) / float64(time.Millisecond)})
		}
	}
}

func (r *Runner) faultActive(action string, v float64) {
	if r.Metrics != nil {
		r.Metrics.FaultActive.WithLabelValues(action, r.Target.Name()).Set(v)
	}
}

func (r *Runner) setCurrent(s string) {
	r.mu.Lock()
	r.current = s
	r.mu.Unlock()
}

// record fills s's replication backlog from the samples so far, exports
// it, and keeps s. It returns s as kept.
func (r *Runner) record(s Sample) Sample {
	r.mu.Lock()
	if r.measureCPU {
		if r.sched == nil {
			r.sched = newSchedLatency()
		}
		s.SchedLatency = r.sched.p90()
		s.CPUPressure, _ = r.pressure.share(s.Time)
		if cpu, ok := processCPU(); ok {
			if n := len(r.samples); n > 0 {
				if dt := s.Time.Sub(r.samples[n-1].Time); dt > 0 {
					s.CPU = float64(cpu-r.lastCPU) / float64(dt)
				}
			}
			r.lastCPU = cpu
		}
	}
	FillBacklog(&s, r.samples)
	r.samples = append(r.samples, s)
	r.mu.Unlock()
	if r.Metrics != nil {
		r.Metrics.Backlog.Set(float64(s.Backlog))
		r.Metrics.BacklogAge.Set(s.BacklogAge.Seconds())
	}
	return s
}

func (r *Runner) snapshot() []Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Sample(nil), r.samples...)
}

func (r *Runner) sampleLoop(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	var prev *Sample
	for {
		s, err := r.Target.Sample(ctx)
		if err == nil {
			s = r.record(s)
			if r.Status != nil {
				r.mu.Lock()
				cur := r.current
				r.mu.Unlock()
				fmt.Fprintln(r.Status, StatusLine(s, prev, r.start, cur))
			}
			prev = &s
		} else if ctx.Err() == nil {
			slog.Warn("sample failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// StatusLine formats one live status line: elapsed time, the current step,
// the produce rate against the target, the replicated rate (unique messages
// received at the destination), the end-to-end latency percentiles of the
// last interval, the replication backlog and the running counts:
//
//	t=02:10  step 3/6 kill broker source-1  produce 9.9k/s (target 10.0k/s)  replicated 9.8k/s  e2e p50 3.1ms p99 42ms p99.9 80ms  backlog 120 (oldest 0.2s)  lost 0  dup 0  reord 0  foreign 0
//
// When no message arrived in the interval (a WAN cut, a stall) there are no
// percentiles to show: the line says so instead, with the age of the oldest
// message still in flight (the replication backlog's age), so an outage
// never reads as perfect latency:
//
//	t=02:40  step 4/6 network cut  produce 10.0k/s (target 10.0k/s)  replicated 0/s  e2e no message arrived, oldest in flight 12.3s  backlog 123k (oldest 12.3s)  lost 0  ...
//
// Rates need the previous sample (nil: 0/s, and a first sample with nothing
// received counts as nothing arrived).
func StatusLine(s Sample, prev *Sample, start time.Time, current string) string {
	el := s.Time.Sub(start).Round(time.Second)
	var produce, replicated float64
	arrived := s.Received > 0
	if prev != nil {
		arrived = s.Received != prev.Received // a counter that went back (a restarted target) cannot tell: assume it did
		if dt := s.Time.Sub(prev.Time).Seconds(); dt > 0 {
			produce = float64(s.Produced-min(prev.Produced, s.Produced)) / dt
			replicated = float64(s.Received-min(prev.Received, s.Received)) / dt
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "t=%02d:%02d", int(el.Minutes()), int(el.Seconds())%60)
	if current != "" {
		fmt.Fprintf(&b, "  %s", current)
	}
	fmt.Fprintf(&b, "  produce %s/s (target %s/s)  replicated %s/s", human(produce), human(s.TargetRate), human(replicated))
	switch {
	case arrived:
		fmt.Fprintf(&b, "  e2e p50 %s p99 %s p99.9 %s", latencyString(s.P50), latencyString(s.P99), latencyString(s.P999))
	case s.Backlog > 0:
		fmt.Fprintf(&b, "  e2e no message arrived, oldest in flight %s", ageString(s.BacklogAge))
	default:
		b.WriteString("  e2e no message arrived")
	}
	fmt.Fprintf(&b, "  backlog %s", human(float64(s.Backlog)))
	if s.Backlog > 0 {
		fmt.Fprintf(&b, " (oldest %s)", ageString(s.BacklogAge))
	}
	fmt.Fprintf(&b, "  lost %d  dup %d  reord %d  foreign %d", s.Lost, s.Duplicated, s.Reordered, s.Foreign)
	return b.String()
}

// ageString formats an age for the status line with a tenth of a second:
// "0.0s", "12.3s", "3m05s" from ten minutes on.
func ageString(d time.Duration) string {
	if d < 10*time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}

// latencyString formats a latency for the status line: "0.4ms", "42ms",
// "1.25s".
func latencyString(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// human formats a rate compactly: "999", "1.0k", "12.3k", "1.2M" (values
// that would round up to the next unit's 1.0 are shown in it).
func human(v float64) string {
	switch {
	case v >= 999.95e3:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 999.5:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
