package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/metricsserver"
	"github.com/kmtproject/kmt/internal/table"
	"github.com/kmtproject/kmt/producer"
)

// produceCreatePartitions is the partition count --create-topics uses when
// --partitions is 0.
const produceCreatePartitions = 3

func produceCommand() *cli.Command {
	return &cli.Command{
		Name:  "produce",
		Usage: "send paced, sequence-numbered messages to Kafka topics",
		Description: "Sends --rate messages per second to each topic on a fixed schedule, spreading a counter over keys\n" +
			"(key = n % K, per-key sequence n / K, key k always on partition k % partitions). Prints a status line\n" +
			"each second on stderr; on stop (--duration, or SIGINT/SIGTERM) flushes, sends an end-of-stream\n" +
			"marker on every key and prints what was sent, acknowledged and failed. Exit 0 on a clean stop,\n" +
			"2 on bad flags or when the cluster is unreachable.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "bootstrap-servers", Usage: "Kafka brokers to bootstrap from, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "topics", Value: cli.NewStringSlice("kmt-test"), Usage: "topics to produce to, comma-separated; each gets --rate"},
			&cli.Float64Flag{Name: "rate", Value: 1000, Usage: "messages per second per topic (0 = unlimited)"},
			&cli.IntFlag{Name: "message-size", Value: producer.DefaultMessageSize, Usage: "exact value size in bytes"},
			&cli.StringFlag{Name: "id", Usage: "producer id carried in every message (default: the host name)"},
			&cli.IntFlag{Name: "partitions", Usage: "partitions keys are mapped onto (0 = each topic's count); with --create-topics the count to create (0 = 3)"},
			&cli.IntFlag{Name: "keys", Usage: "keys (streams) per topic, a multiple of the partitions (0 = one per partition)"},
			&cli.IntFlag{Name: "replication-factor", Value: 3, Usage: "replication factor of topics created by --create-topics (-1 = broker default)"},
			&cli.DurationFlag{Name: "retention", Usage: "retention of topics created by --create-topics (0 = broker default)"},
			&cli.BoolFlag{Name: "create-topics", Usage: "create missing topics (an existing topic must have the requested partitions)"},
			&cli.BoolFlag{Name: "headers", Value: true, Usage: "carry the metadata in record headers; false: in the value (producer/run;seq;nanos;payload)"},
			&cli.StringFlag{Name: "acks", Value: "all", Usage: "required acknowledgements: all, 1 or 0"},
			&cli.BoolFlag{Name: "idempotent", Usage: "use the idempotent producer (needs --acks all)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0 = until SIGINT/SIGTERM)"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics on this host:port at /metrics (empty: off)"},
			&cli.DurationFlag{Name: "connect-timeout", Value: 30 * time.Second, Usage: "give up connecting to the brokers after this long"},
		}, append(accountingFlags("source"), connFlags("")...)...),
		Action: produceRun,
	}
}

// produceFlags maps producer.Config fields to the flags that set them.
var produceFlags = map[string]string{
	"ID":          "--id",
	"Topics":      "--topics",
	"Rate":        "--rate",
	"Duration":    "--duration",
	"MessageSize": "--message-size",
	"Partitions":  "--partitions",
	"Keys":        "--keys",
	"Encoding":    "--headers",
	"Acks":        "--acks",
	"Idempotent":  "--idempotent",
	"MaxInFlight": "--idempotent",
	"Retries":     "--idempotent",
}

// produceUsageError turns a producer.ConfigError into a usage error naming
// the flag; other errors pass through.
func produceUsageError(err error) error {
	var ce *producer.ConfigError
	if errors.As(err, &ce) {
		flag := produceFlags[ce.Field]
		if flag == "" {
			flag = ce.Field
		}
		return exit.Usagef("produce: %s %v: %s", flag, ce.Value, ce.Reason)
	}
	return err
}

func produceRun(c *cli.Context) error {
	if c.NArg() > 0 {
		return exit.Usagef("produce: unexpected argument %q (all settings are flags)", c.Args().First())
	}
	conn, err := brokerConn(c, "produce", "bootstrap-servers", "", "kmt-produce")
	if err != nil {
		return err
	}
	enc := message.Headers
	if !c.Bool("headers") {
		enc = message.Body
	}
	cfg := producer.Config{
		ID:          c.String("id"),
		Topics:      splitList(c.StringSlice("topics")),
		Rate:        c.Float64("rate"),
		Duration:    c.Duration("duration"),
		MessageSize: c.Int("message-size"),
		Partitions:  c.Int("partitions"),
		Keys:        c.Int("keys"),
		Encoding:    enc,
		Acks:        c.String("acks"),
		Idempotent:  c.Bool("idempotent"),
	}
	if c.IsSet("id") && cfg.ID == "" {
		return exit.Usagef("produce: --id: must not be empty")
	}
	if c.IsSet("message-size") && cfg.MessageSize == 0 {
		return exit.Usagef("produce: --message-size 0: must be at least 1 byte")
	}
	if err := cfg.Validate(); err != nil {
		return produceUsageError(err)
	}
	createPartitions := cfg.Partitions
	if createPartitions == 0 {
		createPartitions = produceCreatePartitions
	}
	if c.Bool("create-topics") {
		if rf := c.Int("replication-factor"); rf == 0 || rf < -1 {
			return exit.Usagef("produce: --replication-factor %d: must be >= 1 (or -1 for the broker default)", rf)
		}
		if r := c.Duration("retention"); r < 0 {
			return exit.Usagef("produce: --retention %s: must be >= 0 (0 = broker default)", r)
		}
		if cfg.Keys > 0 && cfg.Keys%createPartitions != 0 {
			return exit.Usagef("produce: --keys %d: must be a multiple of the %d partitions --create-topics creates", cfg.Keys, createPartitions)
		}
	}

	ctx := c.Context
	reg := metricsserver.NewRegistry()
	m := producer.NewMetrics(reg)
	srv, err := metricsserver.Start(ctx, c.String("metrics-addr"), reg, false)
	if err != nil {
		return exit.Usagef("produce: --metrics-addr: %v", err)
	}
	defer srv.Close()

	if c.Bool("create-topics") {
		if err := producer.EnsureTopics(ctx, conn, cfg.Topics, createPartitions, c.Int("replication-factor"), c.Duration("retention")); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	p, err := producer.New(conn, cfg, m)
	if err != nil {
		return produceUsageError(err)
	}
	pub, err := accountingPublisher(c, conn, reg)
	if err != nil {
		return err
	}

	status := newStatusWriter(os.Stderr)
	done := make(chan error, 1)
	ran := make(chan struct{})
	published := make(chan struct{})
	go func() { err := p.Run(ctx); close(ran); done <- err }()
	if pub != nil {
		defer pub.Close()
		go func() {
			defer close(published)
			if err := pub.RunProducer(p, c.Duration("accounting-interval"), ran); err != nil {
				slog.Warn("producer final accounting publication failed", "err", err)
			}
		}()
	} else {
		close(published)
	}
	select {
	case err := <-done:
		if err != nil { // failed before producing
			return produceUsageError(fmt.Errorf("produce: %w", err))
		}
		done <- nil // a very short run: finished already
	case <-p.Ready():
	}
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := p.Counters(), start
	for {
		select {
		case err := <-done:
			status.done()
			<-published
			if err != nil {
				return produceUsageError(fmt.Errorf("produce: %w", err))
			}
			produceSummary(c.App.Writer, p, time.Since(start))
			return nil
		case now := <-tick.C:
			cur := p.Counters()
			produceStatus(status, p, cur, last, now.Sub(lastAt), now.Sub(start))
			last, lastAt = cur, now
		}
	}
}

// produceStatus writes one status line: rate vs target, acked, errors,
// backlog and the ack latency p99 of the last interval.
func produceStatus(w io.Writer, p *producer.Producer, cur, last producer.Counters, interval, elapsed time.Duration) {
	rate := float64(cur.Sent-last.Sent) / interval.Seconds()
	target := "unlimited"
	if t := p.TargetRate(); t > 0 {
		target = fmt.Sprintf("%.0f/s", t)
	}
	win := p.Latency().Window()
	fmt.Fprintf(w, "produce %5s  sent %d  rate %.0f/s (target %s)  acked %d  errors %d  in flight %d  behind %d  ack p99 %s\n",
		elapsed.Round(time.Second), cur.Sent, rate, target, cur.Acked, cur.Errors, cur.InFlight, cur.Behind, produceDur(win.P99, win.Count))
}

// produceSummary prints what was sent, acknowledged and failed per topic
// and the ack latency percentiles.
func produceSummary(w io.Writer, p *producer.Producer, elapsed time.Duration) {
	rep := p.Report()
	fmt.Fprintf(w, "producer %s run %s: %s, %.0f messages/s sent\n", rep.Producer, rep.Run,
		elapsed.Round(time.Millisecond), float64(rep.Sent)/elapsed.Seconds())
	t := table.New("TOPIC", ">PARTITIONS", ">KEYS", ">SENT", ">ACKED", ">FAILED", ">UNRESOLVED", ">END MARKERS ACKED")
	for _, tr := range rep.Topics {
		t.Row(tr.Topic, tr.Partitions, tr.Keys, tr.Sent, tr.Acked, tr.Errors, tr.Unresolved, fmt.Sprintf("%d/%d", tr.EndMarkersAcked, tr.Keys))
	}
	t.Row("total", "", "", rep.Sent, rep.Acked, rep.Errors, rep.Unresolved, fmt.Sprintf("%d/%d", rep.EndMarkersAcked, len(rep.Streams)))
	_ = t.Write(w)
	s := p.Latency().Total()
	fmt.Fprintf(w, "ack latency from scheduled send (%d acks): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		s.Count, produceDur(s.P50, s.Count), produceDur(s.P90, s.Count), produceDur(s.P99, s.Count), produceDur(s.P999, s.Count), produceDur(s.Max, s.Count))
}

// produceDur formats a latency, or "-" when nothing was recorded.
func produceDur(d time.Duration, n int64) string {
	if n == 0 {
		return "-"
	}
	switch { // about three significant figures
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}
