package report

import (
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot/plotter"

	"github.com/kmtproject/kmt/internal/results"
)

// maxChartPoints bounds the points drawn per curve; longer series are
// reduced by buckets (rates averaged, latency and lag maxima, cumulative
// counts last), so a day-long run draws as fast as a minute-long one.
const maxChartPoints = 1200

// maxRangesShown bounds the sequence ranges listed per anomaly row.
const maxRangesShown = 8

// page is the view of one run that the HTML and Markdown templates render.
type page struct {
	Title        string
	Verdict      string
	VerdictClass string
	Facts        []fact
	TimeCharts   []*chart
	NoSeries     bool
	Distribution *chart
	Steps        []stepView
	Anomalies    []anomalyView
	AnomalyNote  string
	Totals       []fact
	// Summary is the summary table in two parts shown side by side:
	// message counts, then throughput and latency.
	Summary [][]summaryRow
}

func (p *page) allCharts() []*chart {
	out := slices.Clone(p.TimeCharts)
	if p.Distribution != nil {
		out = append(out, p.Distribution)
	}
	return out
}

// fact is a named value in a header or totals list.
type fact struct {
	Name, Value string
}

type summaryRow struct {
	Name, Value, Class string
}

type stepView struct {
	Index                               int
	Action, Description                 string
	Window, Wall, Duration              string
	Verdict, VerdictClass, Error        string
	Assertions                          []assertionView
	RecoveryThroughput, RecoveryLatency string
}

type assertionView struct {
	Expr, Measured, Result, Class string
}

type anomalyView struct {
	Kind, Topic, Producer, Run, Key, Count, Where, Ranges string
}

func buildPage(r *results.Results, o options) (*page, error) {
	t0 := origin(r)
	pg := &page{
		Title:        "kmt run report",
		Verdict:      verdictText(r.Verdict),
		VerdictClass: verdictClass(r.Verdict),
		Facts:        runFacts(r, t0),
		Steps:        stepViews(r, t0),
		Summary:      summaryRows(r),
	}
	if r.Scenario != "" {
		pg.Title += ": " + r.Scenario
	}
	bands, bandLegend, caption := stepBands(r.Steps, t0, bandStyle{Fill: colBandOK, Text: colLabelOK, ByVerdict: true})
	if len(r.Series) == 0 {
		pg.NoSeries = true
	} else {
		pts := chartPoints(r)
		end := t0
		if len(r.Series) > 0 {
			end = r.Series[len(r.Series)-1].T
		}
		for _, spec := range timeCharts(pts, t0) {
			spec.Bands, spec.BandLegend = bands, bandLegend
			spec.Caption = joinSentences(spec.Caption, caption)
			var kind string
			switch spec.File {
			case "chart-throughput.png":
				kind = "throughput"
			case "chart-latency.png":
				kind = "latency"
			}
			if rb, rl, rc := recoveryBands(r.Steps, t0, end, kind); len(rb) > 0 {
				spec.Bands = append(slices.Clone(spec.Bands), rb...)
				spec.BandLegend = append(slices.Clone(spec.BandLegend), rl...)
				spec.Caption = joinSentences(spec.Caption, rc)
			}
			c, err := render(spec, o.width, o.height)
			if err != nil {
				return nil, err
			}
			pg.TimeCharts = append(pg.TimeCharts, c)
		}
	}
	if spec, ok := distributionChart(r); ok {
		c, err := render(spec, o.width, o.height)
		if err != nil {
			return nil, err
		}
		pg.Distribution = c
	}
	pg.Anomalies, pg.Totals, pg.AnomalyNote = anomalyViews(r, o.maxAnomalies)
	return pg, nil
}

// origin is the instant charts count elapsed time from.
func origin(r *results.Results) time.Time {
	switch {
	case !r.Started.IsZero():
		return r.Started
	case len(r.Series) > 0:
		return r.Series[0].T
	case len(r.Steps) > 0:
		return r.Steps[0].Start
	}
	return time.Time{}
}

func verdictText(v string) string {
	if v == "" {
		return "UNKNOWN"
	}
	return v
}

func verdictClass(v string) string {
	switch v {
	case results.Pass:
		return "pass"
	case results.Fail:
		return "fail"
	case results.Inconclusive:
		return "inconclusive"
	}
	return "unknown"
}

func runFacts(r *results.Results, t0 time.Time) []fact {
	var f []fact
	if r.Scenario != "" {
		f = append(f, fact{"Scenario", r.Scenario})
	}
	if !r.Started.IsZero() {
		f = append(f, fact{"Started", fmtWall(r.Started)})
	}
	f = append(f, fact{"Duration", fmtDuration(runDuration(r))})
	f = append(f, fact{"Target", targetText(r.Target)})
	w := r.Workload
	if len(w.Topics) > 0 || w.Partitions > 0 {
		f = append(f, fact{"Topics", fmt.Sprintf("%s (%d partitions each)", strings.Join(w.Topics, ", "), w.Partitions)})
	}
	if w.Rate > 0 {
		f = append(f, fact{"Rate", fmtNumber(w.Rate) + " msg/s"})
	}
	if w.MessageSize > 0 {
		f = append(f, fact{"Message size", strconv.Itoa(w.MessageSize) + " B"})
	}
	f = append(f, fact{"Producers / consumers", fmt.Sprintf("%d / %d", w.Producers, w.Consumers)})
	enc := "in-body (producer;seq;time;payload)"
	if w.Headers {
		enc = "record headers"
	}
	f = append(f, fact{"Message identity", enc})
	if w.Duration > 0 {
		f = append(f, fact{"Planned duration", fmtDuration(w.Duration)})
	}
	version := r.Version
	if version == "" {
		version = "unknown"
	}
	f = append(f, fact{"kmt version", version})
	return f
}

func runDuration(r *results.Results) time.Duration {
	if r.Summary.DurationS > 0 {
		return time.Duration(r.Summary.DurationS * float64(time.Second))
	}
	if !r.Started.IsZero() && r.Ended.After(r.Started) {
		return r.Ended.Sub(r.Started)
	}
	return 0
}

func targetText(t results.Target) string {
	kind := t.Kind
	if kind == "" {
		kind = "unknown"
	}
	var parts []string
	if t.Source != "" {
		parts = append(parts, "source "+t.Source)
	}
	if t.Destination != "" {
		parts = append(parts, "destination "+t.Destination)
	}
	if len(parts) == 0 {
		return kind
	}
	return kind + " (" + strings.Join(parts, ", ") + ")"
}

// bandStyle is how a run's step windows are drawn.
type bandStyle struct {
	// Prefix goes before each label (the run's name in a comparison).
	Prefix string
	// Fill and Text colour the windows and their labels.
	Fill, Text color.Color
	// ByVerdict gives failing steps a red fill and label.
	ByVerdict bool
	// Outline draws dashed edges in Text's colour instead of a fill.
	Outline bool
	// Group is the band label group (see band.Group).
	Group int
}

// stepBands turns steps into windows for the time charts, with their legend
// entries and a caption sentence listing them.
func stepBands(steps []results.Step, t0 time.Time, st bandStyle) ([]band, []legendSwatch, string) {
	var bands []band
	var windows []string
	anyOK, anyBad := false, false
	for _, s := range steps {
		if s.Start.IsZero() {
			continue
		}
		x0 := s.Start.Sub(t0).Seconds()
		x1 := x0
		if s.End.After(s.Start) {
			x1 = s.End.Sub(t0).Seconds()
		}
		label := st.Prefix + stepLabel(s)
		b := band{X0: x0, X1: x1, Label: label, Short: "#" + strconv.Itoa(s.Index), Fill: st.Fill, Text: st.Text, Outline: st.Outline, Group: st.Group}
		if st.ByVerdict && s.Verdict == results.Fail {
			b.Fill, b.Text = colBandBad, colLabelBd
			anyBad = true
		} else {
			anyOK = true
		}
		bands = append(bands, b)
		windows = append(windows, fmt.Sprintf("%s %s–%s", label, fmtElapsedSeconds(x0), fmtElapsedSeconds(x1)))
	}
	var legend []legendSwatch
	if anyOK {
		sw := legendSwatch{Name: st.Prefix + "step window", Fill: st.Fill}
		if st.Outline {
			sw.Outline = st.Text
		}
		legend = append(legend, sw)
	}
	if anyBad {
		legend = append(legend, legendSwatch{Name: st.Prefix + "failed step", Fill: colBandBad})
	}
	caption := ""
	if len(windows) > 0 {
		caption = "Shaded step windows: " + strings.Join(windows, "; ") + "."
	}
	return bands, legend, caption
}

// recoveryBands marks, as dashed outlines after the step windows, the
// intervals the steps' recovery assertions of kind ("throughput" or
// "latency") judged: from the step's end until the condition held again, or
// until end when it never did. Green when the assertion passed, red when
// not; the caption says how long each took.
func recoveryBands(steps []results.Step, t0, end time.Time, kind string) ([]band, []legendSwatch, string) {
	var bands []band
	var words []string
	anyOK, anyBad := false, false
	for _, s := range steps {
		for _, rc := range s.Recoveries {
			if (kind == "throughput") != (rc.Metric == "throughput") || kind == "" {
				continue
			}
			x0 := s.End.Sub(t0).Seconds()
			x1 := end.Sub(t0).Seconds()
			text := fmt.Sprintf("#%d %s: no recovery by the end of the run (bound %s)", s.Index, rc.Metric, rc.Within)
			label := fmt.Sprintf("#%d no recovery", s.Index)
			if rc.Recovered {
				x1 = x0 + rc.After.Seconds()
				text = fmt.Sprintf("#%d %s recovered %s after the step (bound %s)", s.Index, rc.Metric, rc.After.Round(100*time.Millisecond), rc.Within)
				label = fmt.Sprintf("#%d recovery %s", s.Index, rc.After.Round(100*time.Millisecond))
			}
			col := colGreen
			if rc.Pass {
				anyOK = true
			} else {
				col, anyBad = colCrimson, true
			}
			bands = append(bands, band{X0: x0, X1: max(x1, x0), Label: label, Short: "#" + strconv.Itoa(s.Index), Text: col, Outline: true, Group: 1})
			words = append(words, text)
		}
	}
	var legend []legendSwatch
	if anyOK {
		legend = append(legend, legendSwatch{Name: "recovery (passed)", Outline: colGreen})
	}
	if anyBad {
		legend = append(legend, legendSwatch{Name: "recovery (failed)", Outline: colCrimson})
	}
	caption := ""
	if len(words) > 0 {
		caption = "Dashed outlines: the recovery interval each verdict judged, from the step's end: " + strings.Join(words, "; ") + "."
	}
	return bands, legend, caption
}

// stepLabel is how a step is named on charts and in tables: "#2 kill-broker".
func stepLabel(s results.Step) string {
	return fmt.Sprintf("#%d %s", s.Index, s.Action)
}

func joinSentences(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}

// chartPoints returns the run's series as the time charts draw it:
// partial intervals fixed (see rateIntervals), then reduced to at most
// maxChartPoints.
func chartPoints(r *results.Results) []results.Point {
	return reduce(rateIntervals(r), maxChartPoints)
}

// rateIntervals returns a copy of r.Series whose rates never show a partial
// interval as a drop: the first point has no interval before it (its rates
// are NaN, drawn as nothing rather than a 0 that looks like an outage).
// When kmt ran the workload itself (the local target) and stopped the
// producers, the interval the stop falls in has its produced rate scaled to
// the part before the stop (or dropped when that part is under half the
// interval), and the target and produced rates after the stop are NaN: the
// producers were stopped, not failing. The replicated rate is kept: the
// drain after the stop is real.
func rateIntervals(r *results.Results) []results.Point {
	pts := slices.Clone(r.Series)
	if len(pts) == 0 {
		return pts
	}
	nan := math.NaN()
	pts[0].TargetRate, pts[0].ProducedRate, pts[0].ReplicatedRate = nan, nan, nan
	if r.Target.Kind != "local" || r.Workload.Duration <= 0 || r.Started.IsZero() {
		return pts
	}
	stop := r.Started.Add(r.Workload.Duration)
	for _, s := range r.Steps {
		if s.End.After(stop) {
			stop = s.End
		}
	}
	for i := 1; i < len(pts); i++ {
		from, to := pts[i-1].T, pts[i].T
		switch {
		case !to.After(stop):
		case !from.Before(stop):
			pts[i].TargetRate, pts[i].ProducedRate = nan, nan
		default:
			if f := stop.Sub(from).Seconds() / to.Sub(from).Seconds(); f >= 0.5 {
				pts[i].ProducedRate /= f
			} else {
				pts[i].TargetRate, pts[i].ProducedRate = nan, nan
			}
		}
	}
	return pts
}

// meanFinite is the mean of the finite values of f over pts, NaN when none.
func meanFinite(pts []results.Point, f func(results.Point) float64) float64 {
	var sum float64
	n := 0
	for _, p := range pts {
		if v := f(p); !math.IsNaN(v) && !math.IsInf(v, 0) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// reduce returns pts unchanged when short, else one point per bucket.
func reduce(pts []results.Point, n int) []results.Point {
	if len(pts) <= n {
		return pts
	}
	size := (len(pts) + n - 1) / n
	out := make([]results.Point, 0, n)
	for lo := 0; lo < len(pts); lo += size {
		hi := min(lo+size, len(pts))
		b := pts[lo:hi]
		q := b[len(b)-1] // cumulative counts: last
		q.T = b[0].T
		q.TargetRate = meanFinite(b, func(p results.Point) float64 { return p.TargetRate })
		q.ProducedRate = meanFinite(b, func(p results.Point) float64 { return p.ProducedRate })
		q.ReplicatedRate = meanFinite(b, func(p results.Point) float64 { return p.ReplicatedRate })
		q.P50Ms, q.P99Ms, q.P999Ms, q.Lag, q.InFlight = b[0].P50Ms, b[0].P99Ms, b[0].P999Ms, b[0].Lag, b[0].InFlight
		q.Backlog, q.BacklogAgeS = b[0].Backlog, b[0].BacklogAgeS
		for _, p := range b {
			q.P50Ms = math.Max(q.P50Ms, p.P50Ms)
			q.P99Ms = math.Max(q.P99Ms, p.P99Ms)
			q.P999Ms = math.Max(q.P999Ms, p.P999Ms)
			q.Lag = max(q.Lag, p.Lag)
			q.InFlight = max(q.InFlight, p.InFlight)
			q.Backlog = max(q.Backlog, p.Backlog)
			q.BacklogAgeS = math.Max(q.BacklogAgeS, p.BacklogAgeS)
		}
		out = append(out, q)
	}
	return out
}

// curve extracts one value per point as a function of elapsed seconds.
func curve(pts []results.Point, t0 time.Time, f func(results.Point) float64) plotter.XYs {
	xy := make(plotter.XYs, len(pts))
	for i, p := range pts {
		xy[i] = plotter.XY{X: p.T.Sub(t0).Seconds(), Y: f(p)}
	}
	return xy
}

// latencyOf returns f(p), or NaN for a second in which nothing was measured.
func latencyOf(f func(results.Point) float64) func(results.Point) float64 {
	return func(p results.Point) float64 {
		if p.P50Ms == 0 && p.P99Ms == 0 && p.P999Ms == 0 {
			return math.NaN()
		}
		return f(p)
	}
}

const elapsedLabel = "time since start (m:ss)"

func timeCharts(pts []results.Point, t0 time.Time) []chartSpec {
	return []chartSpec{
		{
			File: "chart-throughput.png", Title: "Throughput: produced vs target and replicated",
			XLabel: elapsedLabel, YLabel: "messages/s",
			Caption: "Messages per second: the producers' target rate, what they produced (acked), and what the consumers received in the destination.",
			Series: []series{
				{Name: "target", Color: colGrey, Dashes: dashed, XY: curve(pts, t0, func(p results.Point) float64 { return p.TargetRate })},
				{Name: "produced", Color: colBlue, XY: curve(pts, t0, func(p results.Point) float64 { return p.ProducedRate })},
				{Name: "replicated", Color: colGreen, XY: curve(pts, t0, func(p results.Point) float64 { return p.ReplicatedRate })},
			},
		},
		{
			File: "chart-latency.png", Title: "End-to-end latency",
			XLabel: elapsedLabel, YLabel: "latency (ms)", AutoLog: true,
			Caption: "Producer create time to consumer receive time, per second; gaps are seconds in which nothing arrived. The axis turns logarithmic when values span more than 50x.",
			Series: []series{
				{Name: "p50", Color: colGreen, XY: curve(pts, t0, latencyOf(func(p results.Point) float64 { return p.P50Ms }))},
				{Name: "p99", Color: colBlue, XY: curve(pts, t0, latencyOf(func(p results.Point) float64 { return p.P99Ms }))},
				{Name: "p99.9", Color: colPurple, XY: curve(pts, t0, latencyOf(func(p results.Point) float64 { return p.P999Ms }))},
			},
		},
		{
			File: "chart-anomalies.png", Title: "Lost, duplicated and reordered (cumulative)",
			XLabel: elapsedLabel, YLabel: "messages", Counts: true,
			Caption: "Running totals of acked messages declared lost, delivered more than once, and delivered out of order. A clean run stays at zero.",
			Series: []series{
				{Name: "lost", Color: colCrimson, Width: 2.2, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.Lost) })},
				{Name: "duplicated", Color: colOrange, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.Duplicated) })},
				{Name: "reordered", Color: colPurple, Dashes: dashed, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.Reordered) })},
			},
		},
		{
			File: "chart-lag.png", Title: "Replication backlog, consumer lag and in-flight messages",
			XLabel: elapsedLabel, YLabel: "messages", Counts: true,
			Caption: "Replication backlog: messages acknowledged on the source and not yet in the destination (it grows during an outage). Lag: messages in the destination not yet consumed. In flight: missing messages still within the loss grace period.",
			Series: []series{
				{Name: "replication backlog", Color: colOrange, Width: 2.2, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.Backlog) })},
				{Name: "consumer lag", Color: colBlue, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.Lag) })},
				{Name: "in flight", Color: colRed, XY: curve(pts, t0, func(p results.Point) float64 { return float64(p.InFlight) })},
			},
		},
	}
}

// percentileCurve turns a latency distribution into chart points; the 100th
// percentile (the maximum) goes at maxAt.
func percentileCurve(ps []results.Percentile, maxAt float64) plotter.XYs {
	xy := make(plotter.XYs, 0, len(ps))
	for _, p := range ps {
		x := percentileX(p.Percentile)
		if p.Percentile >= 100 {
			x = maxAt
		}
		xy = append(xy, plotter.XY{X: x, Y: p.ValueMs})
	}
	slices.SortStableFunc(xy, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
	return xy
}

const distributionCaption = "The percentile axis is logarithmic in 1/(1-p), so the tail gets room: 90%, 99%, 99.9%, 99.99%; the last mark is the maximum."

func distributionChart(r *results.Results) (chartSpec, bool) {
	spec := chartSpec{
		File: "chart-latency-distribution.png", Title: "End-to-end latency distribution, overall and per step",
		XLabel: "percentile", YLabel: "latency (ms)", X: axisPercentile, AutoLog: true,
		Caption: "Latency at each percentile (HdrHistogram), over the whole run and during each step. " + distributionCaption,
	}
	curves := [][]results.Percentile{r.Latency}
	for _, s := range r.Steps {
		curves = append(curves, s.Latency)
	}
	xmax, maxAt := percentileAxis(curves...)
	if len(r.Latency) > 0 {
		spec.Series = append(spec.Series, series{Name: "whole run", Color: colBlack, Width: 2.4, XY: percentileCurve(r.Latency, maxAt)})
	}
	i := 0
	for _, s := range r.Steps {
		if len(s.Latency) == 0 {
			continue
		}
		spec.Series = append(spec.Series, series{Name: stepLabel(s), Color: palette[i%len(palette)], XY: percentileCurve(s.Latency, maxAt)})
		i++
	}
	if len(spec.Series) == 0 {
		return spec, false
	}
	spec.XMin, spec.XMax, spec.MaxAt = 0, xmax, maxAt
	return spec, true
}

// percentileAxis returns the end of the percentile axis (at least 99.99%,
// and the decade of the highest percentile below 100 measured) and, when a
// curve has the 100th percentile, the position one decade further where the
// maximum is drawn (else 0).
func percentileAxis(curves ...[]results.Percentile) (xmax, maxAt float64) {
	hi, hasMax := 4.0, false
	for _, c := range curves {
		for _, p := range c {
			if p.Percentile >= 100 {
				hasMax = true
				continue
			}
			hi = math.Max(hi, math.Ceil(percentileX(p.Percentile)-1e-9))
		}
	}
	if hasMax {
		return hi + 1, hi + 1
	}
	return hi, 0
}

func stepViews(r *results.Results, t0 time.Time) []stepView {
	var out []stepView
	for _, s := range r.Steps {
		v := stepView{
			Index:              s.Index,
			Action:             s.Action,
			Description:        s.Description,
			Window:             fmtElapsedAt(s.Start, t0) + " → " + fmtElapsedAt(s.End, t0),
			Wall:               fmtClock(s.Start) + " → " + fmtClock(s.End) + " UTC",
			Verdict:            verdictText(s.Verdict),
			VerdictClass:       verdictClass(s.Verdict),
			Error:              s.Error,
			RecoveryThroughput: fmtRecovery(s.RecoveryThroughput),
			RecoveryLatency:    fmtRecovery(s.RecoveryLatency),
		}
		if !s.Start.IsZero() && s.End.After(s.Start) {
			v.Duration = fmtDuration(s.End.Sub(s.Start))
		} else {
			v.Duration = "—"
		}
		for _, a := range s.Assertions {
			av := assertionView{Expr: a.Expr, Measured: measured(a), Result: "PASS", Class: "pass"}
			switch {
			case a.NoData:
				av.Result, av.Class = results.NoData, "unknown"
			case !a.Pass:
				av.Result, av.Class = "FAIL", "fail"
			}
			v.Assertions = append(v.Assertions, av)
		}
		if len(v.Assertions) == 0 {
			v.Assertions = []assertionView{{Expr: "(no assertions)", Measured: "—", Result: "—"}}
		}
		out = append(out, v)
	}
	return out
}

func measured(a results.Assertion) string {
	if a.Measured != "" {
		return a.Measured
	}
	return trimFloat(a.Value)
}

// fmtElapsedAt formats t as time since t0: +1:05.
func fmtElapsedAt(t, t0 time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return "+" + fmtElapsedSeconds(t.Sub(t0).Seconds())
}

// fmtClock formats t as a UTC wall clock time: 15:04:05.
func fmtClock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04:05")
}

func fmtRecovery(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return fmtDuration(d)
}

// anomalyKinds orders anomaly kinds in tables.
var anomalyKinds = []string{"lost", "duplicated", "reordered", "late", "never_acked"}

func kindRank(k string) int {
	if i := slices.Index(anomalyKinds, k); i >= 0 {
		return i
	}
	return len(anomalyKinds)
}

func anomalyViews(r *results.Results, limit int) ([]anomalyView, []fact, string) {
	totals := r.AnomalyTotals
	if totals == nil {
		totals = map[string]uint64{}
		for _, a := range r.Anomalies {
			totals[a.Kind] += a.Count
		}
	}
	kinds := make([]string, 0, len(totals))
	for k := range totals {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		return cmp.Or(cmp.Compare(kindRank(a), kindRank(b)), strings.Compare(a, b))
	})
	var tf []fact
	for _, k := range kinds {
		tf = append(tf, fact{strings.ReplaceAll(k, "_", " "), fmtCount(totals[k])})
	}
	var views []anomalyView
	for i, a := range r.Anomalies {
		if i == limit {
			break
		}
		views = append(views, anomalyView{
			Kind:     strings.ReplaceAll(a.Kind, "_", " "),
			Topic:    a.Stream.Topic,
			Producer: a.Stream.Producer,
			Run:      a.Stream.Run,
			Key:      strconv.FormatUint(uint64(a.Stream.Key), 10),
			Count:    fmtCount(a.Count),
			Where:    cmp.Or(a.Where, "—"),
			Ranges:   rangesText(a),
		})
	}
	note := ""
	switch {
	case len(r.Anomalies) == 0 && len(kinds) == 0:
		note = "No anomalies recorded: no stream lost, duplicated or reordered a message."
	case len(r.Anomalies) == 0:
		note = "Per-stream records were not kept; totals only."
	case len(r.Anomalies) > limit:
		note = fmt.Sprintf("Showing the first %d of %d per-stream records; the totals cover every stream.", limit, len(r.Anomalies))
	default:
		note = fmt.Sprintf("%d per-stream records.", len(r.Anomalies))
	}
	return views, tf, note
}

func rangesText(a results.Anomaly) string {
	if len(a.Ranges) == 0 {
		return "—"
	}
	parts := make([]string, 0, min(len(a.Ranges), maxRangesShown)+1)
	for i, rg := range a.Ranges {
		if i == maxRangesShown {
			parts = append(parts, fmt.Sprintf("… +%d more", len(a.Ranges)-maxRangesShown))
			break
		}
		parts = append(parts, rg.String())
	}
	return strings.Join(parts, ", ")
}

func summaryRows(r *results.Results) [][]summaryRow {
	s := r.Summary
	bad := func(v uint64) string {
		if v > 0 {
			return "bad"
		}
		return ""
	}
	rows := []summaryRow{
		{"Verdict", verdictText(s.Verdict), verdictClass(s.Verdict)},
	}
	for _, w := range s.Warnings {
		rows = append(rows, summaryRow{"Warning", w, "bad"})
	}
	rows = append(rows, []summaryRow{
		{"Duration", fmtDuration(time.Duration(s.DurationS * float64(time.Second))), ""},
		{"Produced", fmtCount(s.Produced), ""},
		{"Acked", fmtCount(s.Acked), ""},
		{"Produce errors", fmtCount(s.ProduceErrors), bad(s.ProduceErrors)},
		{"Received (unique)", fmtCount(s.Received), ""},
		{"Lost", fmtCount(s.Lost), bad(s.Lost)},
		{"Duplicated", fmtCount(s.Duplicated), bad(s.Duplicated)},
		{"Reordered", fmtCount(s.Reordered), bad(s.Reordered)},
		{"Late (after declared lost)", fmtCount(s.Late), bad(s.Late)},
		{"Foreign records", fmtCount(s.Foreign), bad(s.Foreign)},
		{"Unacked but delivered", fmtCount(s.UnackedDelivered), ""},
		{"Never acked", fmtCount(s.NeverAcked), bad(s.NeverAcked)},
		{"Throughput", fmtNumber(s.ThroughputMsgsPerS) + " msg/s", ""},
		{"Replication backlog (peak)", fmtCount(uint64(max(s.BacklogMax, 0))) + " msgs", ""},
		{"Oldest unreplicated message (peak age)", fmtDuration(time.Duration(s.BacklogAgeMaxS * float64(time.Second))), ""},
		{"Latency p50", fmtMs(s.LatencyMs.P50), ""},
		{"Latency p90", fmtMs(s.LatencyMs.P90), ""},
		{"Latency p99", fmtMs(s.LatencyMs.P99), ""},
		{"Latency p99.9", fmtMs(s.LatencyMs.P999), ""},
		{"Latency max", fmtMs(s.LatencyMs.Max), ""},
		{"Created in the future (clock skew)", fmtCount(s.LatencyFuture), bad(s.LatencyFuture)},
		{"Older than 1 h (latency capped)", fmtCount(s.LatencyOverCap), bad(s.LatencyOverCap)},
	}...)
	if s.NotDrained > 0 {
		i := slices.IndexFunc(rows, func(r summaryRow) bool { return r.Name == "Never acked" })
		rows = slices.Insert(rows, i+1, summaryRow{"Not drained (left unread in the destination)", fmtCount(s.NotDrained), "bad"})
	}
	if s.Verdict == "" {
		rows[0].Value, rows[0].Class = verdictText(r.Verdict), verdictClass(r.Verdict)
	}
	split := slices.IndexFunc(rows, func(r summaryRow) bool { return r.Name == "Throughput" })
	return [][]summaryRow{rows[:split], rows[split:]}
}

// fmtCount formats n with thousands separators: 1,234,567.
func fmtCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// fmtNumber formats a rate: whole numbers with separators, else one decimal.
func fmtNumber(v float64) string {
	if v >= 0 && v < 1e15 && v == math.Trunc(v) {
		return fmtCount(uint64(v))
	}
	if v >= 100 {
		return fmtCount(uint64(math.Round(v)))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// fmtMs formats milliseconds with precision that suits the magnitude.
func fmtMs(v float64) string {
	prec := 0
	switch a := math.Abs(v); {
	case a < 10:
		prec = 2
	case a < 100:
		prec = 1
	}
	return strconv.FormatFloat(v, 'f', prec, 64) + " ms"
}

// fmtDuration rounds d for reading: 850ms, 12.3s, 5m0s.
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func fmtWall(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
