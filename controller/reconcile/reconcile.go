// Package reconcile computes a run's exact outcome from what was recorded: the
// producers' sent and acked sequences and the consumers' seen sequences, per
// stream. It is a pure function of its inputs, so every count it reports can
// be checked against ground truth computed another way.
package reconcile

import (
	"sort"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Produced is what one producer run recorded for one stream.
type Produced struct {
	Stream message.StreamID
	// Sent is how many sequences were handed to the client: 0..Sent-1.
	Sent uint64
	// Acked holds the sequences the cluster acknowledged.
	Acked seqrange.Set
	// Failed holds the sequences whose produce failed or timed out.
	Failed seqrange.Set
}

// Received is what one consumer (or one process's shared ledger) recorded for
// one stream.
type Received struct {
	Stream message.StreamID
	// Seen holds every sequence that arrived at least once.
	Seen seqrange.Set
	// Duplicates counts arrivals of sequences already seen, re-reads of the
	// same destination offset excluded.
	Duplicates uint64
	// Reordered counts arrivals that filled a gap.
	Reordered uint64
	// Late counts arrivals after their sequence had been declared lost.
	Late uint64
	// DuplicatedSeqs holds sequences that arrived more than once, when
	// known (it may be capped; Duplicates is exact).
	DuplicatedSeqs seqrange.Set
}

// Stream is the reconciled outcome of one stream.
type Stream struct {
	Stream message.StreamID
	Sent   uint64
	Acked  uint64
	// Lost holds acked sequences no consumer saw.
	Lost seqrange.Set
	// UnackedDelivered holds sequences seen although their produce was not
	// acknowledged.
	UnackedDelivered seqrange.Set
	// NeverAcked holds sequences sent, not acked and not seen: produce
	// failures, not replication loss.
	NeverAcked seqrange.Set
	// Unexpected holds seen sequences the producer never sent (a stream with
	// no producer record, or sequences beyond Sent).
	Unexpected                  seqrange.Set
	Received                    uint64
	Duplicates, Reordered, Late uint64
	// DuplicatedSeqs holds the sequences that arrived more than once (when
	// the consumers recorded them).
	DuplicatedSeqs seqrange.Set
	// LostWhere, when the lost sequences were located (see package
	// readback), splits Lost by where they went missing.
	LostWhere map[string]seqrange.Set
}

// Outcome is the reconciled result of a run.
type Outcome struct {
	Streams []Stream
	// Totals over every stream.
	Produced, Acked, ProduceErrors, Received uint64
	Lost, Duplicated, Reordered, Late        uint64
	UnackedDelivered, NeverAcked, Unexpected uint64
	// UnknownStreams counts streams that were consumed but that no producer
	// report describes.
	UnknownStreams int
}

// Reconcile unions every consumer's records per stream and compares them with
// every producer's. A stream consumed by several consumers (after a
// rebalance) has its seen sets unioned and its counters summed.
func Reconcile(produced []Produced, received []Received) Outcome {
	type acc struct {
		p              *Produced
		seen           seqrange.Set
		dup, reo, late uint64
		dups           seqrange.Set
		got            bool
	}
	streams := map[message.StreamID]*acc{}
	get := func(id message.StreamID) *acc {
		a := streams[id]
		if a == nil {
			a = &acc{}
			streams[id] = a
		}
		return a
	}
	for i := range produced {
		a := get(produced[i].Stream)
		if a.p == nil {
			p := produced[i]
			a.p = &p
			continue
		}
		// Two reports for one stream (should not happen: the run id is new
		// on every start); merge them.
		a.p.Sent = max(a.p.Sent, produced[i].Sent)
		a.p.Acked.Union(produced[i].Acked)
		a.p.Failed.Union(produced[i].Failed)
	}
	for _, r := range received {
		a := get(r.Stream)
		a.got = true
		a.seen.Union(r.Seen)
		a.dup += r.Duplicates
		a.dups.Union(r.DuplicatedSeqs)
		a.reo += r.Reordered
		a.late += r.Late
	}
	var out Outcome
	ids := make([]message.StreamID, 0, len(streams))
	for id := range streams {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })
	for _, id := range ids {
		a := streams[id]
		s := Stream{Stream: id, Duplicates: a.dup, DuplicatedSeqs: a.dups, Reordered: a.reo, Late: a.late, Received: a.seen.Len()}
		if a.p == nil {
			out.UnknownStreams++
			s.Unexpected = a.seen
		} else {
			s.Sent = a.p.Sent
			s.Acked = a.p.Acked.Len()
			s.Lost = a.p.Acked.Minus(a.seen)
			s.UnackedDelivered = a.seen.Minus(a.p.Acked)
			sent := seqrange.Of(seqrange.Range{Lo: 0, Hi: a.p.Sent})
			s.Unexpected = s.UnackedDelivered.Minus(sent)
			s.UnackedDelivered = s.UnackedDelivered.Intersect(sent)
			notAcked := sent.Minus(a.p.Acked)
			s.NeverAcked = notAcked.Minus(a.seen)
			out.ProduceErrors += a.p.Failed.Len()
		}
		out.Produced += s.Sent
		out.Acked += s.Acked
		out.Received += s.Received
		out.Lost += s.Lost.Len()
		out.Duplicated += s.Duplicates
		out.Reordered += s.Reordered
		out.Late += s.Late
		out.UnackedDelivered += s.UnackedDelivered.Len()
		out.NeverAcked += s.NeverAcked.Len()
		out.Unexpected += s.Unexpected.Len()
		out.Streams = append(out.Streams, s)
	}
	return out
}

// Anomalies lists, stream by stream, the lost, never-acked and unexpected
// ranges and the duplicate/reorder/late counts, at most limit entries, with
// totals by kind over every stream.
func (o Outcome) Anomalies(limit int) ([]results.Anomaly, map[string]uint64) {
	var list []results.Anomaly
	totals := map[string]uint64{}
	add := func(a results.Anomaly) {
		if a.Count == 0 {
			return
		}
		totals[a.Kind] += a.Count
		if len(list) < limit {
			list = append(list, a)
		}
	}
	for _, s := range o.Streams {
		if len(s.LostWhere) == 0 {
			add(results.Anomaly{Stream: s.Stream, Kind: "lost", Count: s.Lost.Len(), Ranges: s.Lost.Ranges()})
		}
		for _, where := range []string{"source", "replicator", "consumer"} {
			set := s.LostWhere[where]
			add(results.Anomaly{Stream: s.Stream, Kind: "lost", Count: set.Len(), Ranges: set.Ranges(), Where: where})
		}
		add(results.Anomaly{Stream: s.Stream, Kind: "never_acked", Count: s.NeverAcked.Len(), Ranges: s.NeverAcked.Ranges()})
		add(results.Anomaly{Stream: s.Stream, Kind: "unexpected", Count: s.Unexpected.Len(), Ranges: s.Unexpected.Ranges()})
		add(results.Anomaly{Stream: s.Stream, Kind: "duplicated", Count: s.Duplicates, Ranges: s.DuplicatedSeqs.Ranges()})
		add(results.Anomaly{Stream: s.Stream, Kind: "reordered", Count: s.Reordered})
		add(results.Anomaly{Stream: s.Stream, Kind: "late", Count: s.Late})
	}
	return list, totals
}

// Pass reports whether the outcome is a PASS: every acked message arrived
// exactly once and in order, and nothing arrived that was never sent.
func (o Outcome) Pass() bool {
	return o.Lost == 0 && o.Duplicated == 0 && o.Reordered == 0 && o.Unexpected == 0
}
