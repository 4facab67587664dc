package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/controller/processes"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/controller/workload"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/metricsserver"
)

func localCommand() *cli.Command {
	return &cli.Command{
		Name:  "local",
		Usage: "run a two-region replication test on this machine: embedded (or, with --kafka-home, real Apache Kafka) source and destination clusters, a replicator, producers and validating consumers",
		Description: "Starts two embedded Kafka-compatible clusters on 127.0.0.1, replicates between them with kmt's mirror\n" +
			"across a fault-injecting WAN link, produces sequence-numbered messages and validates every one at the\n" +
			"destination. With --kafka-home DIR the clusters are real Kafka brokers (JVM child processes from the\n" +
			"distribution in DIR) and the replicator is real MirrorMaker 2 (see docs/real-kafka.md).\n" +
			"Ends with a summary and a verdict: exit 0 PASS, 1 FAIL, 2 bad flags, 3 INCONCLUSIVE (kmt itself saturated,\n" +
			"or its consumers could not drain).",
		Flags: append(inCategory(catWorkload,
			&cli.DurationFlag{Name: "duration", Value: 60 * time.Second, Usage: "how long to produce"},
			&cli.Float64Flag{Name: "rate", Value: 1000, Usage: "messages per second per topic (0 = unlimited)"},
			&cli.IntFlag{Name: "message-size", Value: 1000, Usage: "exact value size in bytes"},
			&cli.IntFlag{Name: "topics", Value: 1, Usage: "number of topics (kmt-0, kmt-1, ...)"},
			&cli.IntFlag{Name: "partitions", Value: 6, Usage: "partitions per topic"},
			&cli.IntFlag{Name: "producers", Value: 1, Usage: "producer instances, each writing every topic at --rate"},
			&cli.IntFlag{Name: "consumers", Value: 2, Usage: "validating consumers in one consumer group"},
			&cli.IntFlag{Name: "brokers", Value: 3, Usage: "brokers per cluster"},
			&cli.IntFlag{Name: "replicators", Value: 2, Usage: "reference mirror workers"},
			&cli.BoolFlag{Name: "headers", Value: true, Usage: "carry kmt metadata in record headers (false: in the value, for replicators that drop headers)"},
			&cli.DurationFlag{Name: "loss-grace", Value: 30 * time.Second, Usage: "how long a gap may stay open before its messages count as lost"},
			&cli.DurationFlag{Name: "trim-interval", Value: 30 * time.Second, Usage: "delete what the mirror and consumers committed past this often, keeping memory bounded (0: keep everything; with --kafka-home off unless set)"},
			&cli.DurationFlag{Name: "trim-keep", Value: time.Minute, Usage: "never trim records younger than this, so Kafka tools still see the last minute of traffic (0: trim all that was consumed)"},
		), append(inCategory(catRealKafka, processesFlags()...), inCategory(catOutput, outputFlags()...)...)...),
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
	}{{"duration", c.Duration("duration")}, {"loss-grace", c.Duration("loss-grace")}, {"trim-interval", c.Duration("trim-interval")}, {"trim-keep", c.Duration("trim-keep")}} {
		if d.v < 0 || (d.v == 0 && d.flag != "trim-interval" && d.flag != "trim-keep") {
			return exit.Usagef("--%s: must be positive, got %s", d.flag, d.v)
		}
	}
	sc, err := scenario.FromWorkload("local", w)
	if err == nil {
		err = local.CheckWorkload(sc.Workload)
	}
	if err != nil {
		return exit.Usagef("--%s", flagOf(err.Error()))
	}
	target := "local"
	if c.IsSet("kafka-home") {
		target = "processes"
	}
	return runTarget(c, sc, target)
}

// flagOf maps "workload.message_size: must ..." to "message-size: must ...".
func flagOf(msg string) string {
	msg = strings.TrimPrefix(msg, "workload.")
	if i := strings.Index(msg, ":"); i > 0 {
		return strings.ReplaceAll(msg[:i], "_", "-") + msg[i:]
	}
	return msg
}

// processesFlags are the flags of the processes target (real Kafka).
func processesFlags() []cli.Flag {
	return []cli.Flag{
		&cli.PathFlag{Name: "kafka-home", Usage: "Apache Kafka distribution folder (DIR/libs/*.jar, e.g. `make -s kafka | tail -1`): run real Kafka brokers and MirrorMaker 2 (default with --target processes: $KAFKA_HOME)"},
		&cli.StringFlag{Name: "replicator", Usage: "replicator on real Kafka: mirrormaker2 (default with --kafka-home) or kmt (the reference mirror; the only one on embedded clusters)"},
		&cli.StringFlag{Name: "replication-policy", Value: "identity", Usage: "identity (same topic names) or default (destination topics named source.<topic>, MirrorMaker 2's DefaultReplicationPolicy; kmt's mirror with --topic-prefix source.)"},
		&cli.BoolFlag{Name: "keep", Usage: "keep the real clusters' run directory (configurations, logs, data) after the run for a post-mortem"},
	}
}

// runTarget runs sc on a fresh local ("local": embedded clusters) or
// processes (real Kafka) topology.
func runTarget(c *cli.Context, sc *scenario.Scenario, target string) error {
	// Refused before anything starts (the clusters take seconds).
	if err := local.CheckWorkload(sc.Workload); err != nil {
		return exit.Usagef("%v", err)
	}
	if !sc.RunsOn(target) {
		return exit.Usagef("--target: scenario %s is for %s only", sc.Name, strings.Join(sc.Targets, ", "))
	}
	policy := c.String("replication-policy")
	var prefix string
	switch policy {
	case "identity":
	case "default":
		prefix = "source."
	default:
		return exit.Usagef("--replication-policy: %q is not identity or default", policy)
	}
	replicator := c.String("replicator")
	switch {
	case replicator == "" && target == "processes":
		replicator = processes.MirrorMaker2
	case replicator == "":
		replicator = processes.KMT
	case replicator != processes.MirrorMaker2 && replicator != processes.KMT:
		return exit.Usagef("--replicator: %q is not mirrormaker2 or kmt", replicator)
	case replicator == processes.MirrorMaker2 && target == "local":
		return exit.Usagef("--replicator: mirrormaker2 needs real Kafka: give --kafka-home DIR (or --target processes)")
	}
	if target == "local" {
		if c.IsSet("keep") {
			return exit.Usagef("--keep: only real Kafka (--kafka-home) has a run directory to keep")
		}
		return runLocal(c, sc, prefix)
	}
	return runProcesses(c, sc, replicator, policy)
}

// runProcesses runs sc on two real Kafka clusters.
func runProcesses(c *cli.Context, sc *scenario.Scenario, replicator, policy string) error {
	home, err := kafkaproc.Home(c.Path("kafka-home"))
	if err != nil {
		return exit.Usagef("--kafka-home: %v", err)
	}
	if sc.Workload.DestinationLatency > 0 {
		return exit.Usagef("workload.destination_latency: the processes target has no link to the destination")
	}
	reg := metricsserver.NewRegistry()
	cfg := processes.Config{Home: home, Keep: c.Bool("keep"), Replicator: replicator, Policy: policy, Registry: reg}
	if c.IsSet("trim-interval") {
		cfg.Workload = append(cfg.Workload, workload.Trim(c.Duration("trim-interval")))
	}
	if c.Path("report") != "" || c.Path("results-json") != "" {
		cfg.Workload = append(cfg.Workload, workload.AnomalyLimit(1000))
	}
	fmt.Fprintf(c.App.ErrWriter, "starting two Kafka clusters of %d brokers from %s and %s ...\n", sc.Workload.Brokers, home, replicator)
	t, err := processes.New(c.Context, sc.Workload, cfg)
	if err != nil {
		return err
	}
	defer t.Shutdown()
	fmt.Fprintf(c.App.ErrWriter, "source brokers:      %s\ndestination brokers: %s\nrun directory:       %s\n",
		strings.Join(t.SourceAddrs(), ","), strings.Join(t.DestinationAddrs(), ","), t.Dir())
	return runScenario(c, sc, t, reg)
}

// runLocal runs sc on a fresh local topology; prefix is the reference
// mirror's destination topic prefix.
func runLocal(c *cli.Context, sc *scenario.Scenario, prefix string) error {
	reg := metricsserver.NewRegistry()
	opts := []local.Option{local.Registry(reg), local.TopicPrefix(prefix)}
	if c.IsSet("trim-interval") || c.Command.Name == "local" {
		opts = append(opts, local.Trim(c.Duration("trim-interval")), local.TrimKeep(c.Duration("trim-keep")))
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
