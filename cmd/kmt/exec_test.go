package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

// runMainEnv, when set in the environment, makes the test binary run kmt's
// main instead of the tests: runKmtProcess uses it to run kmt as a separate
// process, with its real exit code, stdout and stderr.
const runMainEnv = "KMT_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		os.Args = append([]string{"kmt"}, os.Args[1:]...)
		main()
		return // main exits
	}
	os.Exit(m.Run())
}

// processResult is how a kmt process ended.
type processResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runKmtProcess runs kmt with args (and extra environment variables
// "NAME=value") in a child process and returns its exit code and output.
func runKmtProcess(ctx context.Context, t *testing.T, env []string, args ...string) processResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), runMainEnv+"=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := processResult{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run kmt %v: %v", args, err)
	}
	return r
}
