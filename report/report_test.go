package report

import (
	"bytes"
	"encoding/base64"
	"html"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// testLogger sends the report's log lines to the test log.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// shared is the fixture's report, rendered once for the tests that only
// read it (rendering under -race takes about a second).
var shared struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	m.Run()
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// fixtureReport returns the directory of the fixture's report. Tests must
// not change it.
func fixtureReport(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "kmt-report-test-")
		if shared.err == nil {
			shared.err = Write(shared.dir, syntheticResults(), WithLogger(slog.New(slog.DiscardHandler)))
		}
	})
	if shared.err != nil {
		t.Fatalf("render the fixture's report: %v", shared.err)
	}
	return shared.dir
}

// writeReport renders r into a fresh directory and returns it.
func writeReport(t *testing.T, r *results.Results, opts ...Option) string {
	t.Helper()
	dir := t.TempDir()
	if err := Write(dir, r, append([]Option{WithLogger(testLogger(t))}, opts...)...); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var dataURIRe = regexp.MustCompile(`<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" width="(\d+)" height="(\d+)"`)

// embeddedPNGs decodes every chart embedded in page, checking each decodes
// as a PNG of the size its <img> declares and that size is want.
func embeddedPNGs(t *testing.T, page string, wantW, wantH int) [][]byte {
	t.Helper()
	var out [][]byte
	for _, m := range dataURIRe.FindAllStringSubmatch(page, -1) {
		raw, err := base64.StdEncoding.DecodeString(m[1])
		if err != nil {
			t.Fatalf("embedded chart is not base64: %v", err)
		}
		checkPNG(t, "embedded chart", raw, wantW, wantH)
		if m[2] != strconv.Itoa(wantW) || m[3] != strconv.Itoa(wantH) {
			t.Errorf("img declares %sx%s, want %dx%d", m[2], m[3], wantW, wantH)
		}
		out = append(out, raw)
	}
	return out
}

func checkPNG(t *testing.T, name string, raw []byte, wantW, wantH int) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s does not decode as PNG: %v", name, err)
	}
	if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
		t.Fatalf("%s is %dx%d, want %dx%d", name, b.Dx(), b.Dy(), wantW, wantH)
	}
	return img
}

// between returns the part of s from the first from to the next to.
func between(t *testing.T, s, from, to string) string {
	t.Helper()
	i := strings.Index(s, from)
	if i < 0 {
		t.Fatalf("%q not found", from)
	}
	j := strings.Index(s[i:], to)
	if j < 0 {
		t.Fatalf("%q not found after %q", to, from)
	}
	return s[i : i+j]
}

// measuredText is how the report should show an assertion's measurement,
// derived here independently of the package's formatting.
func measuredText(a results.Assertion) string {
	if a.Measured != "" {
		return a.Measured
	}
	return strconv.FormatFloat(a.Value, 'f', -1, 64)
}

func passText(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func TestWriteHTML(t *testing.T) {
	dir := fixtureReport(t)
	// Every check below is against the results file the report wrote, read
	// back: what the page shows must be what results.json says.
	r, err := results.ReadResults(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	page := readFile(t, filepath.Join(dir, HTMLFile))

	t.Run("charts embedded as PNG", func(t *testing.T) {
		charts := embeddedPNGs(t, page, 900, 360)
		if len(charts) != 5 {
			t.Fatalf("%d embedded charts, want 5 (throughput, latency, anomalies, lag, distribution)", len(charts))
		}
		// The embedded charts are byte for byte the PNG files beside the
		// Markdown.
		for _, name := range []string{"chart-throughput.png", "chart-latency.png", "chart-anomalies.png", "chart-lag.png", "chart-latency-distribution.png"} {
			file, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, c := range charts {
				found = found || bytes.Equal(c, file)
			}
			if !found {
				t.Errorf("%s is not embedded in the page", name)
			}
		}
	})

	t.Run("self-contained", func(t *testing.T) {
		lower := strings.ToLower(page)
		for _, bad := range []string{"http://", "https://", "<script", "<link", "@import", "url(", "@font-face", "<iframe", "<object"} {
			if strings.Contains(lower, bad) {
				t.Errorf("page contains %q: it must open offline with nothing to fetch", bad)
			}
		}
		for _, m := range regexp.MustCompile(`(src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
			if !strings.HasPrefix(m[2], "data:image/png;base64,") && !strings.HasPrefix(m[2], "#") {
				t.Errorf("%s=%q points outside the page", m[1], m[2])
			}
		}
	})

	t.Run("header", func(t *testing.T) {
		for _, want := range []string{
			`<div class="badge fail" id="verdict">FAIL</div>`,
			"<dt>Duration</dt><dd>1m0s</dd>",
			"<dt>Topics</dt><dd>kmt-a, kmt-b (6 partitions each)</dd>",
			"<dt>Rate</dt><dd>1,000 msg/s</dd>",
			"<dt>Message size</dt><dd>512 B</dd>",
			"<dt>Producers / consumers</dt><dd>2 / 2</dd>",
			"<dt>Message identity</dt><dd>record headers</dd>",
			"<dt>Target</dt><dd>local (source embedded 3 brokers, destination embedded 3 brokers)</dd>",
			"<dt>kmt version</dt><dd>" + r.Version + "</dd>",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("header lacks %s", want)
			}
		}
	})

	t.Run("step table", func(t *testing.T) {
		steps := between(t, page, `<table class="steps">`, "</table>")
		if got := strings.Count(steps, "<tr>") - 1; got != 4 { // header + 3 + 1 assertions
			t.Errorf("%d assertion rows, want 4", got)
		}
		for _, s := range r.Steps {
			if !strings.Contains(steps, "<b>"+s.Action+"</b>") {
				t.Errorf("step %d action %q missing", s.Index, s.Action)
			}
			for _, a := range s.Assertions {
				want := "<td><code>" + html.EscapeString(a.Expr) + "</code></td><td class=\"num\">" + html.EscapeString(measuredText(a)) +
					"</td><td class=\"" + strings.ToLower(passText(a.Pass)) + "\">" + passText(a.Pass) + "</td>"
				if !strings.Contains(steps, want) {
					t.Errorf("step %d: no row %s", s.Index, want)
				}
			}
			want := `class="` + strings.ToLower(s.Verdict) + `">` + s.Verdict + "</td>"
			if !strings.Contains(steps, want) {
				t.Errorf("step %d verdict cell %s missing", s.Index, want)
			}
		}
		text := html.UnescapeString(steps)
		for _, want := range []string{"+0:20 → +0:35", "12:00:20 → 12:00:35 UTC", "15s", "throughput</span> 4.2s", "latency</span> 6.1s"} {
			if !strings.Contains(text, want) {
				t.Errorf("step table lacks %q", want)
			}
		}
	})

	t.Run("fault window labelled", func(t *testing.T) {
		// The chart captions name each shaded window with its times; the
		// pixels are checked in TestFaultWindowShading.
		want := "Shaded step windows: #1 kill-broker 0:20–0:35; #2 wait 0:35–1:00."
		if n := strings.Count(page, want); n != 4 {
			t.Errorf("caption %q appears %d times, want once per time chart (4)", want, n)
		}
	})

	t.Run("anomalies", func(t *testing.T) {
		table := between(t, page, `<table class="anomalies">`, "</table>")
		if got := strings.Count(table, `<tr><td class="bad">`); got != 50 {
			t.Errorf("%d anomaly rows, want the first 50", got)
		}
		if !strings.Contains(page, "Showing the first 50 of 60 per-stream records") {
			t.Error("truncation note missing")
		}
		first := r.Anomalies[0]
		want := `<tr><td class="bad">lost</td><td>kmt-a</td><td>producer-0</td><td><code>run0000</code></td><td class="num">0</td><td class="num">17</td><td>replicator</td><td><code>5210-5219, 5300-5306</code></td></tr>`
		if first.Count != 17 || !strings.Contains(table, want) {
			t.Errorf("lost stream row missing: want %s", want)
		}
		if strings.Contains(table, "run0050") {
			t.Error("record 51 is listed")
		}
		totals := between(t, page, "<h3>Totals (messages)</h3>", "</table>")
		for kind, n := range r.AnomalyTotals {
			want := "<th>" + kind + `</th><td class="num bad">` + strconv.FormatUint(n, 10) + "</td>"
			if !strings.Contains(totals, want) {
				t.Errorf("totals lack %s", want)
			}
		}
	})

	t.Run("summary table", func(t *testing.T) {
		sum := between(t, page, `<section id="summary">`, "</section>")
		for _, want := range []string{
			`<th>Lost</th><td class="num bad">17</td>`,
			`<th>Duplicated</th><td class="num bad">40</td>`,
			`<th>Late (after declared lost)</th><td class="num ">0</td>`,
			`<th>Produced</th><td class="num ">58,213</td>`,
			`<th>Latency p99</th><td class="num ">310 ms</td>`,
			`<th>Latency p99.9</th><td class="num ">1650 ms</td>`,
			`<th>Latency p50</th><td class="num ">4.80 ms</td>`,
			`<th>Throughput</th><td class="num ">970 msg/s</td>`,
			`<th>Created in the future (clock skew)</th><td class="num bad">12</td>`,
			`<th>Older than 1 h (latency capped)</th><td class="num bad">3</td>`,
			`<th>Replication backlog (peak)</th><td class="num ">4,321 msgs</td>`,
			`<th>Oldest unreplicated message (peak age)</th><td class="num ">7.5s</td>`,
		} {
			if !strings.Contains(sum, want) {
				t.Errorf("summary lacks %s", want)
			}
		}
	})
}

func TestWriteMarkdown(t *testing.T) {
	dir := fixtureReport(t)
	md := readFile(t, filepath.Join(dir, MarkdownFile))
	refs := regexp.MustCompile(`!\[[^\]]*\]\(([^)]+)\)`).FindAllStringSubmatch(md, -1)
	if len(refs) != 5 {
		t.Fatalf("%d chart references, want 5", len(refs))
	}
	for _, ref := range refs {
		if strings.Contains(ref[1], "/") || strings.Contains(ref[1], ":") {
			t.Errorf("chart reference %q is not a file beside the Markdown", ref[1])
		}
		raw, err := os.ReadFile(filepath.Join(dir, ref[1]))
		if err != nil {
			t.Fatalf("referenced chart: %v", err)
		}
		checkPNG(t, ref[1], raw, 900, 360)
	}
	for _, want := range []string{
		"## ❌ FAIL",
		"| Lost | **17** |",
		"| 1 | **kill-broker** kill broker 2 of the source cluster, restart after 15s | +0:20 → +0:35 (15s, 12:00:20 → 12:00:35 UTC) | `lost == 0` | 17 | **FAIL** | throughput 4.2s, latency 6.1s | **FAIL** |",
		"| | | | `p99_ms < 2000` | 1843.5 ms | PASS |  |  |",
		"| | | | `duplicated <= 100` | 40 | PASS |  |  |",
		"`throughput >= 0.95 * target` | 0.991 | PASS |",
		"Shaded step windows: #1 kill-broker 0:20–0:35; #2 wait 0:35–1:00.",
		"| lost | kmt-a | producer-0 | `run0000` | 0 | 17 | replicator | 5210-5219, 5300-5306 |",
		"Showing the first 50 of 60 per-stream records",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %s", want)
		}
	}
	// Every table row has the column count of its header.
	for _, table := range strings.Split(md, "\n\n") {
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if len(lines) < 2 || !strings.HasPrefix(lines[0], "|") {
			continue
		}
		cols := cellCount(lines[0])
		for _, l := range lines[1:] {
			if got := cellCount(l); got != cols {
				t.Errorf("row has %d cells, header %d: %s", got, cols, l)
			}
		}
	}
}

// cellCount counts a Markdown table row's cells, honouring \| escapes.
func cellCount(row string) int {
	return strings.Count(strings.ReplaceAll(row, `\|`, ""), "|") - 1
}

func TestResultsRoundTrip(t *testing.T) {
	want := syntheticResults()
	dir := fixtureReport(t)
	got, err := results.ReadResults(filepath.Join(dir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("results.json does not round-trip:\n got %+v\nwant %+v", got.Summary, want.Summary)
	}
	// Rendering from the file gives the same report as from memory.
	dir2 := writeReport(t, got)
	for _, f := range []string{HTMLFile, MarkdownFile, ResultsFile, "chart-latency.png"} {
		if readFile(t, filepath.Join(dir, f)) != readFile(t, filepath.Join(dir2, f)) {
			t.Errorf("%s differs between two renderings of the same results", f)
		}
	}
}

func TestWriteWithoutData(t *testing.T) {
	r := &results.Results{Verdict: results.Pass, Summary: results.Summary{Verdict: results.Pass}}
	dir := writeReport(t, r)
	page := readFile(t, filepath.Join(dir, HTMLFile))
	if n := len(dataURIRe.FindAllString(page, -1)); n != 0 {
		t.Errorf("%d charts for a run with no data", n)
	}
	for _, want := range []string{
		`<div class="badge pass" id="verdict">PASS</div>`,
		"No time series was recorded for this run.",
		"No latency distribution was recorded for this run.",
		"This run had no scenario steps.",
		"No anomalies recorded",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	md := readFile(t, filepath.Join(dir, MarkdownFile))
	if strings.Contains(md, "![") {
		t.Error("Markdown references charts for a run with no data")
	}
}

func TestWriteErrors(t *testing.T) {
	if err := Write(t.TempDir(), nil); err == nil {
		t.Error("Write(nil) succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(filepath.Join(file, "sub"), syntheticResults())
	if err == nil || !strings.Contains(err.Error(), "create") {
		t.Errorf("Write under a file: %v, want a create error", err)
	}
}

// nearColour reports whether c is within tol of want on every channel.
func nearColour(c color.Color, want color.NRGBA, tol int) bool {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	d := func(a, b uint8) bool { return int(a)-int(b) <= tol && int(b)-int(a) <= tol }
	return d(n.R, want.R) && d(n.G, want.G) && d(n.B, want.B)
}

// over composes a translucent colour over white, as the chart does.
func over(c color.NRGBA) color.NRGBA {
	mix := func(v uint8) uint8 { return uint8((float64(v)*float64(c.A) + 255*(255-float64(c.A))) / 255) }
	return color.NRGBA{mix(c.R), mix(c.G), mix(c.B), 255}
}

// colourRun returns the first and last column in which at least minPix
// pixels have colour want, and whether the columns between are contiguous
// but for one- or two-pixel gaps (grid lines cross the shading).
func colourRun(img image.Image, want color.NRGBA, minPix int) (first, last int, contiguous bool) {
	first, last, contiguous = -1, -1, true
	b := img.Bounds()
	for x := b.Min.X; x < b.Max.X; x++ {
		n := 0
		for y := b.Min.Y; y < b.Max.Y; y++ {
			if nearColour(img.At(x, y), want, 3) {
				n++
			}
		}
		if n < minPix {
			continue
		}
		if last >= 0 && x > last+3 {
			contiguous = false
		}
		if first < 0 {
			first = x
		}
		last = x
	}
	return first, last, contiguous
}

// TestFaultWindowShading finds the shaded windows in the throughput chart's
// pixels: the failed kill-broker step (0:20-0:35) in red, the wait step
// (0:35-1:00) in grey-blue, side by side, with widths in proportion to
// their durations.
func TestFaultWindowShading(t *testing.T) {
	dir := fixtureReport(t)
	img := checkPNG(t, "throughput chart", []byte(readFile(t, filepath.Join(dir, "chart-throughput.png"))), 900, 360)
	f0, f1, fc := colourRun(img, over(colBandBad), 40)
	o0, o1, oc := colourRun(img, over(colBandOK), 40)
	if f0 < 0 || o0 < 0 {
		t.Fatalf("shading not found: failed step columns %d..%d, passing step columns %d..%d", f0, f1, o0, o1)
	}
	if !fc || !oc {
		t.Errorf("a window's shading is not one contiguous band")
	}
	if o0 < f1 || o0-f1 > 4 {
		t.Errorf("wait window starts at column %d, want right after the fault window ending at %d", o0, f1)
	}
	fw, ow := float64(f1-f0+1), float64(o1-o0+1)
	want := float64(fixtureWaitTo-fixtureFaultTo) / float64(fixtureFaultTo-fixtureFaultFrom)
	if got := ow / fw; got < want*0.95 || got > want*1.05 {
		t.Errorf("window widths %v and %v px: ratio %.3f, want %.3f (25 s / 15 s)", fw, ow, got, want)
	}
	// Both windows end where the axis ends (1:00), so the pixels per second
	// follow from them; the 0:00 origin they imply must sit just right of
	// the Y axis labels.
	pxPerSec := float64(o1+1-f0) / float64(fixtureWaitTo-fixtureFaultFrom)
	origin := float64(f0) - fixtureFaultFrom*pxPerSec
	if origin < 20 || origin > 150 {
		t.Errorf("windows imply the time axis starts at column %.0f (%.2f px/s), want 20..150", origin, pxPerSec)
	}
	t.Logf("fault window columns %d..%d, wait window %d..%d, %.2f px/s, origin at column %.0f", f0, f1, o0, o1, pxPerSec, origin)
}

func TestReduce(t *testing.T) {
	var pts []results.Point
	for i := range 3600 {
		pts = append(pts, results.Point{
			T:            fixtureStart.Add(time.Duration(i) * time.Second),
			ProducedRate: float64(100 * (i % 3)), // 0, 100, 200 per bucket of 3
			P99Ms:        float64(i % 3),
			Lost:         uint64(i),
			Lag:          int64(-i),
		})
	}
	got := reduce(pts, 1200)
	if len(got) != 1200 {
		t.Fatalf("%d points, want 1200", len(got))
	}
	for k, p := range got {
		if !p.T.Equal(pts[3*k].T) || p.ProducedRate != 100 || p.P99Ms != 2 || p.Lost != uint64(3*k+2) || p.Lag != int64(-3*k) {
			t.Fatalf("bucket %d = %+v, want T of point %d, mean rate 100, max p99 2, last lost %d, max lag %d", k, p, 3*k, 3*k+2, -3*k)
		}
	}
	short := pts[:10]
	if got := reduce(short, 1200); len(got) != 10 {
		t.Errorf("short series reduced to %d points", len(got))
	}
}

func TestFormatting(t *testing.T) {
	cases := []struct{ got, want string }{
		{fmtElapsedSeconds(0), "0:00"},
		{fmtElapsedSeconds(65), "1:05"},
		{fmtElapsedSeconds(3725), "1:02:05"},
		{percentileLabel(0), "0%"},
		{percentileLabel(1), "90%"},
		{percentileLabel(2), "99%"},
		{percentileLabel(3), "99.9%"},
		{percentileLabel(5), "99.999%"},
		{siNumber(950), "950"},
		{siNumber(15000), "15k"},
		{siNumber(2.5e6), "2.5M"},
		{siNumber(0.25), "0.25"},
		{fmtCount(0), "0"},
		{fmtCount(999), "999"},
		{fmtCount(1000), "1,000"},
		{fmtCount(1234567), "1,234,567"},
		{pctChange(230, 310), "+35%"},
		{pctChange(100, 95), "-5.0%"},
		{pctChange(0, 3), "new"},
		{pctChange(7, 7), "same"},
		{fmtMs(4.8), "4.80 ms"},
		{fmtMs(31.25), "31.2 ms"},
		{fmtMs(1843.5), "1844 ms"},
		{mdCell("a|b\nc<d>"), `a\|b c&lt;d&gt;`},
	}
	for i, c := range cases {
		if c.got != c.want {
			t.Errorf("case %d: got %q, want %q", i, c.got, c.want)
		}
	}
	if x := percentileX(99.9); x < 2.999 || x > 3.001 {
		t.Errorf("percentileX(99.9) = %v, want 3", x)
	}
}

// BenchmarkWrite measures rendering a report: the one-minute fixture, and a
// one-hour run (3,600 points, drawn from 1,200 buckets) with 12 steps.
func BenchmarkWrite(b *testing.B) {
	long := syntheticResults()
	long.Series, long.Steps = nil, nil
	for i := range 3600 {
		long.Series = append(long.Series, results.Point{
			T: fixtureStart.Add(time.Duration(i) * time.Second), TargetRate: 50000, ProducedRate: 50000, ReplicatedRate: 49900,
			P50Ms: 30, P99Ms: 80 + float64(i%600)/10, P999Ms: 150, Lost: uint64(i / 100), Lag: int64(i % 500),
		})
	}
	for k := range 12 {
		s := fixtureStart.Add(time.Duration(120+k*280) * time.Second)
		long.Steps = append(long.Steps, results.Step{Index: k + 1, Action: "kill-broker", Start: s, End: s.Add(time.Minute), Verdict: results.Pass})
	}
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name string
		r    *results.Results
	}{{"minute", syntheticResults()}, {"hour", long}} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			for b.Loop() {
				if err := Write(dir, c.r, WithLogger(log)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
