package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/metricsserver"
	"github.com/kmtproject/kmt/mirror"
)

func mirrorCommand() *cli.Command {
	return &cli.Command{
		Name:  "mirror",
		Usage: "replicate topics from a source cluster to a destination cluster (kmt's reference mirror)",
		Description: "Copies every record of the selected source topics to the destination cluster with the same key,\n" +
			"value, headers, timestamp and partition number; destination topics are created with the source's\n" +
			"partition count and grown with it. At-least-once: a source offset is committed only after the\n" +
			"destination acknowledged it. --topics takes a list, or 're:REGEX' to mirror every matching topic\n" +
			"(new ones included). Prints a status line each second on stderr. Exit 0 on SIGINT/SIGTERM,\n" +
			"2 on bad flags or when a cluster is unreachable.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "source", Usage: "source cluster brokers, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "destination", Usage: "destination cluster brokers, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "topics", Usage: "source topics, comma-separated, or re:REGEX matched against whole names (required)"},
			&cli.StringFlag{Name: "group", Value: "kmt-mirror", Usage: "consumer group on the source cluster"},
			&cli.IntFlag{Name: "workers", Value: 1, Usage: "workers (consumer group members) in this process"},
			&cli.StringFlag{Name: "topic-prefix", Usage: "prefix of destination topic names (default: none, same names)"},
			&cli.StringFlag{Name: "mode", Value: "safe", Usage: "safe (commit after the destination acked), or unsafe-commit-before-ack (loses in-flight records when killed; for testing the tester)"},
			&cli.DurationFlag{Name: "commit-interval", Value: time.Second, Usage: "how often acknowledged offsets are committed"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on this host:port at /metrics (empty: off)"},
			&cli.DurationFlag{Name: "connect-timeout", Value: 30 * time.Second, Usage: "give up connecting to a cluster after this long"},
		}, append(connFlags("source-"), connFlags("destination-")...)...),
		Action: mirrorRun,
	}
}

// mirrorConfig turns the flags into a mirror configuration, or a usage
// error naming the flag.
func mirrorConfig(c *cli.Context) (src, dst kafkaconf.Conn, cfg mirror.Config, err error) {
	if c.NArg() > 0 {
		return src, dst, cfg, exit.Usagef("mirror: unexpected argument %q (all settings are flags)", c.Args().First())
	}
	if src, err = brokerConn(c, "mirror", "source", "source-", "kmt-mirror"); err != nil {
		return src, dst, cfg, err
	}
	if dst, err = brokerConn(c, "mirror", "destination", "destination-", "kmt-mirror"); err != nil {
		return src, dst, cfg, err
	}
	topics := splitList(c.StringSlice("topics"))
	switch {
	case len(topics) == 0:
		return src, dst, cfg, exit.Usagef("mirror: --topics is required (a list, or re:REGEX)")
	case len(topics) == 1 && strings.HasPrefix(topics[0], "re:"):
		cfg.TopicRegex = strings.TrimPrefix(topics[0], "re:")
		if cfg.TopicRegex == "" {
			return src, dst, cfg, exit.Usagef("mirror: --topics re: needs a regular expression after re:")
		}
	default:
		for _, t := range topics {
			if strings.HasPrefix(t, "re:") {
				return src, dst, cfg, exit.Usagef("mirror: --topics %s: a regular expression must be the only value", t)
			}
		}
		cfg.Topics = topics
	}
	cfg.Group = c.String("group")
	if cfg.Group == "" {
		return src, dst, cfg, exit.Usagef("mirror: --group: must not be empty")
	}
	cfg.Workers = c.Int("workers")
	if cfg.Workers < 1 {
		return src, dst, cfg, exit.Usagef("mirror: --workers %d: must be at least 1", cfg.Workers)
	}
	cfg.TopicPrefix = c.String("topic-prefix")
	if strings.ContainsAny(cfg.TopicPrefix, " ,/") {
		return src, dst, cfg, exit.Usagef("mirror: --topic-prefix %q: not valid in a topic name", cfg.TopicPrefix)
	}
	if cfg.Mode, err = mirror.ParseMode(c.String("mode")); err != nil {
		return src, dst, cfg, exit.Usagef("mirror: --mode: %v", err)
	}
	cfg.CommitInterval = c.Duration("commit-interval")
	if cfg.CommitInterval <= 0 {
		return src, dst, cfg, exit.Usagef("mirror: --commit-interval %s: must be positive", cfg.CommitInterval)
	}
	return src, dst, cfg, nil
}

func mirrorRun(c *cli.Context) error {
	src, dst, cfg, err := mirrorConfig(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	reg := metricsserver.NewRegistry()
	met := mirror.NewMetrics(reg)
	m, err := mirror.New(src, dst, cfg, met)
	if err != nil {
		return exit.Usagef("mirror: %v", err) // the flags produced an invalid configuration
	}
	srv, err := metricsserver.Start(ctx, c.String("metrics-addr"), reg, false)
	if err != nil {
		return exit.Usagef("mirror: --metrics-addr: %v", err)
	}
	defer srv.Close()

	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	status := newStatusWriter(os.Stderr)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := m.Counters(), start
	for {
		select {
		case err := <-done:
			status.done()
			if err != nil {
				if ctx.Err() != nil {
					return nil // stopped while connecting
				}
				return fmt.Errorf("mirror: %w", err)
			}
			mirrorSummary(c.App.Writer, m.Counters(), time.Since(start))
			return nil
		case now := <-tick.C:
			cur := m.Counters()
			mirrorStatus(status, cur, last, now.Sub(lastAt), now.Sub(start))
			last, lastAt = cur, now
		}
	}
}

// mirrorStatus writes one status line: replication rate, totals, lag.
func mirrorStatus(w io.Writer, cur, last mirror.Counters, interval, elapsed time.Duration) {
	rate := float64(cur.Replicated-last.Replicated) / interval.Seconds()
	fmt.Fprintf(w, "mirror %5s  replicated %d  rate %.0f/s  read %d  errors %d  lag %d  workers %d\n",
		elapsed.Round(time.Second), cur.Replicated, rate, cur.Read, cur.Errors, cur.Lag, cur.Workers)
}

// mirrorSummary prints the totals at the end.
func mirrorSummary(w io.Writer, c mirror.Counters, elapsed time.Duration) {
	fmt.Fprintf(w, "mirror stopped after %s: %d records replicated (%.0f/s), %d read, %d produce errors, lag %d\n",
		elapsed.Round(time.Millisecond), c.Replicated, float64(c.Replicated)/max(elapsed.Seconds(), 1e-9), c.Read, c.Errors, c.Lag)
	if c.Dropped+c.Duplicated+c.Swapped > 0 {
		fmt.Fprintf(w, "injected faults: %d dropped, %d duplicated, %d swapped\n", c.Dropped, c.Duplicated, c.Swapped)
	}
}
