// Package report renders what a person reads after a kmt run: one
// self-contained HTML page (charts embedded as PNG data URIs, inline CSS, no
// scripts, fonts or links to fetch), the same content as Markdown with the
// charts as PNG files beside it, and the results file it was made from.
//
// Charts are drawn in Go with gonum/plot when the report is written, never by
// a browser at view time. Compare renders two runs side by side with the
// differences highlighted.
package report

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kmtproject/kmt/internal/results"
)

// File names written into the report directory.
const (
	// HTMLFile is the self-contained page written by Write.
	HTMLFile = "report.html"
	// MarkdownFile is the Markdown version written by Write; its charts are
	// PNG files in the same directory.
	MarkdownFile = "report.md"
	// ResultsFile is the copy of the results written by Write.
	ResultsFile = "results.json"
	// CompareHTMLFile is the self-contained page written by Compare.
	CompareHTMLFile = "compare.html"
	// CompareMarkdownFile is the Markdown version written by Compare.
	CompareMarkdownFile = "compare.md"
)

// Option changes how a report is rendered.
type Option func(*options)

type options struct {
	width, height int
	maxAnomalies  int
	labelA        string
	labelB        string
	log           *slog.Logger
}

func defaultOptions() options {
	return options{
		width:        900,
		height:       360,
		maxAnomalies: 50,
		labelA:       "A",
		labelB:       "B",
		log:          slog.Default(),
	}
}

// WithChartSize sets the size of every chart in pixels. The default is 900 by
// 360; sizes below 400 by 200 are raised to that.
func WithChartSize(width, height int) Option {
	return func(o *options) {
		o.width = max(width, 400)
		o.height = max(height, 200)
	}
}

// WithMaxAnomalies sets how many per-stream anomaly records the report lists
// (totals always cover all of them). The default is 50; n < 1 means 1.
func WithMaxAnomalies(n int) Option {
	return func(o *options) { o.maxAnomalies = max(n, 1) }
}

// WithLabels names the two runs of a comparison, e.g. "MirrorMaker 2" and
// "uReplicator". The default is "A" and "B"; an empty name keeps the default.
// Write ignores it.
func WithLabels(a, b string) Option {
	return func(o *options) {
		if a != "" {
			o.labelA = a
		}
		if b != "" {
			o.labelB = b
		}
	}
}

// WithLogger sets the logger for the report's phase messages. The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

func buildOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Write renders r into dir (created when missing): report.html, report.md
// with its chart PNGs (chart-*.png) and results.json. Existing files of the
// same names are replaced.
func Write(dir string, r *results.Results, opts ...Option) error {
	if r == nil {
		return errors.New("write report: results are nil")
	}
	o := buildOptions(opts)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: create %s: %w", dir, err)
	}
	o.log.Debug("report rendering", "dir", dir, "points", len(r.Series), "steps", len(r.Steps))
	pg, err := buildPage(r, o)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := writeCharts(dir, pg.allCharts()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := renderTo(filepath.Join(dir, HTMLFile), htmlTemplates, "report", pg); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := renderTo(filepath.Join(dir, MarkdownFile), mdTemplates, "report", pg); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := results.WriteJSON(filepath.Join(dir, ResultsFile), r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	o.log.Info("report written", "html", filepath.Join(dir, HTMLFile), "markdown", filepath.Join(dir, MarkdownFile), "verdict", r.Verdict)
	return nil
}

// Compare renders runs a and b side by side into dir (created when missing):
// compare.html and compare.md with its chart PNGs (compare-*.png). Name the
// runs with WithLabels.
func Compare(dir string, a, b *results.Results, opts ...Option) error {
	if a == nil || b == nil {
		return errors.New("compare reports: results are nil")
	}
	o := buildOptions(opts)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("compare reports: create %s: %w", dir, err)
	}
	cp, err := buildComparison(a, b, o)
	if err != nil {
		return fmt.Errorf("compare reports: %w", err)
	}
	if err := writeCharts(dir, cp.Charts); err != nil {
		return fmt.Errorf("compare reports: %w", err)
	}
	if err := renderTo(filepath.Join(dir, CompareHTMLFile), htmlTemplates, "compare", cp); err != nil {
		return fmt.Errorf("compare reports: %w", err)
	}
	if err := renderTo(filepath.Join(dir, CompareMarkdownFile), mdTemplates, "compare", cp); err != nil {
		return fmt.Errorf("compare reports: %w", err)
	}
	o.log.Info("comparison written", "html", filepath.Join(dir, CompareHTMLFile), "a", o.labelA, "b", o.labelB)
	return nil
}

func writeCharts(dir string, charts []*chart) error {
	for _, c := range charts {
		path := filepath.Join(dir, c.File)
		if err := os.WriteFile(path, c.PNG, 0o644); err != nil {
			return fmt.Errorf("write chart %s: %w", path, err)
		}
	}
	return nil
}
