package report

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartDPI maps points to pixels: a chart of W by H pixels is drawn on a
// canvas of W*72/chartDPI by H*72/chartDPI points.
const chartDPI = 96

// chart is one rendered PNG with what the page says about it.
type chart struct {
	// File is the PNG's name in the report directory.
	File string
	// Title is the chart's heading.
	Title string
	// Caption explains the chart and lists the shaded windows.
	Caption string
	// PNG is the encoded image, Width by Height pixels.
	PNG           []byte
	Width, Height int
}

// ImgAttrs returns the attributes of an <img> element showing the chart:
// src as a base64 data: URL, width and height. Built here rather than by the
// template so the base64 is not entity-escaped (the alphabet is safe inside
// a quoted attribute), which would grow the page by several percent.
func (c *chart) ImgAttrs() template.HTMLAttr {
	return template.HTMLAttr(fmt.Sprintf(`src="data:image/png;base64,%s" width="%d" height="%d"`,
		base64.StdEncoding.EncodeToString(c.PNG), c.Width, c.Height))
}

// Colours (Okabe–Ito, distinguishable with common colour-vision deficiencies).
var (
	colBlue    = color.NRGBA{0, 114, 178, 255}
	colOrange  = color.NRGBA{230, 159, 0, 255}
	colGreen   = color.NRGBA{0, 158, 115, 255}
	colRed     = color.NRGBA{213, 94, 0, 255}
	colCrimson = color.NRGBA{200, 20, 30, 255}
	colPurple  = color.NRGBA{204, 121, 167, 255}
	colSky     = color.NRGBA{86, 180, 233, 255}
	colYellow  = color.NRGBA{190, 170, 0, 255}
	colBlack   = color.NRGBA{0, 0, 0, 255}
	colGrey    = color.NRGBA{110, 110, 110, 255}
	colGridLn  = color.NRGBA{225, 225, 225, 255}
	colBandOK  = color.NRGBA{90, 110, 150, 40}
	colBandBad = color.NRGBA{220, 40, 20, 50}
	colOutline = color.NRGBA{200, 110, 0, 255}
	colLabelOK = color.NRGBA{50, 60, 90, 255}
	colLabelBd = color.NRGBA{170, 20, 0, 255}
)

// withAlpha returns c with alpha a (0..255).
func withAlpha(c color.Color, a uint8) color.Color {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	n.A = a
	return n
}

// palette colours successive curves (e.g. one per step).
var palette = []color.Color{colBlue, colOrange, colGreen, colRed, colPurple, colSky, colYellow, colGrey}

var dashed = []vg.Length{vg.Points(6), vg.Points(3)}

// sans is the charts' typeface (embedded with gonum/plot, so rendering needs
// no system fonts).
var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// series is one curve; NaN Y values are gaps (e.g. no message that second).
type series struct {
	Name   string
	Color  color.Color
	Width  vg.Length
	Dashes []vg.Length
	XY     plotter.XYs
}

// band is a shaded window on the time axis.
type band struct {
	X0, X1 float64
	Label  string
	Fill   color.Color
	Text   color.Color
	// Outline draws the window as dashed edges in Text's colour instead of
	// a fill (a second run's windows over the first's).
	Outline bool
	// Short is the label used when the full one has no room ("#3").
	Short string
	// Group selects the label rows: 0 for a run's own windows (or the
	// first run's), 1 for the second run's in a comparison. Each group has
	// labelRows rows below the previous group's.
	Group int
}

// axisKind selects the X axis formatting.
type axisKind int

const (
	axisElapsed    axisKind = iota // seconds since the start, labelled m:ss
	axisPercentile                 // -log10(1-p), labelled 90%, 99%, ...
)

// chartSpec is everything needed to draw one chart.
type chartSpec struct {
	File, Title, XLabel, YLabel string
	Caption                     string
	X                           axisKind
	Series                      []series
	Bands                       []band
	// BandLegend names the band fills in the legend.
	BandLegend []legendSwatch
	// XMin, XMax fix the X range when XMax > XMin.
	XMin, XMax float64
	// Counts marks a Y axis of message counts: at least 0..5, so a flat
	// zero line gets whole-number ticks.
	Counts bool
	// AutoLog makes the Y axis logarithmic when the positive values span
	// more than 50x (latency); otherwise it is linear from zero.
	AutoLog bool
	// MaxAt is, on a percentile axis, where the 100th percentile (the
	// maximum) is drawn and labelled "max"; 0 for none.
	MaxAt float64
}

// legendSwatch is a legend entry for a kind of window: a filled box, or a
// dashed outline when Outline is set.
type legendSwatch struct {
	Name    string
	Fill    color.Color
	Outline color.Color
}

// Thumbnail implements plot.Thumbnailer.
func (s legendSwatch) Thumbnail(c *draw.Canvas) {
	pts := []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}}
	if s.Outline != nil {
		c.StrokeLines(outlineStyle(s.Outline), append(pts, pts[0]))
		return
	}
	c.FillPolygon(s.Fill, pts)
}

func outlineStyle(c color.Color) draw.LineStyle {
	return draw.LineStyle{Color: c, Width: vg.Points(1.4), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}}
}

// render draws spec as a width by height PNG: the plot on the left, the
// legend in a column on the right.
func render(spec chartSpec, width, height int) (*chart, error) {
	p := plot.New()
	p.Title.Text = spec.Title
	p.Title.TextStyle.Font = font.From(sans, 13)
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = spec.XLabel
	p.Y.Label.Text = spec.YLabel
	for _, ax := range []*plot.Axis{&p.X, &p.Y} {
		ax.Label.TextStyle.Font = font.From(sans, 10.5)
		ax.Tick.Label.Font = font.From(sans, 9.5)
		ax.Padding = vg.Points(3)
	}
	grid := plotter.NewGrid()
	grid.Vertical.Color = colGridLn
	grid.Horizontal.Color = colGridLn
	p.Add(grid)
	p.Add(&bandPlotter{bands: spec.Bands})

	legend := plot.NewLegend()
	legend.Top = true
	legend.Left = true
	legend.TextStyle.Font = font.From(sans, 9.5)
	legend.ThumbnailWidth = vg.Points(18)
	legend.Padding = vg.Points(3)
	legendW := vg.Points(60)
	for _, s := range spec.Series {
		legendW = max(legendW, legend.TextStyle.Width(shorten(s.Name, maxLegendRunes)))
	}
	for _, s := range spec.BandLegend {
		legendW = max(legendW, legend.TextStyle.Width(shorten(s.Name, maxLegendRunes)))
	}
	w := vg.Length(width) * vg.Inch / chartDPI
	h := vg.Length(height) * vg.Inch / chartDPI
	legendW = min(legendW+legend.ThumbnailWidth+vg.Points(18), w*0.35)

	ymin, ymax := math.Inf(1), math.Inf(-1)
	xmin, xmax := math.Inf(1), math.Inf(-1)
	minPos := math.Inf(1)
	for _, s := range spec.Series {
		for _, pt := range s.XY {
			xmin, xmax = math.Min(xmin, pt.X), math.Max(xmax, pt.X)
			if math.IsNaN(pt.Y) {
				continue
			}
			ymin, ymax = math.Min(ymin, pt.Y), math.Max(ymax, pt.Y)
			if pt.Y > 0 {
				minPos = math.Min(minPos, pt.Y)
			}
		}
	}
	for _, b := range spec.Bands {
		xmin, xmax = math.Min(xmin, b.X0), math.Max(xmax, b.X1)
	}
	if math.IsInf(xmin, 0) {
		xmin, xmax = 0, 1
	}
	if spec.XMax > spec.XMin {
		xmin, xmax = spec.XMin, spec.XMax
	}
	if xmax <= xmin {
		xmax = xmin + 1
	}
	if math.IsInf(ymax, 0) || ymax <= 0 {
		ymax = 1
	}
	if spec.Counts {
		ymax = math.Max(ymax, 5)
	}
	logY := spec.AutoLog && !math.IsInf(minPos, 0) && ymax/minPos > 50
	floor := 0.0
	if logY {
		floor = minPos
	}

	for _, s := range spec.Series {
		first := true
		for _, seg := range segments(s.XY, logY, floor) {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return nil, fmt.Errorf("chart %s: series %s: %w", spec.File, s.Name, err)
			}
			l.Color = s.Color
			l.Width = s.Width
			if l.Width == 0 {
				l.Width = vg.Points(1.6)
			}
			l.Dashes = s.Dashes
			p.Add(l)
			if first {
				legend.Add(shorten(s.Name, maxLegendRunes), l)
				first = false
			}
		}
	}
	for _, sw := range spec.BandLegend {
		legend.Add(shorten(sw.Name, maxLegendRunes), sw)
	}
	p.Add(&bandPlotter{bands: spec.Bands, labels: true})

	p.X.Min, p.X.Max = xmin, xmax
	// Leave room above the data for the band labels' rows.
	headroom := 1.05
	for _, b := range spec.Bands {
		headroom = math.Max(headroom, 1.06+0.075*float64(labelRows*(b.Group+1)))
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = logTicks{}
		lo := math.Pow(10, math.Floor(math.Log10(floor)))
		p.Y.Min = lo
		p.Y.Max = ymax * math.Pow(ymax/lo, headroom-1)
	} else {
		p.Y.Min = math.Min(0, ymin)
		p.Y.Max = ymax * headroom
		p.Y.Tick.Marker = siTicks{}
	}
	switch spec.X {
	case axisElapsed:
		p.X.Tick.Marker = elapsedTicks{}
		if xmax >= 3600 {
			p.X.Label.Text = strings.Replace(p.X.Label.Text, "(m:ss)", "(h:mm:ss)", 1)
		}
	case axisPercentile:
		p.X.Tick.Marker = percentileTicks{maxAt: spec.MaxAt}
	}

	canvas := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(chartDPI), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(canvas)
	p.Draw(draw.Crop(dc, 0, -legendW, 0, 0))
	top := p.Title.TextStyle.Height(p.Title.Text) + p.Title.Padding + vg.Points(4)
	legend.Draw(draw.Crop(dc, w-legendW+vg.Points(8), 0, 0, -top))

	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("chart %s: encode png: %w", spec.File, err)
	}
	return &chart{File: spec.File, Title: spec.Title, Caption: spec.Caption, PNG: buf.Bytes(), Width: width, Height: height}, nil
}

// segments splits xy at NaN values (and, on a log axis, at values below
// floor) into runs that can be drawn as lines. A lone point becomes a tiny
// segment so it stays visible.
func segments(xy plotter.XYs, logY bool, floor float64) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	flush := func() {
		switch len(cur) {
		case 0:
			return
		case 1:
			cur = append(cur, plotter.XY{X: cur[0].X + 0.3, Y: cur[0].Y})
		}
		out = append(out, cur)
		cur = nil
	}
	for _, pt := range xy {
		if math.IsNaN(pt.Y) || math.IsInf(pt.Y, 0) || (logY && pt.Y < floor) {
			flush()
			continue
		}
		cur = append(cur, pt)
	}
	flush()
	return out
}

// maxLegendRunes bounds a legend entry's length.
const maxLegendRunes = 34

// shorten cuts s to n runes with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// bandPlotter shades step windows over the whole height of the data area
// (labels false) or writes their labels along the top (labels true), so the
// shading can go under the curves and the labels over them.
type bandPlotter struct {
	bands  []band
	labels bool
	// ends holds, per label row, where the last label drawn ends.
	ends map[int]vg.Length
}

// Plot implements plot.Plotter.
func (b *bandPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	b.ends = nil
	trX, _ := p.Transforms(&c)
	sty := draw.TextStyle{
		Font:    font.From(sans, 9),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: p.TextHandler,
	}
	minW := vg.Points(2)
	for _, bd := range b.bands {
		x0, x1 := trX(bd.X0), trX(bd.X1)
		if x1-x0 < minW {
			x1 = x0 + minW
		}
		x0 = max(x0, c.Min.X)
		x1 = min(x1, c.Max.X)
		if x1 <= x0 {
			continue
		}
		if !b.labels && bd.Outline {
			sty := outlineStyle(bd.Text)
			c.StrokeLine2(sty, x0, c.Min.Y, x0, c.Max.Y)
			c.StrokeLine2(sty, x1, c.Min.Y, x1, c.Max.Y)
			continue
		}
		if !b.labels {
			c.FillPolygon(bd.Fill, []vg.Point{{X: x0, Y: c.Min.Y}, {X: x0, Y: c.Max.Y}, {X: x1, Y: c.Max.Y}, {X: x1, Y: c.Min.Y}})
			// A thin edge at the start keeps adjacent windows apart.
			edge := draw.LineStyle{Color: withAlpha(bd.Text, 110), Width: vg.Points(0.7)}
			c.StrokeLine2(edge, x0, c.Min.Y, x0, c.Max.Y)
			continue
		}
		sty.Color = bd.Text
		row, x, txt := b.place(sty, bd, x0, c.Min.X, c.Max.X)
		lineH := sty.Height("Xg") + vg.Points(1)
		y := c.Max.Y - vg.Points(3) - vg.Length(row)*lineH
		c.FillText(sty, vg.Point{X: x, Y: y}, txt)
	}
}

// labelRows is the number of label rows per band group.
const labelRows = 2

// place picks a row, position and text for a band's label: the full label
// in the first row of its group where it does not overlap the previous
// label, else the short one, else the short one in the least crowded row.
func (b *bandPlotter) place(sty draw.TextStyle, bd band, x0, minX, maxX vg.Length) (row int, x vg.Length, txt string) {
	if b.ends == nil {
		b.ends = map[int]vg.Length{}
	}
	gap := vg.Points(4)
	pos := func(txt string) (vg.Length, vg.Length) {
		tw := sty.Width(txt)
		x := x0 + vg.Points(2)
		if x+tw > maxX {
			x = max(maxX-tw-vg.Points(2), minX)
		}
		return x, tw
	}
	for _, txt := range []string{bd.Label, bd.Short} {
		if txt == "" {
			continue
		}
		x, tw := pos(txt)
		for r := range labelRows {
			row := bd.Group*labelRows + r
			if end, used := b.ends[row]; !used || end+gap <= x {
				b.ends[row] = x + tw
				return row, x, txt
			}
		}
	}
	txt = cmp.Or(bd.Short, bd.Label)
	x, tw := pos(txt)
	row = bd.Group * labelRows
	for r := 1; r < labelRows; r++ {
		if b.ends[bd.Group*labelRows+r] < b.ends[row] {
			row = bd.Group*labelRows + r
		}
	}
	b.ends[row] = x + tw
	return row, x, txt
}

// elapsedTicks labels seconds since the start at round intervals, as m:ss,
// or h:mm:ss on an axis that reaches an hour.
type elapsedTicks struct{}

var elapsedSteps = []float64{1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400}

// Ticks implements plot.Ticker.
func (elapsedTicks) Ticks(lo, hi float64) []plot.Tick {
	span := hi - lo
	step := elapsedSteps[len(elapsedSteps)-1]
	for _, s := range elapsedSteps {
		if span/s <= 10 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		label := fmtElapsedSeconds(v)
		if hi >= 3600 && v < 3600 {
			label = "0:" + fmt.Sprintf("%05s", label)
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
	}
	return ticks
}

// fmtElapsedSeconds formats s seconds as m:ss or h:mm:ss.
func fmtElapsedSeconds(s float64) string {
	neg := s < 0
	n := int64(math.Round(math.Abs(s)))
	h, m, sec := n/3600, n/60%60, n%60
	var out string
	if h > 0 {
		out = fmt.Sprintf("%d:%02d:%02d", h, m, sec)
	} else {
		out = fmt.Sprintf("%d:%02d", m, sec)
	}
	if neg {
		return "-" + out
	}
	return out
}

// percentileTicks labels the transformed percentile axis x = -log10(1-p):
// 0 is 0%, 1 is 90%, 2 is 99%, 3 is 99.9%... and maxAt, when set, "max".
type percentileTicks struct{ maxAt float64 }

// Ticks implements plot.Ticker.
func (t percentileTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for v := math.Ceil(lo); v <= hi+1e-9; v++ {
		label := percentileLabel(int(v))
		if t.maxAt > 0 && v == t.maxAt {
			label = "max"
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: label})
		if v+1 <= hi+1e-9 && v+1 != t.maxAt {
			for _, f := range []float64{0.5, 0.75, 0.9} { // minor: e.g. 95%, 97.5%, 99%
				mv := v - math.Log10(1-f)
				if mv < v+1 {
					ticks = append(ticks, plot.Tick{Value: mv})
				}
			}
		}
	}
	return ticks
}

func percentileLabel(n int) string {
	if n <= 0 {
		return "0%"
	}
	return strconv.FormatFloat(100-math.Pow(10, float64(2-n)), 'f', max(n-2, 0), 64) + "%"
}

// percentileX maps a percentile (0..100) to the transformed axis.
func percentileX(p float64) float64 {
	p = math.Min(math.Max(p, 0), 99.9999)
	return -math.Log10(1 - p/100)
}

// siTicks labels a linear axis with short numbers (1.5k, 2M).
type siTicks struct{}

// Ticks implements plot.Ticker: about five labelled ticks at multiples of
// 1, 2, 2.5 or 5 times a power of ten, and an unlabelled one halfway.
func (siTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: siNumber(lo)}}
	}
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ticks []plot.Tick
	half := step / 2
	for i := math.Ceil(lo / half); i*half <= hi*(1+1e-12); i++ {
		v := i * half
		if math.Mod(i, 2) == 0 {
			ticks = append(ticks, plot.Tick{Value: v, Label: siNumber(v)})
		} else {
			ticks = append(ticks, plot.Tick{Value: v})
		}
	}
	return ticks
}

// logTicks marks each power of ten of a log axis, with 2 and 5 between when
// the axis spans few decades.
type logTicks struct{}

// Ticks implements plot.Ticker.
func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	few := math.Log10(hi/lo) <= 3
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		base := math.Pow(10, e)
		for _, m := range []float64{1, 2, 5} {
			v := base * m
			if v < lo*(1-1e-9) || v > hi*(1+1e-9) {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || few {
				t.Label = siNumber(v)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// siNumber formats v compactly: 950, 1.5k, 12k, 3M, 0.25.
func siNumber(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e9:
		return trimFloat(v/1e9) + "G"
	case a >= 1e6:
		return trimFloat(v/1e6) + "M"
	case a >= 1e4:
		return trimFloat(v/1e3) + "k"
	default:
		return trimFloat(v)
	}
}

func trimFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
