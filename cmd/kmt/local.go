package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/metricsserver"
)

func localCommand() *cli.Command {
	return &cli.Command{
		Name:  "local",
		Usage: "run a two-region replication test in one process: embedded source and destination clusters, the reference mirror, producers and validating consumers",
		Description: "Starts two embedded Kafka-compatible clusters on 127.0.0.1, replicates between them with kmt's mirror\n" +
			"across a fault-injecting WAN link, produces sequence-numbered messages and validates every one at the\n" +
			"destination. Ends with a summary and a verdict: exit 0 PASS, 1 FAIL, 2 bad flags, 3 INCONCLUSIVE (kmt itself\n" +
			"saturated, or its consumers could not drain).",
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 60 * time.Second, Usage: "how long to produce"},
			&cli.Float64Flag{Name: "rate", Value: 1000, Usage: "messages per second per topic"},
			&cli.IntFlag{Name: "message-size", Value: 1000, Usage: "exact value size in bytes"},
			&cli.IntFlag{Name: "topics", Value: 1, Usage: "number of topics (kmt-0, kmt-1, ...)"},
			&cli.IntFlag{Name: "partitions", Value: 6, Usage: "partitions per topic"},
			&cli.IntFlag{Name: "producers", Value: 1, Usage: "producer instances, each writing every topic at --rate"},
			&cli.IntFlag{Name: "consumers", Value: 2, Usage: "validating consumers in one consumer group"},
			&cli.IntFlag{Name: "brokers", Value: 3, Usage: "brokers per cluster"},
			&cli.IntFlag{Name: "replicators", Value: 2, Usage: "reference mirror workers"},
			&cli.BoolFlag{Name: "headers", Value: true, Usage: "carry kmt metadata in record headers (false: in the value, for replicators that drop headers)"},
			&cli.DurationFlag{Name: "loss-grace", Value: 30 * time.Second, Usage: "how long a gap may stay open before its messages count as lost"},
			&cli.DurationFlag{Name: "trim-interval", Value: 30 * time.Second, Usage: "delete what the mirror and consumers committed past this often, keeping memory bounded (0: keep everything)"},
		}, outputFlags()...),
		Action: localAction,
	}
}

func localAction(c *cli.Context) error {
	headers := c.Bool("headers")
	w := scenario.Workload{
		Topics: c.Int("topics"), Partitions: c.Int("partitions"), Rate: c.Float64("rate"),
		MessageSize: c.Int("message-size"), Producers: c.Int("producers"), Consumers: c.Int("consumers"),
		Headers: &headers, Duration: scenario.Duration(c.Duration("duration")), LossGrace: scenario.Duration(c.Duration("loss-grace")),
		Brokers: c.Int("brokers"), Replicators: c.Int("replicators"),
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"duration", c.Duration("duration")}, {"loss-grace", c.Duration("loss-grace")}, {"trim-interval", c.Duration("trim-interval")}} {
		if d.v < 0 || (d.v == 0 && d.flag != "trim-interval") {
			return exit.Usagef("--%s: must be positive, got %s", d.flag, d.v)
		}
	}
	sc, err := scenario.FromWorkload("local", w)
	if err != nil {
		return exit.Usagef("--%s", flagOf(err.Error()))
	}
	return runLocal(c, sc)
}

// flagOf maps "workload.message_size: must ..." to "message-size: must ...".
func flagOf(msg string) string {
	msg = strings.TrimPrefix(msg, "workload.")
	if i := strings.Index(msg, ":"); i > 0 {
		return strings.ReplaceAll(msg[:i], "_", "-") + msg[i:]
	}
	return msg
}

// runLocal runs sc on a fresh local topology.
func runLocal(c *cli.Context, sc *scenario.Scenario) error {
	reg := metricsserver.NewRegistry()
	opts := []local.Option{local.Registry(reg)}
	if c.IsSet("trim-interval") || c.Command.Name == "local" {
		opts = append(opts, local.Trim(c.Duration("trim-interval")))
	}
	if c.Path("report") != "" || c.Path("results-json") != "" {
		opts = append(opts, local.AnomalyLimit(1000))
	}
	t, err := local.New(sc.Workload, opts...)
	if err != nil {
		return err
	}
	defer t.Shutdown()
	fmt.Fprintf(c.App.ErrWriter, "source brokers:      %s\ndestination brokers: %s\n",
		strings.Join(t.SourceAddrs(), ","), strings.Join(t.DestinationAddrs(), ","))
	return runScenario(c, sc, t, reg)
}
