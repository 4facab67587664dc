package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
)

func reconcileCommand() *cli.Command {
	return &cli.Command{
		Name:  "reconcile",
		Usage: "compute a fleet run's exact outcome from the two clusters alone: lost, duplicated, reordered, with loss attribution",
		Description: "Reads the accounting every kmt produce (source cluster) and kmt consume (destination cluster) process\n" +
			"published into --accounting-topic, unions it, reads the source back for what killed producers wrote\n" +
			"after their last publication, reads the destination back where two consumer processes read the same\n" +
			"records, and locates lost messages in both clusters. Prints the summary table of kmt local and writes\n" +
			"the same --summary-json. Exit 0 PASS, 1 when something was lost, duplicated, reordered or unexpected,\n" +
			"2 on bad flags, an unreachable cluster, or no accounting at all.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "source-bootstrap-servers", Usage: "source cluster brokers, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "destination-bootstrap-servers", Usage: "destination cluster brokers, host:port, comma-separated (required)"},
			&cli.StringSliceFlag{Name: "topics", Usage: "source topic names, comma-separated (default: every topic the accounting names)"},
			&cli.StringFlag{Name: "topic-prefix", Usage: "prefix the replicator added to destination topic names"},
			&cli.BoolFlag{Name: "headers", Value: true, Usage: "metadata in record headers; false: in the value"},
			&cli.StringFlag{Name: "accounting-topic", Value: fleet.DefaultTopic, Usage: "the accounting topic on both clusters"},
			&cli.PathFlag{Name: "summary-json", Usage: "write the one-screen summary as JSON to this file (the fields of kmt local's)"},
			&cli.PathFlag{Name: "results-json", Usage: "write the summary, anomalies and latency curve as results JSON to this file"},
			&cli.IntFlag{Name: "anomaly-limit", Value: 1000, Usage: "list at most this many anomalies"},
			&cli.DurationFlag{Name: "connect-timeout", Value: 30 * time.Second, Usage: "give up connecting to a cluster after this long"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Minute, Usage: "give up reading the clusters back after this long"},
		}, append(connFlags("source-"), connFlags("destination-")...)...),
		Action: reconcileRun,
	}
}

func reconcileRun(c *cli.Context) error {
	if c.NArg() > 0 {
		return exit.Usagef("reconcile: unexpected argument %q (all settings are flags)", c.Args().First())
	}
	src, err := brokerConn(c, "reconcile", "source-bootstrap-servers", "source-", "kmt-reconcile")
	if err != nil {
		return err
	}
	dst, err := brokerConn(c, "reconcile", "destination-bootstrap-servers", "destination-", "kmt-reconcile")
	if err != nil {
		return err
	}
	if c.String("accounting-topic") == "" {
		return exit.Usagef("reconcile: --accounting-topic: must not be empty")
	}
	if n := c.Int("anomaly-limit"); n < 1 {
		return exit.Usagef("reconcile: --anomaly-limit %d: must be at least 1", n)
	}
	if d := c.Duration("timeout"); d <= 0 {
		return exit.Usagef("reconcile: --timeout %s: must be positive", d)
	}
	enc := message.Headers
	if !c.Bool("headers") {
		enc = message.Body
	}
	ctx, cancel := contextWithTimeout(c, c.Duration("timeout"))
	defer cancel()
	start := time.Now()
	res, err := fleet.Reconcile(ctx, fleet.Config{
		Source: src, Destination: dst, Topics: splitList(c.StringSlice("topics")), TopicPrefix: c.String("topic-prefix"),
		Encoding: enc, AccountingTopic: c.String("accounting-topic"), AnomalyLimit: c.Int("anomaly-limit"),
	})
	if err != nil {
		if errors.Is(err, fleet.ErrNoData) {
			return exit.Usagef("%v: no verdict without data (did the producers and consumers publish into --accounting-topic?)", err)
		}
		return fmt.Errorf("reconcile: %w", err) // unreachable cluster, unreadable topic: exit 2
	}
	f := res.Final
	r := &results.Results{
		Version: version, Verdict: f.Summary.Verdict, Started: start, Ended: time.Now(),
		Target:  results.Target{Kind: "reconcile", Source: src.String(), Destination: dst.String()},
		Summary: f.Summary, Latency: f.Latency, Anomalies: f.Anomalies, AnomalyTotals: f.AnomalyTotals,
	}
	w := c.App.Writer
	fmt.Fprintf(w, "accounting: %d producer runs (%d stopped cleanly, %d found only in the source), %d consumer processes\n",
		res.Producers, res.FinalProducers, res.UnpublishedRuns, res.Consumers)
	if res.InferredAcked > 0 {
		fmt.Fprintf(w, "  %d sequences of producers that did not stop cleanly are in the source beyond their last published ack: counted as acked\n", res.InferredAcked)
	}
	if res.SharedRecords > 0 || res.CrossDuplicates > 0 {
		fmt.Fprintf(w, "  %d records read by more than one consumer process (not duplicates); %d duplicates whose copies different processes read\n",
			res.SharedRecords, res.CrossDuplicates)
	}
	printResults(w, r)
	if p := c.Path("summary-json"); p != "" {
		if err := results.WriteJSON(p, r.Summary); err != nil {
			return fmt.Errorf("reconcile: --summary-json: %w", err)
		}
	}
	if p := c.Path("results-json"); p != "" {
		if err := results.WriteJSON(p, r); err != nil {
			return fmt.Errorf("reconcile: --results-json: %w", err)
		}
	}
	if r.Verdict != results.Pass {
		return exit.Failed(errors.New("reconcile: verdict FAIL"))
	}
	return nil
}

// contextWithTimeout returns the command's context bounded by d.
func contextWithTimeout(c *cli.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, d)
}
