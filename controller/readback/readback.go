// Package readback reads whole topics back from a cluster and says which
// sequences of which streams they hold. The controller uses it to find where
// lost messages went missing: never written to the source, written but not
// replicated, or replicated but not consumed.
package readback

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Streams maps each stream to the data sequences present in a topic.
type Streams map[message.StreamID]*seqrange.Set

// Has reports whether seq of stream s is present.
func (s Streams) Has(id message.StreamID, seq uint64) bool {
	set := s[id]
	return set != nil && set.Contains(seq)
}

// Scan reads every record currently in prefix+topic for each topic, from
// the oldest offset to the high watermark at the time of the call, and
// returns the data sequences per stream (streams named by the source topic).
// Foreign records and end markers are skipped.
func Scan(ctx context.Context, conn kafkaconf.Conn, topics []string, prefix string, enc message.Encoding) (Streams, error) {
	cfg, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	cfg.Consumer.Return.Errors = true
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	defer client.Close()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	defer cons.Close()
	out := Streams{}
	var m message.Meta
	for _, topic := range topics {
		name := prefix + topic
		parts, err := client.Partitions(name)
		if err != nil {
			return nil, fmt.Errorf("read back %s: %w", name, err)
		}
		for _, p := range parts {
			oldest, err := client.GetOffset(name, p, sarama.OffsetOldest)
			if err != nil {
				return nil, fmt.Errorf("read back %s/%d: %w", name, p, err)
			}
			newest, err := client.GetOffset(name, p, sarama.OffsetNewest)
			if err != nil {
				return nil, fmt.Errorf("read back %s/%d: %w", name, p, err)
			}
			if newest <= oldest {
				continue
			}
			pc, err := cons.ConsumePartition(name, p, oldest)
			if err != nil {
				return nil, fmt.Errorf("read back %s/%d: %w", name, p, err)
			}
			err = func() error {
				defer pc.Close()
				for {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case cerr := <-pc.Errors():
						return cerr
					case msg := <-pc.Messages():
						if enc == message.Body {
							err = message.DecodeBody(msg.Key, msg.Value, &m)
						} else {
							err = message.DecodeHeaders(msg.Key, msg.Headers, &m)
						}
						if err == nil && !m.End {
							id := message.StreamID{Topic: topic, Producer: string(m.Producer), Run: string(m.Run), Key: m.Key}
							set := out[id]
							if set == nil {
								set = &seqrange.Set{}
								out[id] = set
							}
							set.Add(m.Seq)
						}
						if msg.Offset >= newest-1 {
							return nil
						}
					}
				}
			}()
			if err != nil {
				return nil, fmt.Errorf("read back %s/%d: %w", name, p, err)
			}
		}
	}
	return out, nil
}

// Where a lost message went missing.
const (
	// NotInSource: the producer's ack was wrong, the source never had it.
	NotInSource = "source"
	// NotReplicated: in the source, not in the destination.
	NotReplicated = "replicator"
	// NotConsumed: in the destination, but no consumer saw it.
	NotConsumed = "consumer"
)

// Attribute splits the lost sequences of stream id by where they went
// missing, given what the source and destination hold.
func Attribute(id message.StreamID, lost seqrange.Set, source, dest Streams) map[string]seqrange.Set {
	out := map[string]seqrange.Set{}
	for _, r := range lost.Ranges() {
		for q := r.Lo; q < r.Hi; q++ {
			var where string
			switch {
			case !source.Has(id, q) && !dest.Has(id, q):
				where = NotInSource
			case !dest.Has(id, q):
				where = NotReplicated
			default:
				where = NotConsumed
			}
			s := out[where]
			s.Add(q)
			out[where] = s
		}
	}
	return out
}

// Reader reads ranges of offsets of a cluster's partitions.
type Reader struct {
	client sarama.Client
	cons   sarama.Consumer
}

// Open connects a Reader to conn (retrying until its ConnectTimeout).
func Open(ctx context.Context, conn kafkaconf.Conn) (*Reader, error) {
	cfg, err := conn.Sarama()
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	cfg.Consumer.Return.Errors = true
	client, err := kafkaconf.Connect(ctx, conn, cfg)
	if err != nil {
		return nil, fmt.Errorf("read back: %w", err)
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("read back: %w", err)
	}
	return &Reader{client: client, cons: cons}, nil
}

// Close closes the connections.
func (r *Reader) Close() {
	_ = r.cons.Close()
	_ = r.client.Close()
}

// Client returns the reader's client, for metadata.
func (r *Reader) Client() sarama.Client { return r.client }

// Bounds returns the oldest offset and the high watermark of a partition.
func (r *Reader) Bounds(topic string, partition int32) (oldest, newest int64, err error) {
	if oldest, err = r.client.GetOffset(topic, partition, sarama.OffsetOldest); err != nil {
		return 0, 0, fmt.Errorf("read back %s/%d: %w", topic, partition, err)
	}
	if newest, err = r.client.GetOffset(topic, partition, sarama.OffsetNewest); err != nil {
		return 0, 0, fmt.Errorf("read back %s/%d: %w", topic, partition, err)
	}
	return oldest, newest, nil
}

// Each calls fn for every record of topic/partition with an offset in
// [from, to), clamped to what the partition holds, in offset order.
func (r *Reader) Each(ctx context.Context, topic string, partition int32, from, to int64, fn func(*sarama.ConsumerMessage)) error {
	oldest, newest, err := r.Bounds(topic, partition)
	if err != nil {
		return err
	}
	from, to = max(from, oldest), min(to, newest)
	if to <= from {
		return nil
	}
	pc, err := r.cons.ConsumePartition(topic, partition, from)
	if err != nil {
		return fmt.Errorf("read back %s/%d from %d: %w", topic, partition, from, err)
	}
	defer pc.Close()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case cerr := <-pc.Errors():
			return fmt.Errorf("read back %s/%d: %w", topic, partition, cerr)
		case msg := <-pc.Messages():
			if msg.Offset >= to {
				return nil
			}
			fn(msg)
			if msg.Offset >= to-1 {
				return nil
			}
		}
	}
}
