package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProcessesFlagsBadInput checks the real-Kafka flags' errors: each one
// exits 2 naming the flag, before any JVM starts.
func TestProcessesFlagsBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noLibs := t.TempDir()
	notKafka := t.TempDir()
	if err := os.Mkdir(filepath.Join(notKafka, "libs"), 0o755); err != nil {
		t.Fatal(err)
	}
	processesOnly := writeScenario(t, "targets: [processes]\nworkload: {duration: 1s}\n")
	localOnly := writeScenario(t, "targets: [local]\nworkload: {duration: 1s}\n")
	for _, c := range []struct {
		want string
		args []string
	}{
		{"--replicator: mirrormaker2 needs real Kafka", []string{"local", "--replicator", "mirrormaker2"}},
		{"--replicator: \"brooklin\" is not mirrormaker2 or kmt", []string{"local", "--replicator", "brooklin"}},
		{"--replication-policy: \"prefix\" is not identity or default", []string{"local", "--replication-policy", "prefix"}},
		{"--keep: only real Kafka", []string{"local", "--keep"}},
		{"--kafka-home", []string{"local", "--kafka-home", noLibs}},
		{"--kafka-home", []string{"local", "--kafka-home", notKafka}},
		{"--kafka-home", []string{"local", "--kafka-home", filepath.Join(noLibs, "missing")}},
		{"--target: scenario s is for processes only", []string{"controller", "run", "--scenario", processesOnly}},
		{"--target: scenario s is for local only", []string{"controller", "run", "--scenario", localOnly, "--target", "processes", "--kafka-home", noLibs}},
		{"--target: \"moon\" is not local, processes or kubernetes", []string{"controller", "run", "--scenario", localOnly, "--target", "moon"}},
	} {
		expectUsage(ctx, t, c.want, append(c.args, "--metrics-addr", "")...)
	}
}
