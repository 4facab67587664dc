package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/controller/readback"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// ErrNoAccounting says a cluster has no accounting topic: no kmt process
// with publishing on ever ran against it, or the connection reaches
// another cluster.
var ErrNoAccounting = errors.New("no accounting topic")

// Collected is the latest accounting record of every key of one cluster's
// accounting topic.
type Collected struct {
	Producers []ProducerRecord
	Consumers []ConsumerRecord
	Latency   []LatencyRecord
	// Malformed counts records that could not be decoded (skipped, with a
	// warning).
	Malformed int
}

// Collect reads the accounting topic (topic "": DefaultTopic) of the
// cluster conn from its oldest offset to its high watermark and returns the
// latest record of every key. An absent topic is ErrNoAccounting.
func Collect(ctx context.Context, conn kafkaconf.Conn, topic string) (*Collected, error) {
	if topic == "" {
		topic = DefaultTopic
	}
	r, err := readback.Open(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("collect accounting from %s: %w", conn, err)
	}
	defer r.Close()
	return collect(ctx, r, topic)
}

func collect(ctx context.Context, r *readback.Reader, topic string) (*Collected, error) {
	topics, err := r.Client().Topics()
	if err != nil {
		return nil, fmt.Errorf("collect accounting: list topics: %w", err)
	}
	found := false
	for _, t := range topics {
		found = found || t == topic
	}
	if !found {
		return nil, fmt.Errorf("collect accounting: topic %s: %w", topic, ErrNoAccounting)
	}
	latest := map[string][]byte{}
	var order []string
	err = r.Each(ctx, topic, 0, 0, 1<<62, func(m *sarama.ConsumerMessage) {
		k := string(m.Key)
		if _, ok := latest[k]; !ok {
			order = append(order, k)
		}
		latest[k] = m.Value
	})
	if err != nil {
		return nil, fmt.Errorf("collect accounting: %w", err)
	}
	out := &Collected{}
	for _, k := range order {
		v := latest[k]
		if v == nil {
			continue // a tombstone
		}
		var err error
		switch {
		case strings.HasPrefix(k, producerPrefix):
			var rec ProducerRecord
			if err = json.Unmarshal(v, &rec); err == nil {
				out.Producers = append(out.Producers, rec)
			}
		case strings.HasPrefix(k, consumerPrefix) && strings.HasSuffix(k, "/latency"):
			var rec LatencyRecord
			if err = json.Unmarshal(v, &rec); err == nil {
				out.Latency = append(out.Latency, rec)
			}
		case strings.HasPrefix(k, consumerPrefix):
			var rec ConsumerRecord
			if err = json.Unmarshal(v, &rec); err == nil {
				out.Consumers = append(out.Consumers, rec)
			}
		default:
			err = errors.New("unknown key prefix")
		}
		if err != nil {
			out.Malformed++
			slog.Warn("accounting record skipped", "topic", topic, "key", k, "err", err)
		}
	}
	return out, nil
}

// Probe checks that the cluster conn can be reached and holds the
// accounting topic (topic "": DefaultTopic), without reading it: the
// preflight of a run whose final step reconciles the fleet.
func Probe(ctx context.Context, conn kafkaconf.Conn, topic string) error {
	if topic == "" {
		topic = DefaultTopic
	}
	r, err := readback.Open(ctx, conn)
	if err != nil {
		return fmt.Errorf("fleet accounting on %s: %w", conn, err)
	}
	defer r.Close()
	topics, err := r.Client().Topics()
	if err != nil {
		return fmt.Errorf("fleet accounting on %s: list topics: %w", conn, err)
	}
	for _, t := range topics {
		if t == topic {
			return nil
		}
	}
	return fmt.Errorf("fleet accounting on %s: topic %s: %w (are the kmt producers and consumers publishing with --accounting-topic?)", conn, topic, ErrNoAccounting)
}
