package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/metricsserver"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/table"
	"github.com/kmtproject/kmt/report"
)

// outputFlags are the flags of every command that produces a verdict.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.PathFlag{Name: "summary-json", Usage: "write the one-screen summary as JSON to this file"},
		&cli.PathFlag{Name: "results-json", Usage: "write the full results (workload, steps, series, verdicts) as JSON to this file"},
		&cli.PathFlag{Name: "report", Usage: "write report.html, report.md, charts and results.json into this directory"},
		&cli.StringFlag{Name: "metrics-addr", Value: "127.0.0.1:9102", Usage: "serve Prometheus metrics on this address (empty: off); when the default is taken (another kmt), a free port is used and printed"},
		&cli.BoolFlag{Name: "pprof", Usage: "also serve /debug/pprof/ on the metrics address"},
		&cli.StringFlag{Name: "grafana-url", Usage: "post fault windows as annotations to this Grafana (token in KMT_GRAFANA_TOKEN)"},
		&cli.StringFlag{Name: "grafana-token", Usage: "Grafana service account token for annotations", EnvVars: []string{"KMT_GRAFANA_TOKEN"}},
	}
}

// startMetrics serves reg on --metrics-addr. When the address is the default
// (not given by the user) and already in use, another kmt most likely holds
// it: the server moves to a free port on the same host instead of failing,
// so two runs work side by side without a flag. The URL is printed on
// stderr either way. A taken address the user asked for is a usage error.
func startMetrics(c *cli.Context, reg *prometheus.Registry) (*metricsserver.Server, error) {
	addr := c.String("metrics-addr")
	srv, err := metricsserver.Start(c.Context, addr, reg, c.Bool("pprof"))
	note := ""
	if err != nil && errors.Is(err, syscall.EADDRINUSE) && !c.IsSet("metrics-addr") {
		host, _, _ := net.SplitHostPort(addr)
		srv, err = metricsserver.Start(c.Context, net.JoinHostPort(host, "0"), reg, c.Bool("pprof"))
		note = fmt.Sprintf(" (%s is in use, another kmt?)", addr)
	}
	if err != nil {
		return nil, exit.Usagef("--metrics-addr: %v", err)
	}
	if srv != nil {
		fmt.Fprintf(c.App.ErrWriter, "metrics:             %s%s\n", srv.URL(), note)
	}
	return srv, nil
}

// statusWriter prints live status lines: overwritten in place on a
// terminal, one per line otherwise.
type statusWriter struct {
	w   io.Writer
	tty bool
}

func newStatusWriter(f *os.File) *statusWriter {
	st, err := f.Stat()
	return &statusWriter{w: f, tty: err == nil && st.Mode()&os.ModeCharDevice != 0}
}

func (s *statusWriter) Write(p []byte) (int, error) {
	line := strings.TrimRight(string(p), "\n")
	if s.tty {
		_, err := fmt.Fprintf(s.w, "\r\033[K%s", line)
		return len(p), err
	}
	_, err := fmt.Fprintln(s.w, line)
	return len(p), err
}

// done ends the in-place line so later output starts on a fresh line.
func (s *statusWriter) done() {
	if s.tty {
		fmt.Fprintln(s.w)
	}
}

// runScenario runs sc on target and reports: tables on stdout, the files the
// flags ask for, and the exit code of the verdict. reg, when non-nil, is a
// registry the target already registered its metrics with.
func runScenario(c *cli.Context, sc *scenario.Scenario, target controller.Target, reg *prometheus.Registry) error {
	ctx := c.Context
	if reg == nil {
		reg = metricsserver.NewRegistry()
	}
	cm := controller.NewMetrics(reg)
	srv, err := startMetrics(c, reg)
	if err != nil {
		return err
	}
	defer srv.Close()
	status := newStatusWriter(os.Stderr)
	r := &controller.Runner{Target: target, Scenario: sc, Metrics: cm, Status: status, Version: version}
	if u := c.String("grafana-url"); u != "" {
		r.Annotator = &controller.Annotator{URL: u, Token: c.String("grafana-token")}
	}
	res, runErr := r.Run(ctx)
	status.done()
	if res == nil {
		return runErr
	}
	res.Workload = workloadOf(sc)
	printResults(c.App.Writer, res)
	if err := writeOutputs(c, res); err != nil {
		return err
	}
	if runErr != nil {
		if !errors.Is(runErr, controller.ErrAborted) {
			return exit.Failed(runErr)
		}
		// A signal is a clean stop: the verdict covers the run so far.
		fmt.Fprintf(c.App.ErrWriter, "stopped early by signal after %s; the verdict covers the run so far\n",
			res.Ended.Sub(res.Started).Round(time.Second))
	}
	switch res.Verdict {
	case results.Pass:
	case results.Inconclusive:
		return exit.Inconclusivef("%s: verdict INCONCLUSIVE: %s", sc.Name, strings.Join(res.Summary.Warnings, "; "))
	default:
		return exit.Failed(fmt.Errorf("%s: verdict FAIL", sc.Name))
	}
	return nil
}

func workloadOf(sc *scenario.Scenario) results.Workload {
	w := sc.Workload
	return results.Workload{
		Topics: topicNames(w.Topics), Partitions: w.Partitions, Rate: w.Rate, MessageSize: w.MessageSize,
		Producers: w.Producers, Consumers: w.Consumers, Headers: *w.Headers, Duration: w.Duration.D(),
	}
}

// topicNames returns the workload's topic names: kmt-0, kmt-1, ...
func topicNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("kmt-%d", i)
	}
	return out
}

func writeOutputs(c *cli.Context, res *results.Results) error {
	if p := c.Path("summary-json"); p != "" {
		if err := results.WriteJSON(p, res.Summary); err != nil {
			return err
		}
	}
	if p := c.Path("results-json"); p != "" {
		if err := results.WriteJSON(p, res); err != nil {
			return err
		}
	}
	if dir := c.Path("report"); dir != "" {
		if err := report.Write(dir, res); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		fmt.Fprintf(c.App.Writer, "report: %s\n", dir+"/report.html")
	}
	return nil
}

// printResults writes the step table, the run-wide checks and the summary.
func printResults(w io.Writer, res *results.Results) {
	if len(res.Steps) > 0 {
		fmt.Fprintln(w)
		t := table.New("#", "step", "start", ">took", "assertion", "measured", "verdict")
		for _, s := range res.Steps {
			start := s.Start.Sub(res.Started).Round(time.Second).String()
			took := s.End.Sub(s.Start).Round(100 * time.Millisecond).String()
			if len(s.Assertions) == 0 {
				v := s.Verdict
				if s.Error != "" {
					v += " (" + s.Error + ")"
				}
				t.Row(s.Index, s.Description, start, took, "", "", v)
			}
			for i, a := range s.Assertions {
				if i == 0 {
					t.Row(s.Index, s.Description, start, took, a.Expr, a.Measured, assertionVerdict(a))
				} else {
					t.Row("", "", "", "", a.Expr, a.Measured, assertionVerdict(a))
				}
			}
		}
		_ = t.Write(w)
	}
	s := res.Summary
	fmt.Fprintln(w)
	t := table.New("measure", ">value")
	t.Row("duration", fmt.Sprintf("%.1fs", s.DurationS))
	t.Row("produced", s.Produced)
	t.Row("acked", s.Acked)
	t.Row("produce errors", s.ProduceErrors)
	t.Row("received (unique)", s.Received)
	t.Row("lost", s.Lost)
	t.Row("duplicated", s.Duplicated)
	t.Row("reordered", s.Reordered)
	t.Row("late", s.Late)
	t.Row("foreign", s.Foreign)
	t.Row("unacked but delivered", s.UnackedDelivered)
	t.Row("never acked", s.NeverAcked)
	if s.NotDrained > 0 {
		t.Row("not drained (left unread)", s.NotDrained)
	}
	t.Row("latency p50 / p90", fmt.Sprintf("%.1fms / %.1fms", s.LatencyMs.P50, s.LatencyMs.P90))
	t.Row("latency p99 / p99.9", fmt.Sprintf("%.1fms / %.1fms", s.LatencyMs.P99, s.LatencyMs.P999))
	t.Row("latency max", fmt.Sprintf("%.1fms", s.LatencyMs.Max))
	t.Row("created in the future (clock skew)", s.LatencyFuture)
	t.Row("older than 1h (latency capped)", s.LatencyOverCap)
	t.Row("throughput", fmt.Sprintf("%.0f msg/s", s.ThroughputMsgsPerS))
	t.Row("replication backlog (peak)", fmt.Sprintf("%d msgs, oldest %.1fs", s.BacklogMax, s.BacklogAgeMaxS))
	_ = t.Write(w)
	if len(res.Expect) > 0 {
		fmt.Fprintln(w)
		t := table.New("run-wide check", ">measured", "verdict")
		for _, a := range res.Expect {
			t.Row(a.Expr, a.Measured, passFail(a.Pass))
		}
		_ = t.Write(w)
	}
	for _, a := range res.Anomalies {
		if len(a.Ranges) > 0 {
			kind := a.Kind
			if a.Where != "" {
				kind += " [" + a.Where + "]"
			}
			fmt.Fprintf(w, "  %s %s: %d (%s)\n", kind, a.Stream, a.Count, rangesString(a))
		}
	}
	if len(res.Summary.Warnings) > 0 {
		fmt.Fprintln(w)
		for _, s := range res.Summary.Warnings {
			fmt.Fprintf(w, "WARNING: %s\n", s)
		}
	}
	fmt.Fprintf(w, "\nverdict: %s\n", res.Verdict)
}

func rangesString(a results.Anomaly) string {
	var parts []string
	for i, r := range a.Ranges {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("... %d ranges", len(a.Ranges)))
			break
		}
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// assertionVerdict is PASS, FAIL or NO DATA.
func assertionVerdict(a results.Assertion) string {
	if a.NoData {
		return results.NoData
	}
	return passFail(a.Pass)
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
