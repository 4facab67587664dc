// Command realkafka starts a real Apache Kafka (a KRaft cluster of child
// JVMs, internal/kafkaproc) on 127.0.0.1, runs a command with
// KMT_TEST_BROKERS pointing at it, and stops the cluster when the command
// ends (or on Ctrl-C/SIGTERM). It exits with the command's status, or 1 when
// Kafka does not start. `make test-real-kafka` runs kmt's end-to-end tests
// through it.
//
//	go run ./scripts/realkafka -kafka-home "$(make -s kafka | tail -1)" -- go test ./cmd/kmt/
//
// Without -kafka-home it uses $KAFKA_HOME.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

func main() {
	os.Exit(run())
}

func run() int {
	home := flag.String("kafka-home", "", "Kafka distribution folder (DIR/libs/*.jar); default $KAFKA_HOME")
	brokers := flag.Int("brokers", 1, "number of brokers")
	combined := flag.Bool("combined", true, "run each broker as broker+controller (one JVM for a one-broker cluster) instead of adding a dedicated controller")
	keep := flag.Bool("keep", false, "keep the run directory (logs, data) after the command ends")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: realkafka [flags] -- command [args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	begin := time.Now()
	c, err := kafkaproc.StartCluster(ctx, kafkaproc.Config{Home: *home, Name: "test", Brokers: *brokers,
		Combined: *combined, Keep: *keep, Logger: log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "realkafka: %v\n", err)
		return 1
	}
	defer c.Close()
	addrs := strings.Join(c.Bootstrap(), ",")
	fmt.Fprintf(os.Stderr, "realkafka: Apache Kafka ready in %.1fs at %s (%s=%s; logs in %s)\n",
		time.Since(begin).Seconds(), addrs, kafkatest.BrokersEnv, addrs, c.Dir())

	cmd := exec.CommandContext(ctx, flag.Arg(0), flag.Args()[1:]...)
	cmd.Env = append(os.Environ(), kafkatest.BrokersEnv+"="+addrs)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	err = cmd.Run()
	fmt.Fprintf(os.Stderr, "realkafka: command ended after %.1fs; stopping Kafka\n", time.Since(begin).Seconds())
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintf(os.Stderr, "realkafka: %v\n", err)
		return 1
	}
}
