package kafkatest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
)

// KafkaHomeEnv names the environment variable that points the tests at a
// Kafka distribution folder (DIR/libs/*.jar). When it is unset, the tests
// run `make -s kafka` at the repository root and use the folder it prints
// last (assembled from Maven Central on first use, cached afterwards).
const KafkaHomeEnv = "KMT_KAFKA_HOME"

// KafkaHome returns the Kafka distribution folder the real-Kafka tests run
// on: $KMT_KAFKA_HOME, else $KAFKA_HOME, else what `make -s kafka` prints.
// Without Java 17+ or a distribution the test is skipped, except under CI
// (CI=true), where it fails: CI must run the real-Kafka tier.
func KafkaHome(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(KafkaHomeEnv)
	if dir == "" {
		dir = os.Getenv(kafkaproc.HomeEnv)
	}
	if dir == "" {
		var err error
		if dir, err = makeKafka(); err != nil {
			unavailable(t, "make -s kafka: %v", err)
		}
	}
	home, err := kafkaproc.Home(dir)
	if err != nil {
		unavailable(t, "%v", err)
	}
	return home
}

// unavailable skips the test, or fails it under CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("real Kafka unavailable (CI=true: the real-Kafka tier must run): "+format, args...)
	}
	t.Skipf("real Kafka unavailable (set %s or run make kafka): "+format, append([]any{KafkaHomeEnv}, args...)...)
}

// makeKafka runs `make -s kafka` at the module root and returns its last
// line.
func makeKafka() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.CommandContext(ctx, "make", "-s", "kafka")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return "", &exec.ExitError{ProcessState: cmd.ProcessState, Stderr: stderr.Bytes()}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// RealKafka starts a real Kafka cluster (kafkaproc.StartCluster) in the
// test's temporary directory on the distribution KafkaHome finds, and
// closes it when the test ends. cfg.Home and cfg.Dir are filled in when
// empty.
func RealKafka(t testing.TB, cfg kafkaproc.Config) *kafkaproc.Cluster {
	t.Helper()
	if cfg.Home == "" {
		cfg.Home = KafkaHome(t)
	}
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	c, err := kafkaproc.StartCluster(ctx, cfg)
	if err != nil {
		t.Fatalf("start real Kafka: %v", err)
	}
	t.Logf("real Kafka %s ready in %s: %s", c.Name(), time.Since(begin).Round(time.Millisecond), strings.Join(c.Bootstrap(), ","))
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close real Kafka: %v", err)
		}
	})
	return c
}
