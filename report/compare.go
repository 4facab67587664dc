package report

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// Row classes of a comparison: B is worse or better than A. Changes smaller
// than changeThresholdPct percent of latency or throughput stay unmarked.
const (
	classWorse         = "worse"
	classBetter        = "better"
	changeThresholdPct = 10
)

// comparison is the view that the compare templates render.
type comparison struct {
	Title          string
	LabelA, LabelB string
	VerdictA       string
	VerdictB       string
	ClassA, ClassB string
	Facts          []compareRow
	Rows           []compareRow
	Charts         []*chart
	Steps          []stepCompare
}

// compareRow is one metric of both runs; Class marks B worse or better.
type compareRow struct {
	Metric, A, B, Change, Class string
}

type stepCompare struct {
	Index                    string
	ActionA, ActionB         string
	VerdictA, VerdictB       string
	ClassA, ClassB           string
	AssertionsA, AssertionsB []assertionView
	RecoveryA, RecoveryB     string
	Class                    string
}

func buildComparison(a, b *results.Results, o options) (*comparison, error) {
	cp := &comparison{
		Title:    fmt.Sprintf("kmt comparison: %s vs %s", o.labelA, o.labelB),
		LabelA:   o.labelA,
		LabelB:   o.labelB,
		VerdictA: verdictText(a.Verdict),
		VerdictB: verdictText(b.Verdict),
		ClassA:   verdictClass(a.Verdict),
		ClassB:   verdictClass(b.Verdict),
		Facts:    compareFacts(a, b),
		Rows:     compareSummary(a, b),
		Steps:    compareSteps(a, b),
	}
	for _, spec := range compareCharts(a, b, o) {
		c, err := render(spec, o.width, o.height)
		if err != nil {
			return nil, err
		}
		cp.Charts = append(cp.Charts, c)
	}
	return cp, nil
}

// compareFacts lines up the two runs' header facts by name.
func compareFacts(a, b *results.Results) []compareRow {
	fa, fb := runFacts(a, origin(a)), runFacts(b, origin(b))
	var names []string
	for _, f := range append(slices.Clone(fa), fb...) {
		if !slices.Contains(names, f.Name) {
			names = append(names, f.Name)
		}
	}
	get := func(fs []fact, name string) string {
		for _, f := range fs {
			if f.Name == name {
				return f.Value
			}
		}
		return "—"
	}
	rows := make([]compareRow, 0, len(names))
	for _, n := range names {
		r := compareRow{Metric: n, A: get(fa, n), B: get(fb, n)}
		if r.A != r.B && n != "Started" { // start times always differ
			r.Change = "differs"
		}
		rows = append(rows, r)
	}
	return rows
}

// metric directions.
const (
	neutral      = iota // a difference is neither better nor worse
	lowerBetter         // counts of bad things, latency
	higherBetter        // throughput
)

func compareSummary(a, b *results.Results) []compareRow {
	sa, sb := a.Summary, b.Summary
	rows := []compareRow{verdictRow(a.Verdict, b.Verdict)}
	counts := []struct {
		name string
		a, b uint64
		dir  int
	}{
		{"Produced", sa.Produced, sb.Produced, neutral},
		{"Acked", sa.Acked, sb.Acked, neutral},
		{"Received (unique)", sa.Received, sb.Received, neutral},
		{"Produce errors", sa.ProduceErrors, sb.ProduceErrors, lowerBetter},
		{"Lost", sa.Lost, sb.Lost, lowerBetter},
		{"Duplicated", sa.Duplicated, sb.Duplicated, lowerBetter},
		{"Reordered", sa.Reordered, sb.Reordered, lowerBetter},
		{"Late (after declared lost)", sa.Late, sb.Late, lowerBetter},
		{"Foreign records", sa.Foreign, sb.Foreign, lowerBetter},
		{"Unacked but delivered", sa.UnackedDelivered, sb.UnackedDelivered, neutral},
		{"Never acked", sa.NeverAcked, sb.NeverAcked, lowerBetter},
	}
	rows = append(rows, compareRow{
		Metric: "Duration",
		A:      fmtDuration(time.Duration(sa.DurationS * float64(time.Second))),
		B:      fmtDuration(time.Duration(sb.DurationS * float64(time.Second))),
		Change: pctChange(sa.DurationS, sb.DurationS),
	})
	for _, c := range counts {
		rows = append(rows, countRow(c.name, c.a, c.b, c.dir))
	}
	rows = append(rows, floatRow("Throughput", sa.ThroughputMsgsPerS, sb.ThroughputMsgsPerS, higherBetter, func(v float64) string { return fmtNumber(v) + " msg/s" }))
	lat := []struct {
		name string
		a, b float64
	}{
		{"Latency p50", sa.LatencyMs.P50, sb.LatencyMs.P50},
		{"Latency p90", sa.LatencyMs.P90, sb.LatencyMs.P90},
		{"Latency p99", sa.LatencyMs.P99, sb.LatencyMs.P99},
		{"Latency p99.9", sa.LatencyMs.P999, sb.LatencyMs.P999},
		{"Latency max", sa.LatencyMs.Max, sb.LatencyMs.Max},
	}
	for _, l := range lat {
		rows = append(rows, floatRow(l.name, l.a, l.b, lowerBetter, fmtMs))
	}
	return rows
}

func verdictRow(a, b string) compareRow {
	r := compareRow{Metric: "Verdict", A: verdictText(a), B: verdictText(b)}
	switch {
	case a == b:
		r.Change = "same"
	case b == results.Fail:
		r.Change, r.Class = "now FAIL", classWorse
	case b == results.Pass:
		r.Change, r.Class = "now PASS", classBetter
	default:
		r.Change = "differs"
	}
	return r
}

func countRow(name string, a, b uint64, dir int) compareRow {
	r := compareRow{Metric: name, A: fmtCount(a), B: fmtCount(b)}
	if a == b {
		r.Change = "same"
		return r
	}
	d := int64(b) - int64(a)
	r.Change = strconv.FormatInt(d, 10)
	if d > 0 {
		r.Change = "+" + r.Change
	}
	if a > 0 {
		r.Change += " (" + pctChange(float64(a), float64(b)) + ")"
	}
	if dir == lowerBetter {
		r.Class = classBetter
		if b > a {
			r.Class = classWorse
		}
	}
	return r
}

func floatRow(name string, a, b float64, dir int, format func(float64) string) compareRow {
	r := compareRow{Metric: name, A: format(a), B: format(b), Change: pctChange(a, b)}
	if a == b || dir == neutral {
		return r
	}
	big := a == 0 || math.Abs(b-a)/math.Abs(a)*100 >= changeThresholdPct
	if !big {
		return r
	}
	if (b > a) == (dir == lowerBetter) {
		r.Class = classWorse
	} else {
		r.Class = classBetter
	}
	return r
}

// pctChange formats (b-a)/a as a signed percentage.
func pctChange(a, b float64) string {
	switch {
	case a == b:
		return "same"
	case a == 0:
		return "new"
	}
	pct := (b - a) / math.Abs(a) * 100
	prec := 0
	if math.Abs(pct) < 10 {
		prec = 1
	}
	s := strconv.FormatFloat(pct, 'f', prec, 64) + "%"
	if pct > 0 {
		s = "+" + s
	}
	return s
}

func compareSteps(a, b *results.Results) []stepCompare {
	va, vb := stepViews(a, origin(a)), stepViews(b, origin(b))
	n := max(len(va), len(vb))
	out := make([]stepCompare, 0, n)
	for i := range n {
		sc := stepCompare{ActionA: "—", ActionB: "—", VerdictA: "—", VerdictB: "—", RecoveryA: "—", RecoveryB: "—"}
		var idxA, idxB string
		if i < len(va) {
			s := va[i]
			idxA = strconv.Itoa(s.Index)
			sc.ActionA, sc.VerdictA, sc.ClassA, sc.AssertionsA = s.Action, s.Verdict, s.VerdictClass, s.Assertions
			sc.RecoveryA = recoveryText(s)
		}
		if i < len(vb) {
			s := vb[i]
			idxB = strconv.Itoa(s.Index)
			sc.ActionB, sc.VerdictB, sc.ClassB, sc.AssertionsB = s.Action, s.Verdict, s.VerdictClass, s.Assertions
			sc.RecoveryB = recoveryText(s)
		}
		sc.Index = idxA
		if idxA == "" || (idxB != "" && idxB != idxA) {
			sc.Index = idxA + "/" + idxB
		}
		switch {
		case sc.VerdictA == sc.VerdictB:
		case sc.VerdictB == results.Fail:
			sc.Class = classWorse
		case sc.VerdictB == results.Pass && sc.VerdictA == results.Fail:
			sc.Class = classBetter
		default:
			sc.Class = classWorse // a step only one run has
		}
		out = append(out, sc)
	}
	return out
}

func recoveryText(s stepView) string {
	return "throughput " + s.RecoveryThroughput + ", latency " + s.RecoveryLatency
}

// sameSteps reports whether two runs' steps line up (same actions starting
// within two seconds of the same offset), so one set of windows serves both.
func sameSteps(a, b *results.Results) bool {
	if len(a.Steps) != len(b.Steps) {
		return false
	}
	ta, tb := origin(a), origin(b)
	for i := range a.Steps {
		sa, sb := a.Steps[i], b.Steps[i]
		if sa.Action != sb.Action || math.Abs(sa.Start.Sub(ta).Seconds()-sb.Start.Sub(tb).Seconds()) > 2 {
			return false
		}
	}
	return true
}

func compareCharts(a, b *results.Results, o options) []chartSpec {
	ta, tb := origin(a), origin(b)
	la, lb := o.labelA, o.labelB
	var bands []band
	var swatches []legendSwatch
	var caption string
	if sameSteps(a, b) {
		bands, swatches, caption = stepBands(a.Steps, ta, bandStyle{Fill: colBandOK, Text: colLabelOK})
	} else {
		// A's windows shaded, B's as dashed outlines over them.
		ba, swa, ca := stepBands(a.Steps, ta, bandStyle{Prefix: la + ": ", Fill: colBandOK, Text: colLabelOK})
		bb, swb, cb := stepBands(b.Steps, tb, bandStyle{Prefix: lb + ": ", Text: colOutline, Outline: true, Group: 1})
		bands = append(ba, bb...)
		swatches = append(swa, swb...)
		caption = joinSentences(ca, cb)
	}
	pa, pb := chartPoints(a), chartPoints(b)
	var specs []chartSpec
	if len(pa) > 0 || len(pb) > 0 {
		replicated := func(p results.Point) float64 { return p.ReplicatedRate }
		target := func(p results.Point) float64 { return p.TargetRate }
		thr := chartSpec{
			File: "compare-throughput.png", Title: "Replicated rate: " + la + " vs " + lb,
			XLabel: elapsedLabel, YLabel: "messages/s",
			Caption: "Messages per second received in the destination, each run timed from its own start; dashed: target rate.",
			Series: []series{
				{Name: la + " target", Color: colSky, Dashes: dashed, Width: 1.2, XY: curve(pa, ta, target)},
				{Name: lb + " target", Color: colOrange, Dashes: dashed, Width: 1.2, XY: curve(pb, tb, target)},
				{Name: la + " replicated", Color: colBlue, XY: curve(pa, ta, replicated)},
				{Name: lb + " replicated", Color: colRed, XY: curve(pb, tb, replicated)},
			},
		}
		specs = append(specs, thr,
			chartSpec{
				File: "compare-latency.png", Title: "End-to-end latency p99 and p50: " + la + " vs " + lb,
				XLabel: elapsedLabel, YLabel: "latency (ms)", AutoLog: true,
				Caption: "Solid: p99 per second; dashed: p50.",
				Series: []series{
					{Name: la + " p99", Color: colBlue, XY: curve(pa, ta, latencyOf(func(p results.Point) float64 { return p.P99Ms }))},
					{Name: lb + " p99", Color: colRed, XY: curve(pb, tb, latencyOf(func(p results.Point) float64 { return p.P99Ms }))},
					{Name: la + " p50", Color: colBlue, Dashes: dashed, Width: 1.2, XY: curve(pa, ta, latencyOf(func(p results.Point) float64 { return p.P50Ms }))},
					{Name: lb + " p50", Color: colRed, Dashes: dashed, Width: 1.2, XY: curve(pb, tb, latencyOf(func(p results.Point) float64 { return p.P50Ms }))},
				},
			},
			chartSpec{
				File: "compare-anomalies.png", Title: "Lost and duplicated (cumulative): " + la + " vs " + lb,
				XLabel: elapsedLabel, YLabel: "messages", Counts: true,
				Caption: "Solid: lost; dashed: duplicated.",
				Series: []series{
					{Name: la + " lost", Color: colBlue, Width: 2, XY: curve(pa, ta, func(p results.Point) float64 { return float64(p.Lost) })},
					{Name: lb + " lost", Color: colRed, Width: 2, XY: curve(pb, tb, func(p results.Point) float64 { return float64(p.Lost) })},
					{Name: la + " duplicated", Color: colBlue, Dashes: dashed, XY: curve(pa, ta, func(p results.Point) float64 { return float64(p.Duplicated) })},
					{Name: lb + " duplicated", Color: colRed, Dashes: dashed, XY: curve(pb, tb, func(p results.Point) float64 { return float64(p.Duplicated) })},
				},
			},
			chartSpec{
				File: "compare-lag.png", Title: "Consumer lag: " + la + " vs " + lb,
				XLabel: elapsedLabel, YLabel: "messages", Counts: true,
				Caption: "Messages in the destination not yet consumed.",
				Series: []series{
					{Name: la + " lag", Color: colBlue, XY: curve(pa, ta, func(p results.Point) float64 { return float64(p.Lag) })},
					{Name: lb + " lag", Color: colRed, XY: curve(pb, tb, func(p results.Point) float64 { return float64(p.Lag) })},
				},
			},
		)
		for i := range specs {
			specs[i].Bands, specs[i].BandLegend = bands, swatches
			specs[i].Caption = joinSentences(specs[i].Caption, caption)
		}
	}
	if len(a.Latency) > 0 || len(b.Latency) > 0 {
		xmax, maxAt := percentileAxis(a.Latency, b.Latency)
		dist := chartSpec{
			File: "compare-latency-distribution.png", Title: "End-to-end latency distribution: " + la + " vs " + lb,
			XLabel: "percentile", YLabel: "latency (ms)", X: axisPercentile, AutoLog: true,
			Caption: "Latency at each percentile over each whole run (HdrHistogram). " + distributionCaption,
			Series: []series{
				{Name: la, Color: colBlue, Width: 2, XY: percentileCurve(a.Latency, maxAt)},
				{Name: lb, Color: colRed, Width: 2, XY: percentileCurve(b.Latency, maxAt)},
			},
			XMin: 0, XMax: xmax, MaxAt: maxAt,
		}
		specs = append(specs, dist)
	}
	return specs
}
