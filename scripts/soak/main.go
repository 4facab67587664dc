// Command soak runs `kmt local` for a long time at a sustained rate with
// trimming on and samples, every interval, the process's heap, goroutines,
// open file descriptors and resident memory from its metrics endpoint (the
// Go runtime and process collectors), plus the messages validated so far.
// It prints the series as a Markdown table and says whether they stayed
// flat; it exits 1 when kmt failed or a series grew. `make soak` runs it.
//
//	go run ./scripts/soak -kmt bin/kmt -duration 30m -rate 2000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// sample is one reading of the endpoint.
type sample struct {
	at         time.Duration
	heapAlloc  float64 // bytes of live heap objects (and not yet swept garbage)
	heapInuse  float64 // bytes in in-use heap spans
	rss        float64
	goroutines float64
	fds        float64
	received   float64 // unique data messages validated
	lost       float64
}

func main() {
	kmt := flag.String("kmt", "bin/kmt", "kmt binary to soak")
	duration := flag.Duration("duration", 30*time.Minute, "how long kmt local produces")
	interval := flag.Duration("interval", time.Minute, "sampling interval")
	rate := flag.Float64("rate", 2000, "messages per second per topic")
	trim := flag.Duration("trim-interval", 30*time.Second, "kmt local --trim-interval")
	out := flag.String("out", "", "also write the Markdown series to this file")
	logFile := flag.String("log", "", "kmt's stderr goes here (default: a file in the temporary directory)")
	flag.Parse()
	if err := run(*kmt, *duration, *interval, *rate, *trim, *out, *logFile, flag.Args()); err != nil {
		log.Printf("soak: %v", err)
		os.Exit(1)
	}
}

func run(kmt string, duration, interval time.Duration, rate float64, trim time.Duration, out, logFile string, extra []string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "kmt-soak-")
	if err != nil {
		return err
	}
	if logFile == "" {
		logFile = filepath.Join(dir, "kmt.log")
	}
	lf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer lf.Close()
	summary := filepath.Join(dir, "summary.json")
	args := append([]string{"--log-level", "warn", "local", "--duration", duration.String(), "--rate", fmt.Sprint(rate),
		"--trim-interval", trim.String(), "--metrics-addr", addr, "--summary-json", summary}, extra...)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.Command(kmt, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	fmt.Printf("soak: %s %s\nsoak: kmt's output in %s\n", kmt, strings.Join(args, " "), logFile)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", kmt, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	url := "http://" + addr + "/metrics"
	var series []sample
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var kmtErr error
loop:
	for {
		select {
		case kmtErr = <-exited:
			break loop
		case <-ctx.Done():
			_ = cmd.Process.Signal(os.Interrupt)
			kmtErr = <-exited
			break loop
		case <-tick.C:
			s, err := scrape(url)
			if err != nil {
				log.Printf("soak: scrape at %s: %v", time.Since(start).Round(time.Second), err)
				continue
			}
			s.at = time.Since(start)
			series = append(series, s)
			fmt.Println(row(s))
		}
	}
	table := markdown(series)
	verdict := flatness(series)
	fmt.Printf("\n%s\n%s\n", table, verdict)
	if b, err := os.ReadFile(summary); err == nil {
		fmt.Printf("kmt summary: %s\n", strings.Join(strings.Fields(string(b)), " "))
	}
	if out != "" {
		if err := os.WriteFile(out, []byte(table+"\n"+verdict+"\n"), 0o644); err != nil {
			return err
		}
	}
	var ee *exec.ExitError
	switch {
	case errors.As(kmtErr, &ee):
		return fmt.Errorf("kmt exited %d (see %s)", ee.ExitCode(), logFile)
	case kmtErr != nil:
		return kmtErr
	case strings.HasPrefix(verdict, "NOT FLAT"):
		return errors.New(verdict)
	}
	return nil
}

// freeAddr returns a free 127.0.0.1 port for kmt's metrics.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// scrape reads the endpoint once.
func scrape(url string) (sample, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return sample{}, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return parse(resp.Body)
}

// parse extracts the soak's figures from Prometheus text exposition.
func parse(r io.Reader) (sample, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return sample{}, fmt.Errorf("parse metrics: %w", err)
	}
	sum := func(name string, match func(*dto.Metric) bool) float64 {
		var v float64
		f := fams[name]
		if f == nil {
			return 0
		}
		for _, m := range f.GetMetric() {
			if match != nil && !match(m) {
				continue
			}
			switch {
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Untyped != nil:
				v += m.GetUntyped().GetValue()
			}
		}
		return v
	}
	notDuplicate := func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "result" {
				return l.GetValue() != "duplicate"
			}
		}
		return true
	}
	return sample{
		heapAlloc:  sum("go_memstats_heap_alloc_bytes", nil),
		heapInuse:  sum("go_memstats_heap_inuse_bytes", nil),
		rss:        sum("process_resident_memory_bytes", nil),
		goroutines: sum("go_goroutines", nil),
		fds:        sum("process_open_fds", nil),
		received:   sum("kmt_consumer_messages_total", notDuplicate),
		lost:       sum("kmt_consumer_lost_messages_total", nil),
	}, nil
}

func mib(b float64) string { return fmt.Sprintf("%.0f", b/(1<<20)) }

func row(s sample) string {
	return fmt.Sprintf("| %s | %s | %s | %s | %.0f | %.0f | %.0f | %.0f |",
		s.at.Round(time.Second), mib(s.heapAlloc), mib(s.heapInuse), mib(s.rss), s.goroutines, s.fds, s.received, s.lost)
}

func markdown(series []sample) string {
	var b strings.Builder
	b.WriteString("| elapsed | heap alloc MiB | heap in use MiB | RSS MiB | goroutines | open fds | messages validated | lost |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range series {
		b.WriteString(row(s) + "\n")
	}
	return b.String()
}

// flatness compares the second half of the run with the first (after the
// first sample, the warm-up): goroutines and open descriptors must not
// trend up, and the heap's maximum in the second half must stay within 25%
// (plus 32 MiB of GC slack) of the first half's.
func flatness(series []sample) string {
	if len(series) < 4 {
		return fmt.Sprintf("too few samples (%d) to judge flatness", len(series))
	}
	warm := series[1:]
	half := len(warm) / 2
	first, second := warm[:half], warm[half:]
	maxOf := func(ss []sample, f func(sample) float64) float64 {
		var v []float64
		for _, s := range ss {
			v = append(v, f(s))
		}
		sort.Float64s(v)
		return v[len(v)-1]
	}
	var problems []string
	heap := func(s sample) float64 { return s.heapInuse }
	if a, b := maxOf(first, heap), maxOf(second, heap); b > a*1.25+32<<20 {
		problems = append(problems, fmt.Sprintf("heap in use grew from at most %s MiB to %s MiB", mib(a), mib(b)))
	}
	gr := func(s sample) float64 { return s.goroutines }
	if a, b := maxOf(first, gr), maxOf(second, gr); b > a*1.1+10 {
		problems = append(problems, fmt.Sprintf("goroutines grew from at most %.0f to %.0f", a, b))
	}
	fd := func(s sample) float64 { return s.fds }
	if a, b := maxOf(first, fd), maxOf(second, fd); b > a+10 {
		problems = append(problems, fmt.Sprintf("open fds grew from at most %.0f to %.0f", a, b))
	}
	if len(problems) > 0 {
		return "NOT FLAT: " + strings.Join(problems, "; ")
	}
	return fmt.Sprintf("flat: over %d samples after warm-up, heap in use, goroutines and open fds did not grow between the first and second half", len(warm))
}
