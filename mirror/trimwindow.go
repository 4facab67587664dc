package mirror

import (
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// OlderThan returns a limit for TrimBelow that keeps every record of topics
// whose timestamp is at or after before: per partition, the offset of the
// first such record (the partition's end when every record is older). A
// partition whose offsets cannot be read is left alone (ok false).
func (tr *Trimmer) OlderThan(topics []string, before time.Time) (func(topic string, partition int32) (int64, bool), error) {
	limits := map[string]map[int32]int64{}
	ms := before.UnixMilli()
	for _, t := range topics {
		ps, err := tr.client.Partitions(t)
		if err != nil {
			return nil, fmt.Errorf("trim window: partitions of %s: %w", t, err)
		}
		limits[t] = map[int32]int64{}
		for _, p := range ps {
			off, err := tr.client.GetOffset(t, p, ms)
			if err != nil {
				continue
			}
			if off < 0 { // no record that recent: all are older
				if off, err = tr.client.GetOffset(t, p, sarama.OffsetNewest); err != nil {
					continue
				}
			}
			limits[t][p] = off
		}
	}
	return func(topic string, partition int32) (int64, bool) {
		off, ok := limits[topic][partition]
		return off, ok
	}, nil
}
