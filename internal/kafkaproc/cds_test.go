package kafkaproc_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// mapped reports whether the process pid has a file whose path ends in
// suffix mapped into its memory.
func mapped(t *testing.T, pid int, suffix string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "maps"))
	if err != nil {
		t.Fatalf("maps of %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(l, suffix) {
			return true
		}
	}
	return false
}

// TestClassDataArchiveWrittenThenMapped starts a real broker with an empty
// cache: it runs without an archive and writes one when it stops
// gracefully. The next broker maps that archive (the kernel's view of its
// memory, not kmt's word), and a SIGKILLed broker leaves no half-written
// archive behind.
func TestClassDataArchiveWrittenThenMapped(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(kafkaproc.CacheEnv, cache)
	t.Setenv(kafkaproc.NoClassDataEnv, "")
	archives := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, "cds", "*", "*.jsa"))
		return m
	}

	// A SIGKILLed JVM writes nothing.
	c := kafkatest.RealKafka(t, kafkaproc.Config{Name: "cds-killed", Brokers: 1, Combined: true})
	if err := c.Kill(0); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	time.Sleep(time.Second)
	if a := archives(); len(a) != 0 {
		t.Fatalf("a SIGKILLed broker left archives %v", a)
	}
	if m, _ := filepath.Glob(filepath.Join(cache, "cds", "*", "*.tmp")); len(m) != 0 {
		t.Fatalf("a SIGKILLed broker left temporary files %v", m)
	}

	c = kafkatest.RealKafka(t, kafkaproc.Config{Name: "cds-first", Brokers: 1, Combined: true})
	if mapped(t, c.PID(0), "/broker.jsa") {
		t.Fatal("the first broker maps an archive though the cache is empty")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(archives()) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	a := archives()
	if len(a) != 1 || filepath.Base(a[0]) != "broker.jsa" {
		t.Fatalf("archives after a graceful stop: %v, want one broker.jsa", a)
	}

	c = kafkatest.RealKafka(t, kafkaproc.Config{Name: "cds-second", Brokers: 1, Combined: true})
	if !mapped(t, c.PID(0), "/broker.jsa") {
		t.Errorf("the second broker does not map %s; its log:\n%s", a[0], tailOf(t, c.LogPath(0)))
	}
}

// tailOf returns the last 30 lines of the file at path.
func tailOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}
