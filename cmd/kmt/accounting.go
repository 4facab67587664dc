package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// accountingFlags are the flags of kmt produce and kmt consume that publish
// the process's accounting for kmt reconcile (region names the cluster the
// process talks to: source or destination).
func accountingFlags(region string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "accounting-topic", Value: fleet.DefaultTopic, Category: "Fleet accounting",
			Usage: "compacted topic of the " + region + " cluster this process publishes its accounting into, for kmt reconcile (created when missing; empty: do not publish)"},
		&cli.DurationFlag{Name: "accounting-interval", Value: time.Second, Category: "Fleet accounting",
			Usage: "how often the accounting is published"},
	}
}

// accountingPublisher returns the publisher the flags ask for, or nil. A
// cluster that refuses the accounting topic (no permission to create or
// write it) is a warning, not an error: kmt reconcile then knows this
// process only through what the clusters hold.
func accountingPublisher(c *cli.Context, conn kafkaconf.Conn, reg prometheus.Registerer) (*fleet.Publisher, error) {
	topic := c.String("accounting-topic")
	if topic == "" {
		return nil, nil
	}
	if d := c.Duration("accounting-interval"); d <= 0 {
		return nil, exit.Usagef("%s: --accounting-interval %s: must be positive", c.Command.Name, d)
	}
	pub, err := fleet.NewPublisher(c.Context, conn, topic, fleet.NewMetrics(reg))
	if err != nil {
		if c.Context.Err() != nil {
			return nil, nil
		}
		if errors.Is(err, fleet.ErrConnect) {
			return nil, fmt.Errorf("%s: %w", c.Command.Name, err) // unreachable or unauthorised: exit 2
		}
		slog.Warn("accounting is not published; kmt reconcile will count this process only from the clusters' contents",
			"flag", "--accounting-topic", "topic", topic, "err", err)
		return nil, nil
	}
	return pub, nil
}
