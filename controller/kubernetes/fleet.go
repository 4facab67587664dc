package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kmtproject/kmt/controller"
	fleetacct "github.com/kmtproject/kmt/controller/fleet"
)

// Preflight checks, before the first step, that the run can measure: the
// Prometheus server answers a query (live samples), and both clusters are
// reachable through SourceKafka and DestinationKafka and hold the fleet's
// accounting topic (the final, exact numbers). Without either there is no
// verdict, so the run stops before it starts.
func (t *Target) Preflight(ctx context.Context) error {
	var errs []error
	if t.cfg.PrometheusURL == "" {
		errs = append(errs, errors.New("no Prometheus URL (--k8s-prometheus-url): live samples cannot be taken"))
	} else if _, err := t.query(ctx, "vector(1)", time.Now()); err != nil {
		errs = append(errs, fmt.Errorf("prometheus %s: %w", t.cfg.PrometheusURL, err))
	}
	for _, c := range []struct {
		name string
		conn []string
	}{{"source", t.cfg.SourceKafka.Brokers}, {"destination", t.cfg.DestinationKafka.Brokers}} {
		if len(c.conn) == 0 {
			errs = append(errs, fmt.Errorf("no %s Kafka bootstrap (--k8s-%s-bootstrap): the fleet's accounting cannot be collected", c.name, c.name))
		}
	}
	if len(t.cfg.SourceKafka.Brokers) > 0 && len(t.cfg.DestinationKafka.Brokers) > 0 {
		if err := fleetacct.Probe(ctx, t.cfg.SourceKafka, t.cfg.AccountingTopic); err != nil {
			errs = append(errs, fmt.Errorf("source cluster: %w", err))
		}
		if err := fleetacct.Probe(ctx, t.cfg.DestinationKafka, t.cfg.AccountingTopic); err != nil {
			errs = append(errs, fmt.Errorf("destination cluster: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Reconcile returns the fleet's exact outcome from the accounting its
// producer and consumer pods published into their own region's cluster,
// reached through SourceKafka and DestinationKafka (no other path between
// the regions): the producers' accounting now, the consumers' after
// lossGrace, judged on what the producers had acknowledged now.
func (t *Target) Reconcile(ctx context.Context, lossGrace time.Duration) (*controller.Final, error) {
	res, err := fleetacct.Reconcile(ctx, fleetacct.Config{
		Source: t.cfg.SourceKafka, Destination: t.cfg.DestinationKafka, TopicPrefix: t.cfg.TopicPrefix,
		AccountingTopic: t.cfg.AccountingTopic, Settle: lossGrace,
	})
	if err != nil {
		return nil, err
	}
	t.log.Info("fleet reconciled", "producer_runs", res.Producers, "stopped_cleanly", res.FinalProducers,
		"consumer_processes", res.Consumers, "inferred_acked", res.InferredAcked, "cross_duplicates", res.CrossDuplicates,
		"shared_records", res.SharedRecords)
	return res.Final, nil
}
