// Package fleet makes the accounting of a fleet of kmt processes (producer
// and consumer processes, Kubernetes pods) exact: every process publishes
// what it did into a compacted topic of its own region's cluster while it
// runs, and Reconcile unions those publications, reads the clusters back
// where the publications cannot know (the last moments of a killed process,
// records read by two processes, lost ranges) and computes the same outcome
// as a single process does. docs/accounting.md explains why it is exact.
package fleet

import (
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// DefaultTopic is the accounting topic: compacted, one per cluster,
// producers publish into the source cluster's, consumers into the
// destination's. Its name starts with "__", which MirrorMaker 2's default
// topic filter excludes; give replicators a topic list or pattern that does
// not match it.
const DefaultTopic = "__kmt_accounting"

// version is the format version of every record value.
const version = 1

// Key prefixes of the accounting records.
const (
	producerPrefix = "producer/"
	consumerPrefix = "consumer/"
)

// ProducerRecord is what one producer run published about one topic: its
// per-key streams, cumulative. The record key is
// producer/<producer>/<run>/<topic>; a newer record replaces the older.
type ProducerRecord struct {
	V        int    `json:"v"`
	Producer string `json:"producer"`
	Run      string `json:"run"`
	Topic    string `json:"topic"`
	// Final is true on the record a producer publishes after it stopped
	// cleanly: every sequence sent is acked or failed (or was still
	// unresolved when the flush timed out), nothing further will happen.
	// Without it the producer may have acked more than it published.
	Final bool `json:"final"`
	// At is when the producer took the snapshot (its clock).
	At      time.Time        `json:"at"`
	Streams []ProducedStream `json:"streams"`
}

// ProducedStream is one key's accounting in a ProducerRecord.
type ProducedStream struct {
	Key       uint32       `json:"key"`
	Partition int32        `json:"partition"`
	Sent      uint64       `json:"sent"`
	Acked     seqrange.Set `json:"acked"`
	Failed    seqrange.Set `json:"failed,omitzero"`
}

// ConsumerRecord is what one consumer process published about one
// partition: what it processed there (consumer.PartitionReport, with the
// offsets it covered) and the streams it saw there, cumulative. The record
// key is consumer/<id>/<instance>/<topic>/<partition>.
type ConsumerRecord struct {
	V int `json:"v"`
	// Consumer is the process's consumer id, Instance a random id new on
	// every start (two processes never share records).
	Consumer  string                   `json:"consumer"`
	Instance  string                   `json:"instance"`
	At        time.Time                `json:"at"`
	Partition consumer.PartitionReport `json:"partition"`
	Streams   []ConsumedStream         `json:"streams"`
}

// ConsumedStream is one stream's accounting in a ConsumerRecord.
type ConsumedStream struct {
	Producer       string       `json:"producer"`
	Run            string       `json:"run"`
	Key            uint32       `json:"key"`
	Seen           seqrange.Set `json:"seen"`
	Duplicates     uint64       `json:"duplicates,omitempty"`
	DuplicatedSeqs seqrange.Set `json:"duplicated_seqs,omitzero"`
	Reordered      uint64       `json:"reordered,omitempty"`
	// Below holds sequences that arrived below an adopted baseline
	// (counted in Reordered): in the union, those another process saw are
	// re-reads or duplicates, not reorders.
	Below seqrange.Set `json:"below,omitzero"`
	Late  uint64       `json:"late,omitempty"`
	// First and Last are the first and last arrival times.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// LatencyRecord is a consumer process's whole-run end-to-end latency
// histogram, published with its partitions. Key
// consumer/<id>/<instance>/latency.
type LatencyRecord struct {
	V        int        `json:"v"`
	Consumer string     `json:"consumer"`
	Instance string     `json:"instance"`
	At       time.Time  `json:"at"`
	Latency  *Histogram `json:"latency"`
}

// Histogram is an HdrHistogram snapshot with only its non-zero counts, a
// few hundred bytes instead of the full counts array.
type Histogram struct {
	Lowest  int64      `json:"lowest"`
	Highest int64      `json:"highest"`
	SigFigs int64      `json:"sig_figs"`
	Counts  [][2]int64 `json:"counts"` // index, count
}

// sparse encodes s.
func sparse(s *hdrhistogram.Snapshot) *Histogram {
	h := &Histogram{Lowest: s.LowestTrackableValue, Highest: s.HighestTrackableValue, SigFigs: s.SignificantFigures}
	for i, n := range s.Counts {
		if n != 0 {
			h.Counts = append(h.Counts, [2]int64{int64(i), n})
		}
	}
	return h
}

// Snapshot decodes h.
func (h *Histogram) Snapshot() (*hdrhistogram.Snapshot, error) {
	ref := hdrhistogram.New(h.Lowest, h.Highest, int(h.SigFigs)).Export()
	for _, c := range h.Counts {
		if c[0] < 0 || c[0] >= int64(len(ref.Counts)) || c[1] < 0 {
			return nil, fmt.Errorf("latency histogram: count %d at index %d out of range", c[1], c[0])
		}
		ref.Counts[c[0]] = c[1]
	}
	return ref, nil
}

func producerKey(producer, run, topic string) string {
	return producerPrefix + producer + "/" + run + "/" + topic
}

func consumerKey(id, instance, topic string, partition int32) string {
	return fmt.Sprintf("%s%s/%s/%s/%d", consumerPrefix, id, instance, topic, partition)
}

func latencyKey(id, instance string) string {
	return consumerPrefix + id + "/" + instance + "/latency"
}
