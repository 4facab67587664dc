package producer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// EnsureTopics makes sure every topic exists on the cluster conn with
// exactly partitions partitions. Missing topics are created with
// replicationFactor replicas (-1: the broker default) and, when retention is
// positive, retention.ms set to it (0: the broker default). A topic that
// already exists with the right partition count is left alone; one with a
// different count is an error naming both counts. EnsureTopics returns once
// the cluster's metadata lists every topic with its partitions.
func EnsureTopics(ctx context.Context, conn kafkaconf.Conn, topics []string, partitions, replicationFactor int, retention time.Duration) error {
	if len(topics) == 0 {
		return errors.New("ensure topics: no topics given")
	}
	for _, t := range topics {
		if why := validTopic(t); why != "" {
			return fmt.Errorf("ensure topics: topic %q: %s", t, why)
		}
	}
	if partitions < 1 || partitions > 1<<20 {
		return fmt.Errorf("ensure topics: partitions must be between 1 and 1048576, got %d", partitions)
	}
	if replicationFactor == 0 || replicationFactor < -1 || replicationFactor > 1<<15-1 {
		return fmt.Errorf("ensure topics: replication factor must be >= 1 (or -1 for the broker default), got %d", replicationFactor)
	}
	if retention < 0 {
		return fmt.Errorf("ensure topics: retention must be >= 0 (0 = broker default), got %s", retention)
	}
	sc, err := conn.Sarama()
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	client, err := kafkaconf.Connect(ctx, conn, sc)
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return fmt.Errorf("ensure topics: cluster admin on %s: %w", conn, err)
	}
	defer admin.Close() // closes client too

	var configs map[string]*string
	if retention > 0 {
		ms := strconv.FormatInt(retention.Milliseconds(), 10)
		configs = map[string]*string{"retention.ms": &ms}
	}
	for _, t := range topics {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("ensure topics: %w", err)
		}
		detail := &sarama.TopicDetail{
			NumPartitions:     int32(partitions),
			ReplicationFactor: int16(replicationFactor),
			ConfigEntries:     configs,
		}
		err := admin.CreateTopic(t, detail, false)
		switch {
		case err == nil:
			slog.Info("topic created", "topic", t, "partitions", partitions, "replication_factor", replicationFactor, "retention", retention, "cluster", conn.String())
		case errors.Is(err, sarama.ErrTopicAlreadyExists):
			md, err := admin.DescribeTopics([]string{t})
			if err != nil {
				return fmt.Errorf("ensure topics: describe existing topic %q: %w", t, err)
			}
			if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) {
				return fmt.Errorf("ensure topics: describe existing topic %q: unexpected metadata %v", t, md)
			}
			if got := len(md[0].Partitions); got != partitions {
				return fmt.Errorf("ensure topics: topic %q already exists with %d partitions, but %d were requested (delete it or use --partitions %d)", t, got, partitions, got)
			}
			slog.Info("topic exists", "topic", t, "partitions", partitions, "cluster", conn.String())
		default:
			return fmt.Errorf("ensure topics: create topic %q (%d partitions, replication factor %d) on %s: %w", t, partitions, replicationFactor, conn, err)
		}
	}
	return waitTopics(ctx, client, conn, topics, partitions)
}

// waitTopics waits until client's metadata lists every topic with
// partitions partitions, for at most the connect timeout.
func waitTopics(ctx context.Context, client sarama.Client, conn kafkaconf.Conn, topics []string, partitions int) error {
	timeout := conn.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		var missing string
		var lastErr error
		if err := client.RefreshMetadata(topics...); err != nil {
			lastErr = err
			missing = topics[0]
		} else {
			for _, t := range topics {
				parts, err := client.Partitions(t)
				if err != nil || len(parts) != partitions {
					missing, lastErr = t, err
					break
				}
			}
		}
		if missing == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ensure topics: topic %q not visible with %d partitions in the metadata of %s after %s: %v", missing, partitions, conn, timeout, lastErr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ensure topics: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
