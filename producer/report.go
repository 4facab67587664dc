package producer

import (
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Report is exactly what one producer run sent and what became of each
// message, per stream. After Run returns it is final. It marshals to JSON.
type Report struct {
	// Producer and Run identify the producer run.
	Producer string `json:"producer"`
	Run      string `json:"run"`
	// Sent counts data messages handed to the Kafka client.
	Sent uint64 `json:"sent"`
	// Acked counts data messages the cluster acknowledged.
	Acked uint64 `json:"acked"`
	// Errors counts data messages whose produce failed.
	Errors uint64 `json:"errors"`
	// Unresolved counts data messages sent without an outcome (still in
	// flight, or the flush timed out): they may or may not be in the topic.
	Unresolved uint64 `json:"unresolved"`
	// EndMarkersSent and EndMarkersAcked count end-of-stream markers.
	EndMarkersSent  uint64 `json:"end_markers_sent"`
	EndMarkersAcked uint64 `json:"end_markers_acked"`
	// Topics sums the streams per topic.
	Topics []TopicReport `json:"topics"`
	// Streams holds one entry per key of every topic, in topic then key
	// order.
	Streams []StreamReport `json:"streams"`
}

// TopicReport sums one topic's streams.
type TopicReport struct {
	Topic           string `json:"topic"`
	Partitions      int32  `json:"partitions"`
	Keys            uint32 `json:"keys"`
	Sent            uint64 `json:"sent"`
	Acked           uint64 `json:"acked"`
	Errors          uint64 `json:"errors"`
	Unresolved      uint64 `json:"unresolved"`
	EndMarkersAcked uint64 `json:"end_markers_acked"`
}

// StreamReport is one stream's accounting.
type StreamReport struct {
	// Stream identifies the stream.
	Stream message.StreamID `json:"stream"`
	// Partition is the partition every message of the stream went to.
	Partition int32 `json:"partition"`
	// Sent is the number of data messages attempted: sequences 0..Sent-1.
	Sent uint64 `json:"sent"`
	// Acked holds the sequences the cluster acknowledged.
	Acked seqrange.Set `json:"acked"`
	// Failed holds the sequences whose produce failed.
	Failed seqrange.Set `json:"failed"`
	// EndSent reports whether the end-of-stream marker (carrying Sent) was
	// handed to the Kafka client; EndAcked whether it was acknowledged and
	// EndFailed whether its produce failed.
	EndSent   bool `json:"end_sent"`
	EndAcked  bool `json:"end_acked"`
	EndFailed bool `json:"end_failed"`
}

// Unresolved returns the sequences sent that were neither acknowledged nor
// failed.
func (s *StreamReport) Unresolved() seqrange.Set {
	all := seqrange.Of(seqrange.Range{Lo: 0, Hi: s.Sent})
	rest := all.Minus(s.Acked)
	return rest.Minus(s.Failed)
}

// Report returns a consistent snapshot of the per-stream accounting. Before
// Run has learned the topics' partitions it has no streams.
func (p *Producer) Report() Report {
	rep := Report{Producer: p.cfg.ID, Run: p.runID}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.topics {
		tr := TopicReport{Topic: t.name, Partitions: t.partitions, Keys: t.keys}
		acked := make([]seqrange.Set, len(t.streams))
		failed := make([]seqrange.Set, len(t.streams))
		for k := range t.streams {
			acked[k] = seqrange.Of(t.streams[k].acked.Ranges()...)
			failed[k] = seqrange.Of(t.streams[k].failed.Ranges()...)
		}
		// Read the sent count after the sets (acks cannot arrive for
		// messages not yet counted as sent), so Acked ⊆ [0, Sent).
		n := t.sent.Load()
		for k := range t.streams {
			s := &t.streams[k]
			sr := StreamReport{
				Stream:    message.StreamID{Topic: t.name, Producer: p.cfg.ID, Run: p.runID, Key: uint32(k)},
				Partition: int32(uint32(k) % uint32(t.partitions)),
				Sent:      sentOnKey(n, uint64(t.keys), uint32(k)),
				Acked:     acked[k],
				Failed:    failed[k],
				EndSent:   s.endSent,
				EndAcked:  s.endAcked,
				EndFailed: s.endFailed,
			}
			tr.Sent += sr.Sent
			tr.Acked += sr.Acked.Len()
			tr.Errors += sr.Failed.Len()
			if sr.EndSent {
				rep.EndMarkersSent++
			}
			if sr.EndAcked {
				tr.EndMarkersAcked++
			}
			rep.Streams = append(rep.Streams, sr)
		}
		tr.Unresolved = tr.Sent - tr.Acked - tr.Errors
		rep.Sent += tr.Sent
		rep.Acked += tr.Acked
		rep.Errors += tr.Errors
		rep.Unresolved += tr.Unresolved
		rep.EndMarkersAcked += tr.EndMarkersAcked
		rep.Topics = append(rep.Topics, tr)
	}
	return rep
}
