package mirror

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// TrimConsumed deletes, on the cluster conn reaches, the records of topics
// that consumer group group has already committed past (DeleteRecords up to
// each partition's committed offset), and returns how many records it
// deleted. Partitions without a commit (or a group that does not exist)
// are left alone. The last record of a partition is never deleted: an
// emptied partition makes the embedded clusters answer a fetch at its end
// with OFFSET_OUT_OF_RANGE, which restarts the reader's session over and
// over (and no reader needs that one record gone).
//
// The embedded clusters of the local target keep every record in memory;
// calling this periodically for the mirror's group on the source (and for
// the consumers' group on the destination) keeps long local runs bounded.
// Never use it on a cluster whose data matters to anyone else.
func TrimConsumed(ctx context.Context, conn kafkaconf.Conn, group string, topics []string) (int64, error) {
	tr, err := NewTrimmer(ctx, conn)
	if err != nil {
		return 0, err
	}
	defer tr.Close()
	return tr.Trim(ctx, group, topics)
}

// Trimmer trims one cluster, as TrimConsumed does, over one connection kept
// for its lifetime: calling it periodically opens no new connection per
// call (each connection an embedded cluster has served keeps a goroutine
// until the cluster closes).
type Trimmer struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// NewTrimmer connects to the cluster conn reaches.
func NewTrimmer(ctx context.Context, conn kafkaconf.Conn) (*Trimmer, error) {
	cfg, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("trim consumed: %w", err)
	}
	cfg.Metadata.AllowAutoTopicCreation = false
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("trim consumed: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("trim consumed: admin: %w", err)
	}
	return &Trimmer{client: client, admin: admin}, nil
}

// Close closes the connection.
func (tr *Trimmer) Close() error { return tr.admin.Close() }

// Trim deletes the records of topics that group has committed past and
// returns how many it deleted (see TrimConsumed).
func (tr *Trimmer) Trim(ctx context.Context, group string, topics []string) (int64, error) {
	return tr.TrimBelow(ctx, group, topics, nil)
}

// TrimBelow is Trim with a further bound: in each partition it deletes
// nothing at or above limit(topic, partition), and nothing at all when
// limit says no (ok false). A consumer that commits before it has
// accounted a record, or a group whose committed offset runs ahead of what
// its reader processed, passes what it really processed here. A nil limit
// is no further bound.
func (tr *Trimmer) TrimBelow(ctx context.Context, group string, topics []string, limit func(topic string, partition int32) (int64, bool)) (int64, error) {
	client, admin := tr.client, tr.admin
	want := map[string][]int32{}
	for _, t := range topics {
		ps, err := client.Partitions(t)
		if err != nil {
			return 0, fmt.Errorf("trim consumed: partitions of %s: %w", t, err)
		}
		want[t] = ps
	}
	offs, err := admin.ListConsumerGroupOffsets(group, want)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return 0, nil // the group never committed anything
	}
	if err != nil {
		return 0, fmt.Errorf("trim consumed: committed offsets of group %s: %w", group, err)
	}
	var deleted int64
	var errs []error
	for t, ps := range want {
		del := map[int32]int64{}
		var n int64
		for _, p := range ps {
			if ctx.Err() != nil {
				return deleted, ctx.Err()
			}
			b := offs.GetBlock(t, p)
			if b == nil || !errors.Is(b.Err, sarama.ErrNoError) || b.Offset <= 0 {
				continue
			}
			upTo := b.Offset
			if limit != nil {
				l, ok := limit(t, p)
				if !ok {
					continue
				}
				upTo = min(upTo, l)
			}
			oldest, err := client.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				errs = append(errs, fmt.Errorf("oldest offset of %s/%d: %w", t, p, err))
				continue
			}
			newest, err := client.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				errs = append(errs, fmt.Errorf("newest offset of %s/%d: %w", t, p, err))
				continue
			}
			upTo = min(upTo, newest-1) // keep the last record
			if upTo > oldest {
				del[p] = upTo
				n += upTo - oldest
			}
		}
		if len(del) == 0 {
			continue
		}
		if err := admin.DeleteRecords(t, del); err != nil {
			errs = append(errs, fmt.Errorf("delete records of %s: %w", t, err))
			continue
		}
		deleted += n
	}
	if err := errors.Join(errs...); err != nil {
		return deleted, fmt.Errorf("trim consumed: %w", err)
	}
	return deleted, nil
}
