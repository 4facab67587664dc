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
