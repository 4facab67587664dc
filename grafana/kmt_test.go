package grafana_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// liveScenario is the workload the live test runs: steady traffic through
// the reference mirror, and from 5 s on a mild WAN latency fault that stays
// active while the test queries, so the fault annotation and the active
// faults panel have data. Nothing is lost, so no alert may fire.
const liveScenario = `name: grafana-live
description: Steady traffic with a harmless WAN latency fault, for the dashboards' live test.
workload:
  topics: 2
  partitions: 3
  rate: 200
  message_size: 200
  producers: 1
  consumers: 1
  duration: 90s
  loss_grace: 10s
steps:
  - at: 5s
    action: network
    latency: 5ms
    for: 80s
`

// kmtBuild is the kmt binary built once for every test of the package.
var kmtBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// TestMain removes the directory of the kmt binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if kmtBuild.dir != "" {
		_ = os.RemoveAll(kmtBuild.dir)
	}
	os.Exit(code)
}

// buildKmt builds the kmt binary (once per test binary) and returns its
// path.
func buildKmt(t *testing.T) string {
	t.Helper()
	kmtBuild.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			kmtBuild.err = fmt.Errorf("go toolchain not on PATH: %w", err)
			return
		}
		if kmtBuild.dir, err = os.MkdirTemp("", "kmt-grafana-test-"); err != nil {
			kmtBuild.err = err
			return
		}
		bin := filepath.Join(kmtBuild.dir, "kmt")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, goBin, append(args, "./cmd/kmt")...)
		cmd.Dir = ".." // the module root
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			kmtBuild.err = fmt.Errorf("go build ./cmd/kmt: %w\n%s", err, out)
			return
		}
		kmtBuild.bin = bin
		t.Logf("built kmt (race detector %v) in %s", raceEnabled, time.Since(start).Round(time.Millisecond))
	})
	if kmtBuild.err != nil {
		t.Fatal(kmtBuild.err)
	}
	return kmtBuild.bin
}

// startKmt builds kmt and runs the live scenario on the local target (two
// embedded clusters, the reference mirror, producers, consumers and the
// controller in one process), serving every metric on one free 127.0.0.1
// port. It returns that address once /metrics answers; a cleanup stops kmt
// by PID.
func startKmt(t *testing.T) (string, *process) {
	t.Helper()
	bin := buildKmt(t)
	scenario := filepath.Join(t.TempDir(), "grafana-live.yaml")
	if err := os.WriteFile(scenario, []byte(liveScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken meanwhile
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		p := startProcess(t, bin, "--log-level", "warn", "controller", "run",
			"--scenario", scenario, "--target", "local", "--metrics-addr", addr)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		lastErr = waitHTTP(ctx, "http://"+addr+"/metrics", p)
		cancel()
		if lastErr == nil {
			return addr, p
		}
		p.stop(t)
	}
	t.Fatalf("start kmt: %v", lastErr)
	return "", nil
}
