package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/metricsserver"
	"github.com/kmtproject/kmt/internal/table"
)

// consumeMetricsAddr is kmt consume's default metrics address: all
// interfaces, so that Prometheus can scrape a consumer pod (kmt produce uses
// no default port; kmt local and the controller use 127.0.0.1:9102).
const consumeMetricsAddr = ":9101"

func consumeCommand() *cli.Command {
	return &cli.Command{
		Name:  "consume",
		Usage: "read kmt messages in a consumer group and account loss, duplicates, order and latency",
		Description: "Joins consumer group --group on --topics (each read as --topic-prefix + topic) and classifies every\n" +
			"message per stream (topic, producer, run, key) as in order, duplicate, reordered or gap; a gap is\n" +
			"declared lost after --loss-grace or at the stream's end marker, and counted late if it arrives\n" +
			"afterwards. Records that are not kmt messages are counted as foreign and skipped. Prints a status\n" +
			"line each second on stderr and a summary table at the end (--duration, or SIGINT/SIGTERM).\n" +
			"Exit 0 on a clean stop, 2 on bad flags or when the cluster is unreachable.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "bootstrap-servers", Usage: "Kafka brokers to bootstrap from, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "topics", Value: cli.NewStringSlice("kmt-test"), Usage: "source topic names, comma-separated (streams are identified by these names)"},
			&cli.StringFlag{Name: "topic-prefix", Usage: "prefix the replicator added to the topic names, e.g. \"source.\" for MirrorMaker 2's default policy"},
			&cli.StringFlag{Name: "group", Value: consumer.DefaultGroup, Usage: "consumer group id"},
			&cli.BoolFlag{Name: "headers", Value: true, Usage: "metadata in record headers; false: in the value (producer/run;seq;nanos;payload)"},
			&cli.DurationFlag{Name: "loss-grace", Value: consumer.DefaultLossGrace, Usage: "declare a missing message lost once it has been missing this long"},
			&cli.IntFlag{Name: "max-streams", Value: consumer.DefaultMaxStreams, Usage: "track at most this many streams; messages of further ones are counted as untracked"},
			&cli.StringFlag{Name: "id", Usage: "consumer id in logs, metrics and the report (default: the host name)"},
			&cli.DurationFlag{Name: "duration", Usage: "stop after this long (0 = until SIGINT/SIGTERM)"},
			&cli.StringFlag{Name: "metrics-addr", Value: consumeMetricsAddr, Usage: "serve Prometheus metrics on this host:port at /metrics (empty: off)"},
			&cli.DurationFlag{Name: "connect-timeout", Value: 30 * time.Second, Usage: "give up connecting to the brokers after this long"},
			&cli.PathFlag{Name: "report-json", Usage: "write the full accounting (per-stream seen/lost ranges, counts) as JSON to this file at the end"},
		}, append(accountingFlags("destination"), connFlags("")...)...),
		Action: consumeRun,
	}
}

// consumeFlags maps consumer.Config fields to the flags that set them.
var consumeFlags = map[string]string{
	"Topics":      "--topics",
	"TopicPrefix": "--topic-prefix",
	"Group":       "--group",
	"Encoding":    "--headers",
}

func consumeRun(c *cli.Context) error {
	if c.NArg() > 0 {
		return exit.Usagef("consume: unexpected argument %q (all settings are flags)", c.Args().First())
	}
	conn, err := brokerConn(c, "consume", "bootstrap-servers", "", "kmt-consume")
	if err != nil {
		return err
	}
	if d := c.Duration("duration"); d < 0 {
		return exit.Usagef("consume: --duration %s: must be >= 0 (0 = until a signal)", d)
	}
	if g := c.Duration("loss-grace"); g <= 0 {
		return exit.Usagef("consume: --loss-grace %s: must be positive", g)
	}
	if n := c.Int("max-streams"); n <= 0 {
		return exit.Usagef("consume: --max-streams %d: must be at least 1", n)
	}
	if c.IsSet("id") && !message.ValidID(c.String("id")) {
		return exit.Usagef("consume: --id %q: must be 1-200 characters without ';', '/' or control characters", c.String("id"))
	}
	if c.IsSet("group") && c.String("group") == "" {
		return exit.Usagef("consume: --group: must not be empty")
	}
	enc := message.Headers
	if !c.Bool("headers") {
		enc = message.Body
	}
	cfg := consumer.Config{
		Topics:      splitList(c.StringSlice("topics")),
		TopicPrefix: c.String("topic-prefix"),
		Group:       c.String("group"),
		Encoding:    enc,
		ID:          c.String("id"),
	}
	if err := cfg.Validate(); err != nil {
		return consumeConfigError(err)
	}
	ctx := c.Context
	reg := metricsserver.NewRegistry()
	m := consumer.NewMetrics(reg)
	srv, err := metricsserver.Start(ctx, c.String("metrics-addr"), reg, false)
	if err != nil {
		return exit.Usagef("consume: --metrics-addr: %v", err)
	}
	defer srv.Close()
	lopts := []consumer.LedgerOption{consumer.WithLossGrace(c.Duration("loss-grace")), consumer.WithMaxStreams(c.Int("max-streams"))}
	pub, err := accountingPublisher(c, conn, reg)
	if err != nil {
		return err
	}
	lat := latency.New()
	if pub != nil {
		defer pub.Close()
		id := cfg.ID
		if id == "" {
			if id, _ = os.Hostname(); id == "" {
				id = "kmt-consumer"
			}
			cfg.ID = id
		}
		lopts = append(lopts, consumer.WithLatencyRecorder(lat),
			consumer.WithPublisher(pub.ConsumerFunc(id, fleet.NewInstance(), lat), c.Duration("accounting-interval")))
	}
	ledger := consumer.NewLedger(m, lopts...)
	cons, err := consumer.New(conn, cfg, ledger, m)
	if err != nil {
		return consumeConfigError(err)
	}

	if d := c.Duration("duration"); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	status := newStatusWriter(os.Stderr)
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last, lastAt := ledger.Counters(), start
	for {
		select {
		case err := <-done:
			status.done()
			if err != nil {
				return fmt.Errorf("consume: %w", err)
			}
			rep := ledger.Report()
			consumeSummary(c.App.Writer, rep, ledger.Latency().Total(), time.Since(start))
			if path := c.Path("report-json"); path != "" {
				if err := consumeWriteReport(path, rep); err != nil {
					return fmt.Errorf("consume: --report-json: %w", err)
				}
			}
			return nil
		case now := <-tick.C:
			cur := ledger.Counters()
			consumeStatus(status, cur, last, ledger.Latency().Window(), now.Sub(lastAt), now.Sub(start))
			last, lastAt = cur, now
		}
	}
}

// consumeConfigError turns a consumer configuration error into a usage
// error naming the flag.
func consumeConfigError(err error) error {
	var ce *consumer.ConfigError
	if errors.As(err, &ce) {
		flag := consumeFlags[ce.Field]
		if flag == "" {
			flag = ce.Field
		}
		return exit.Usagef("consume: %s: %s", flag, ce.Reason)
	}
	return exit.Usagef("consume: %v", err)
}

// consumeStatus writes one status line: unique receive rate, the anomaly
// counts, and the latency percentiles of the last interval.
func consumeStatus(w io.Writer, cur, last consumer.Counters, win latency.Summary, interval, elapsed time.Duration) {
	rate := float64(cur.Received-last.Received) / interval.Seconds()
	fmt.Fprintf(w, "consume %5s  received %d (%.0f/s)  lost %d  in flight %d  dup %d  reordered %d  late %d  foreign %d  rereads %d  streams %d  e2e p50 %s p99 %s p99.9 %s\n",
		elapsed.Round(time.Second), cur.Received, rate, cur.Lost, cur.InFlight, cur.Duplicates, cur.Reordered, cur.Late,
		cur.Foreign, cur.Rereads, cur.Streams,
		consumeDur(win.P50, win.Count), consumeDur(win.P99, win.Count), consumeDur(win.P999, win.Count))
}

// consumeSummary prints the accounting per source topic and the end-to-end
// latency percentiles.
func consumeSummary(w io.Writer, rep consumer.Report, lat latency.Summary, elapsed time.Duration) {
	type row struct {
		streams                                                                int
		received, dups, reordered, gaps, lost, late, pending, foreign, rereads uint64
	}
	rows := map[string]*row{}
	get := func(topic string) *row {
		r := rows[topic]
		if r == nil {
			r = &row{}
			rows[topic] = r
		}
		return r
	}
	for _, s := range rep.Streams {
		r := get(s.Stream.Topic)
		r.streams++
		r.received += s.Seen.Len()
		r.dups += s.Duplicates
		r.reordered += s.Reordered
		r.gaps += s.Gaps
		r.lost += s.Lost.Len()
		r.late += s.Late
		r.pending += s.Pending.Len()
	}
	for _, p := range rep.Partitions {
		r := get(p.SourceTopic)
		r.foreign += p.Foreign
		r.rereads += p.Rereads
	}
	topics := make([]string, 0, len(rows))
	for t := range rows {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	tot := rep.Totals
	fmt.Fprintf(w, "consumer %s: %s, %d unique messages (%.0f/s)\n", strings.Join(rep.Consumers, ","),
		elapsed.Round(time.Millisecond), tot.Received, float64(tot.Received)/elapsed.Seconds())
	t := table.New("TOPIC", ">STREAMS", ">RECEIVED", ">LOST", ">DUPLICATES", ">REORDERED", ">GAPS", ">LATE", ">IN FLIGHT", ">FOREIGN", ">REREADS")
	for _, topic := range topics {
		r := rows[topic]
		t.Row(topic, r.streams, r.received, r.lost, r.dups, r.reordered, r.gaps, r.late, r.pending, r.foreign, r.rereads)
	}
	t.Row("total", tot.Streams, tot.Received, tot.Lost, tot.Duplicates, tot.Reordered, tot.Gaps, tot.Late, tot.Pending, tot.Foreign, tot.Rereads)
	_ = t.Write(w)
	if tot.Foreign > 0 {
		reasons := make([]string, 0, len(tot.ForeignByReason))
		for k, n := range tot.ForeignByReason {
			reasons = append(reasons, fmt.Sprintf("%s %d", k, n))
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "foreign records by reason: %s\n", strings.Join(reasons, ", "))
	}
	if tot.Untracked > 0 {
		fmt.Fprintf(w, "untracked: %d messages of streams beyond --max-streams\n", tot.Untracked)
	}
	if tot.LatencyFuture > 0 || tot.LatencyOverCap > 0 {
		fmt.Fprintf(w, "latency out of range: %d created in the future (clock skew: recorded as 0), %d older than 1h (recorded as 1h)\n",
			tot.LatencyFuture, tot.LatencyOverCap)
	}
	fmt.Fprintf(w, "end-to-end latency (%d messages): p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		lat.Count, consumeDur(lat.P50, lat.Count), consumeDur(lat.P90, lat.Count), consumeDur(lat.P99, lat.Count),
		consumeDur(lat.P999, lat.Count), consumeDur(lat.Max, lat.Count))
}

// consumeWriteReport writes rep as indented JSON, atomically.
func consumeWriteReport(path string, rep consumer.Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// consumeDur formats a latency to about three significant figures, or "-"
// when nothing was recorded.
func consumeDur(d time.Duration, n int64) string {
	if n == 0 {
		return "-"
	}
	switch {
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
