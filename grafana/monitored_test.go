package grafana_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kmtproject/kmt/grafana/alerts"
	"github.com/kmtproject/kmt/internal/syncbuf"
)

// TestRunMonitored runs scripts/run-monitored.sh (make run-monitored) with a
// short kmt local run and checks that the Prometheus it prints scrapes kmt
// with every alert rule loaded, and that everything stops with kmt.
func TestRunMonitored(t *testing.T) {
	t.Parallel()
	needTool(t, "prometheus")
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("SKIPPED, NOT RUN: bash not found: %v", err)
	}
	bin := buildKmt(t)
	promAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	metricsAddr := "127.0.0.1:" + strconv.Itoa(freePort(t))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../scripts/run-monitored.sh", bin, "--duration", "15s", "--rate", "100")
	cmd.Env = append(cmd.Environ(), "PROMETHEUS_ADDR="+promAddr, "KMT_METRICS_ADDR="+metricsAddr)
	// The script prints the Prometheus URL before kmt starts.
	out := &urlWatcher{re: regexp.MustCompile(`Prometheus\s+(http://\S+)`), found: make(chan string, 1)}
	stderr := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, stderr
	// The script, kmt and Prometheus share a process group of their own, so
	// a failed test can stop all three through the script's PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start run-monitored.sh: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		}
	})

	var promURL string
	select {
	case promURL = <-out.found:
	case <-time.After(30 * time.Second):
		t.Fatalf("run-monitored.sh printed no Prometheus URL in 30s; stdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
	if promURL != "http://"+promAddr {
		t.Errorf("printed Prometheus URL %s, want http://%s", promURL, promAddr)
	}
	prom := &promServer{url: promURL}

	// Prometheus scrapes kmt and has loaded every alert rule.
	want, err := alerts.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 30*time.Second)
	defer waitCancel()
	err = waitFor(waitCtx, 500*time.Millisecond, func() error {
		if _, err := prom.query(ctx, `up{job="kmt"} == 1`); err != nil {
			return fmt.Errorf("kmt not scraped yet: %w", err)
		}
		if _, err := prom.query(ctx, `sum(kmt_producer_messages_sent_total) > 0`); err != nil {
			return fmt.Errorf("no traffic scraped yet: %w", err)
		}
		var data struct {
			Groups []struct {
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.get(ctx, "/api/v1/rules", nil, &data); err != nil {
			return err
		}
		n := 0
		for _, g := range data.Groups {
			n += len(g.Rules)
		}
		if n != len(want) {
			return fmt.Errorf("%d rules loaded, want %d", n, len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out.String(), tail(stderr.String(), 3000))
	}

	// Without a terminal the script ends with kmt, with kmt's exit code
	// (0: a clean run passes), and takes Prometheus down with it.
	if err := cmd.Wait(); err != nil {
		t.Fatalf("run-monitored.sh: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), tail(stderr.String(), 3000))
	}
	if _, err := prom.query(context.Background(), "up"); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Prometheus still answers after the script ended (err %v)", err)
	}
}

// urlWatcher collects a process's output and sends the first submatch of re
// found in it.
type urlWatcher struct {
	syncbuf.Buffer
	re    *regexp.Regexp
	found chan string
	sent  bool
}

func (w *urlWatcher) Write(p []byte) (int, error) {
	n, err := w.Buffer.Write(p)
	if !w.sent {
		if m := w.re.FindStringSubmatch(w.Buffer.String()); m != nil {
			w.found <- m[1]
			w.sent = true
		}
	}
	return n, err
}
