package report

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/results"
)

// comparePair returns two runs with known differences: A passed with no
// loss, 55 duplicates and p99 230 ms; B is the fixture (FAIL, 17 lost, 40
// duplicates, p99 310 ms).
func comparePair() (a, b *results.Results) {
	a, b = syntheticResults(), syntheticResults()
	a.Verdict, a.Summary.Verdict = results.Pass, results.Pass
	a.Summary.Lost = 0
	a.Summary.Duplicated = 55
	a.Summary.LatencyMs.P99 = 230
	a.Steps[0].Verdict = results.Pass
	a.Steps[0].Assertions[0] = results.Assertion{Expr: "lost == 0", Measured: "0", Value: 0, Pass: true}
	for i := range a.Series {
		a.Series[i].Lost = 0
	}
	return a, b
}

func writeCompare(t *testing.T, a, b *results.Results) string {
	t.Helper()
	dir := t.TempDir()
	if err := Compare(dir, a, b, WithLabels("MirrorMaker 2", "uReplicator"), WithLogger(testLogger(t))); err != nil {
		t.Fatalf("Compare: %v", err)
	}
	return dir
}

func TestCompareHighlightsDifferences(t *testing.T) {
	a, b := comparePair()
	dir := writeCompare(t, a, b)
	page := readFile(t, filepath.Join(dir, CompareHTMLFile))

	charts := embeddedPNGs(t, page, 900, 360)
	if len(charts) != 5 {
		t.Errorf("%d overlaid charts, want 5", len(charts))
	}
	for _, want := range []string{
		`<div class="badge pass" id="verdict-a">PASS</div>`,
		`<div class="badge fail" id="verdict-b">FAIL</div>`,
		`<tr class="worse"><th>Verdict</th><td class="num">PASS</td><td class="num">FAIL</td><td class="num chg">now FAIL</td></tr>`,
		`<tr class="worse"><th>Lost</th><td class="num">0</td><td class="num">17</td><td class="num chg">&#43;17</td></tr>`,
		`<tr class="better"><th>Duplicated</th><td class="num">55</td><td class="num">40</td><td class="num chg">-15 (-27%)</td></tr>`,
		`<tr class="worse"><th>Latency p99</th><td class="num">230 ms</td><td class="num">310 ms</td><td class="num chg">&#43;35%</td></tr>`,
		`<tr class=""><th>Latency p50</th><td class="num">4.80 ms</td><td class="num">4.80 ms</td><td class="num chg">same</td></tr>`,
		`<tr class=""><th>Reordered</th><td class="num">9</td><td class="num">9</td><td class="num chg">same</td></tr>`,
		"<th>MirrorMaker 2</th><th>uReplicator</th>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("comparison lacks %s", want)
		}
	}
	// Per-step verdicts: step 1 passed in A and failed in B.
	steps := between(t, page, `<table class="steps">`, "</table>")
	rows := strings.Split(steps, `<tr class="`)[1:]
	if len(rows) != 2 {
		t.Fatalf("%d step rows, want 2", len(rows))
	}
	if !strings.HasPrefix(rows[0], `worse">`) || !strings.Contains(rows[0], `<span class="pass">PASS</span>`) || !strings.Contains(rows[0], `<span class="fail">FAIL</span>`) {
		t.Errorf("step 1 row does not show PASS in A, FAIL in B, marked worse: %s", rows[0])
	}
	if !strings.Contains(rows[0], "<code>lost == 0</code>: 0 ") || !strings.Contains(rows[0], "<code>lost == 0</code>: 17 ") {
		t.Errorf("step 1 row lacks both runs' measured loss: %s", rows[0])
	}
	if !strings.HasPrefix(rows[1], `">`) {
		t.Errorf("step 2 (PASS in both) is marked: %s", rows[1])
	}
	// Both runs ran the same steps, so one set of windows is shaded.
	if !strings.Contains(page, "Shaded step windows: #1 kill-broker 0:20–0:35; #2 wait 0:35–1:00.") {
		t.Error("shared step windows not described")
	}

	md := readFile(t, filepath.Join(dir, CompareMarkdownFile))
	for _, want := range []string{
		"| Verdict | ✅ PASS | ❌ FAIL |",
		"| 🔴 Lost | 0 | 17 | **+17** |",
		"| 🟢 Duplicated | 55 | 40 | **-15 (-27%)** |",
		"| 🔴 Latency p99 | 230 ms | 310 ms | **+35%** |",
		"| Latency p50 | 4.80 ms | 4.80 ms | same |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("comparison Markdown lacks %s", want)
		}
	}
	refs := regexp.MustCompile(`!\[[^\]]*\]\(([^)]+)\)`).FindAllStringSubmatch(md, -1)
	if len(refs) != 5 {
		t.Fatalf("%d chart references, want 5", len(refs))
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref[1], "compare-") {
			t.Errorf("chart %s does not use the compare- prefix (it would overwrite a run's charts)", ref[1])
		}
		raw, err := os.ReadFile(filepath.Join(dir, ref[1]))
		if err != nil {
			t.Fatal(err)
		}
		checkPNG(t, ref[1], raw, 900, 360)
	}
}

func TestCompareDifferentSteps(t *testing.T) {
	a, b := comparePair()
	b.Steps = append(b.Steps, results.Step{
		Index: 3, Action: "network-cut", Start: fixtureStart.Add(50 * time.Second), End: fixtureStart.Add(55 * time.Second),
		Verdict: results.Pass,
	})
	dir := writeCompare(t, a, b)
	page := readFile(t, filepath.Join(dir, CompareHTMLFile))
	// Windows differ: each run's are shaded and labelled with its name.
	for _, want := range []string{
		"MirrorMaker 2: #1 kill-broker 0:20–0:35",
		"uReplicator: #3 network-cut 0:50–0:55",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("comparison lacks window %q", want)
		}
	}
	steps := between(t, page, `<table class="steps">`, "</table>")
	rows := strings.Split(steps, `<tr class="`)[1:]
	if len(rows) != 3 {
		t.Fatalf("%d step rows, want 3", len(rows))
	}
	if !strings.HasPrefix(rows[2], `worse"><td>/3</td>`) || !strings.Contains(rows[2], "<b>—</b>") || !strings.Contains(rows[2], "<b>network-cut</b>") {
		t.Errorf("step only B ran is not shown against a blank A: %s", rows[2])
	}
}

func TestCompareErrors(t *testing.T) {
	if err := Compare(t.TempDir(), nil, syntheticResults()); err == nil {
		t.Error("Compare with nil results succeeded")
	}
}
