package consumer

import (
	"sort"
	"time"

	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// Report is the full accounting of a ledger (or, after Merge, of several):
// per-stream sets and counters plus totals. It is a plain value that
// round-trips through JSON, so the controller can collect reports from
// several consumer processes and union them.
type Report struct {
	// Consumers are the ids of the consumers whose accounting is included.
	Consumers []string `json:"consumers"`
	// GeneratedAt is when the report was taken (the latest, after Merge).
	GeneratedAt time.Time `json:"generated_at"`
	// LossGraceSeconds is the loss grace period the ledger used.
	LossGraceSeconds float64 `json:"loss_grace_s"`
	// Totals sum the streams and partitions below.
	Totals Totals `json:"totals"`
	// Partitions describe what was read from each Kafka partition.
	Partitions []PartitionReport `json:"partitions"`
	// Streams are ordered by topic, producer, run and key.
	Streams []StreamReport `json:"streams"`
}

// Totals are a report's totals.
type Totals struct {
	// Received counts unique data messages: the sum of every stream's Seen
	// set size.
	Received   uint64 `json:"received"`
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
	Gaps       uint64 `json:"gaps"`
	Late       uint64 `json:"late"`
	// Lost counts sequences declared lost and still missing; LostDeclared
	// every sequence ever declared lost (Lost + those that arrived late).
	Lost         uint64 `json:"lost"`
	LostDeclared uint64 `json:"lost_declared"`
	// Pending counts missing sequences still within the loss grace.
	Pending uint64 `json:"pending"`
	// Elsewhere counts sequences left to other consumer processes after an
	// offset jump (see Tracker.Resume).
	Elsewhere  uint64 `json:"elsewhere"`
	EndMarkers uint64 `json:"end_markers"`
	// Rereads counts records skipped because their offset had already been
	// processed by this process (after a rebalance or a restart from an
	// older committed offset). They are not duplicates.
	Rereads uint64 `json:"rereads"`
	// Foreign counts records that are not kmt messages; ForeignByReason
	// splits them by reason (bad_key, no_metadata, bad_sequence, bad_time,
	// bad_identity, wrong_encoding, other).
	Foreign         uint64            `json:"foreign"`
	ForeignByReason map[string]uint64 `json:"foreign_by_reason"`
	// Untracked counts messages of streams beyond the stream cap.
	Untracked uint64 `json:"untracked"`
	Streams   int    `json:"streams"`
	// LatencyFuture counts first arrivals created after they were
	// received (clock skew), LatencyOverCap those older than 1 h.
	LatencyFuture  uint64 `json:"latency_future"`
	LatencyOverCap uint64 `json:"latency_over_1h"`
}

// PartitionReport describes what one ledger read from one Kafka partition.
type PartitionReport struct {
	Consumer    string `json:"consumer,omitempty"` // set by Merge: whose ledger
	Topic       string `json:"topic"`              // the topic read
	SourceTopic string `json:"source_topic"`       // the stream topic
	Partition   int32  `json:"partition"`
	// FirstOffset is the first record this process saw, NextOffset one past
	// the last one it processed.
	FirstOffset int64 `json:"first_offset"`
	NextOffset  int64 `json:"next_offset"`
	// Adopting is true when FirstOffset > 0: streams first seen here were
	// adopted.
	Adopting bool `json:"adopting"`
	// Resumes counts claims that started beyond NextOffset (offsets read by
	// another process).
	Resumes int `json:"resumes"`
	// Covered holds the offsets this process processed (each at most
	// once): from FirstOffset to NextOffset, minus what was skipped at a
	// resume. Where the Covered sets of two processes overlap, both read
	// the same records: the fleet's reconciliation reads those records back
	// to tell such re-reads from replicated duplicates.
	Covered   seqrange.Set `json:"covered,omitzero"`
	Rereads   uint64       `json:"rereads"`
	Foreign   uint64       `json:"foreign"`
	Untracked uint64       `json:"untracked"`
	// LatencyFuture and LatencyOverCap count this partition's first
	// arrivals whose latency was out of range (see Totals).
	LatencyFuture  uint64 `json:"latency_future,omitempty"`
	LatencyOverCap uint64 `json:"latency_over_1h,omitempty"`
}

// StreamReport is the accounting of one stream. Its field names match what
// the reconciliation needs: Seen, Duplicates, Reordered, Late.
type StreamReport struct {
	Stream message.StreamID `json:"stream"`
	// Seen holds every sequence that arrived at least once.
	Seen       seqrange.Set `json:"seen"`
	Duplicates uint64       `json:"duplicates"`
	// DuplicatedSeqs holds the sequences that arrived more than once (at
	// most 64 ranges per stream; Duplicates stays exact).
	DuplicatedSeqs seqrange.Set `json:"duplicated_seqs,omitzero"`
	Reordered      uint64       `json:"reordered"`
	// Below holds the sequences that arrived below an adopted stream's
	// baseline (counted in Reordered the first time).
	Below seqrange.Set `json:"below,omitzero"`
	Gaps  uint64       `json:"gaps"`
	Late  uint64       `json:"late"`
	// Lost holds the sequences declared lost and still missing,
	// LostDeclared every sequence ever declared lost.
	Lost         seqrange.Set `json:"lost"`
	LostDeclared seqrange.Set `json:"lost_declared"`
	// Pending holds missing sequences still within the loss grace.
	Pending seqrange.Set `json:"pending"`
	// Elsewhere holds sequences left to other consumer processes.
	Elsewhere seqrange.Set `json:"elsewhere,omitzero"`
	// HasEnd says an end marker arrived; EndCount is its count (the
	// highest, if several disagree).
	HasEnd     bool   `json:"has_end"`
	EndCount   uint64 `json:"end_count"`
	EndMarkers uint64 `json:"end_markers"`
	// Adopted streams were first seen in a partition this process joined
	// mid-way; Base is the first sequence seen, below which nothing was
	// expected.
	Adopted      bool      `json:"adopted"`
	Base         uint64    `json:"base"`
	FirstArrival time.Time `json:"first_arrival"`
	LastArrival  time.Time `json:"last_arrival"`
}

// Report returns the ledger's full accounting. It can be taken while
// consumers run; each partition is captured under its lock.
func (l *Ledger) Report() Report {
	rep := Report{
		GeneratedAt:      time.Now().Round(0).UTC(),
		LossGraceSeconds: l.grace.Seconds(),
	}
	l.mu.Lock()
	rep.Consumers = append([]string(nil), l.consumers...)
	l.mu.Unlock()
	byID := map[message.StreamID]*StreamReport{}
	parts := l.partitions()
	sortPartitions(parts)
	for _, p := range parts {
		p.mu.Lock()
		pr := p.report()
		if rep.Totals.ForeignByReason == nil {
			rep.Totals.ForeignByReason = map[string]uint64{}
		}
		for i, n := range p.c.foreign {
			if n > 0 {
				rep.Totals.ForeignByReason[reasonNames[i]] += n
			}
		}
		for _, r := range p.runs {
			for key, t := range r.streams {
				id := message.StreamID{Topic: p.source, Producer: r.producer, Run: r.run, Key: key}
				sr := streamReport(id, t)
				if prev := byID[id]; prev != nil {
					// The same stream in two partitions (partitions added
					// mid-run): merge.
					mergeStream(prev, &sr)
					continue
				}
				byID[id] = &sr
			}
		}
		p.mu.Unlock()
		rep.Partitions = append(rep.Partitions, pr)
	}
	rep.Streams = make([]StreamReport, 0, len(byID))
	for _, sr := range byID {
		rep.Streams = append(rep.Streams, *sr)
	}
	rep.finish()
	return rep
}

// report returns the partition's own figures. The caller holds p.mu.
func (p *partition) report() PartitionReport {
	pr := PartitionReport{
		Topic:          p.topic,
		SourceTopic:    p.source,
		Partition:      p.id,
		FirstOffset:    p.firstOffset,
		NextOffset:     p.nextOffset,
		Adopting:       p.adopting,
		Resumes:        p.resumes,
		Covered:        seqrange.Of(p.covered.Ranges()...),
		Rereads:        p.c.rereads,
		Untracked:      p.c.untracked,
		LatencyFuture:  p.c.future,
		LatencyOverCap: p.c.overCap,
	}
	if p.started {
		pr.Covered.AddRange(uint64(p.coverLo), uint64(p.nextOffset))
	}
	for _, n := range p.c.foreign {
		pr.Foreign += n
	}
	return pr
}

func streamReport(id message.StreamID, t *Tracker) StreamReport {
	c := t.Counts()
	end, hasEnd := t.EndCount()
	base, adopted := t.Baseline()
	first, last := t.Arrivals()
	return StreamReport{
		Stream:         id,
		Seen:           t.Seen(),
		Duplicates:     c.Duplicates,
		DuplicatedSeqs: t.Duplicated(),
		Reordered:      c.Reordered,
		Below:          t.Below(),
		Gaps:           c.Gaps,
		Late:           c.Late,
		Lost:           t.Lost(),
		LostDeclared:   t.LostDeclared(),
		Pending:        t.Pending(),
		Elsewhere:      t.Elsewhere(),
		HasEnd:         hasEnd,
		EndCount:       end,
		EndMarkers:     c.EndMarkers,
		Adopted:        adopted,
		Base:           base,
		FirstArrival:   time.Unix(0, first).UTC(),
		LastArrival:    time.Unix(0, last).UTC(),
	}
}

// mergeStream folds o into s: sets are unioned, counters summed, and what
// one side saw is no longer lost, pending or elsewhere.
func mergeStream(s, o *StreamReport) {
	s.Seen.Union(o.Seen)
	s.Duplicates += o.Duplicates
	s.DuplicatedSeqs.Union(o.DuplicatedSeqs)
	s.Reordered += o.Reordered
	s.Gaps += o.Gaps
	s.Late += o.Late
	s.Lost.Union(o.Lost)
	s.LostDeclared.Union(o.LostDeclared)
	s.Pending.Union(o.Pending)
	s.Elsewhere.Union(o.Elsewhere)
	s.Lost = s.Lost.Minus(s.Seen)
	s.Pending = s.Pending.Minus(s.Seen)
	s.Pending = s.Pending.Minus(s.Lost)
	s.Elsewhere = s.Elsewhere.Minus(s.Seen)
	if o.HasEnd && (!s.HasEnd || o.EndCount > s.EndCount) {
		s.EndCount = o.EndCount
	}
	s.HasEnd = s.HasEnd || o.HasEnd
	s.EndMarkers += o.EndMarkers
	if o.Adopted && (!s.Adopted || o.Base < s.Base) {
		s.Base = o.Base
	}
	s.Adopted = s.Adopted || o.Adopted
	if s.FirstArrival.IsZero() || (!o.FirstArrival.IsZero() && o.FirstArrival.Before(s.FirstArrival)) {
		s.FirstArrival = o.FirstArrival
	}
	if o.LastArrival.After(s.LastArrival) {
		s.LastArrival = o.LastArrival
	}
}

// finish sorts the streams and recomputes the stream-derived totals.
func (r *Report) finish() {
	sort.Slice(r.Streams, func(i, j int) bool { return r.Streams[i].Stream.Less(r.Streams[j].Stream) })
	t := &r.Totals
	t.Received, t.Duplicates, t.Reordered, t.Gaps, t.Late = 0, 0, 0, 0, 0
	t.Lost, t.LostDeclared, t.Pending, t.Elsewhere, t.EndMarkers = 0, 0, 0, 0, 0
	t.Rereads, t.Foreign, t.Untracked, t.LatencyFuture, t.LatencyOverCap = 0, 0, 0, 0, 0
	for i := range r.Streams {
		s := &r.Streams[i]
		t.Received += s.Seen.Len()
		t.Duplicates += s.Duplicates
		t.Reordered += s.Reordered
		t.Gaps += s.Gaps
		t.Late += s.Late
		t.Lost += s.Lost.Len()
		t.LostDeclared += s.LostDeclared.Len()
		t.Pending += s.Pending.Len()
		t.Elsewhere += s.Elsewhere.Len()
		t.EndMarkers += s.EndMarkers
	}
	for _, p := range r.Partitions {
		t.Rereads += p.Rereads
		t.Foreign += p.Foreign
		t.Untracked += p.Untracked
		t.LatencyFuture += p.LatencyFuture
		t.LatencyOverCap += p.LatencyOverCap
	}
	t.Streams = len(r.Streams)
	if t.ForeignByReason == nil {
		t.ForeignByReason = map[string]uint64{}
	}
}

// Merge unions the reports of several consumer processes (or of several
// ledgers): per stream the Seen sets are unioned and the counters summed; a
// sequence one report declared lost (or pending, or left elsewhere) that
// another saw counts as seen. Partitions are listed per consumer.
//
// Duplicates are counted by the ledger that saw both copies; two copies
// read by different processes (possible only when the partition moved
// between processes in between) are not counted as duplicates by Merge,
// because a re-read across processes looks the same. See
// docs/accounting.md.
func Merge(reports ...Report) Report {
	var out Report
	byID := map[message.StreamID]*StreamReport{}
	seenConsumer := map[string]bool{}
	out.Totals.ForeignByReason = map[string]uint64{}
	for _, r := range reports {
		for _, c := range r.Consumers {
			if !seenConsumer[c] {
				seenConsumer[c] = true
				out.Consumers = append(out.Consumers, c)
			}
		}
		if r.GeneratedAt.After(out.GeneratedAt) {
			out.GeneratedAt = r.GeneratedAt
		}
		out.LossGraceSeconds = max(out.LossGraceSeconds, r.LossGraceSeconds)
		owner := ""
		if len(r.Consumers) > 0 {
			owner = r.Consumers[0]
		}
		for _, p := range r.Partitions {
			if p.Consumer == "" {
				p.Consumer = owner
			}
			out.Partitions = append(out.Partitions, p)
		}
		for k, n := range r.Totals.ForeignByReason {
			out.Totals.ForeignByReason[k] += n
		}
		for i := range r.Streams {
			s := r.Streams[i]
			s.Seen = seqrange.Of(s.Seen.Ranges()...) // never share storage with the input
			s.Lost = seqrange.Of(s.Lost.Ranges()...)
			s.LostDeclared = seqrange.Of(s.LostDeclared.Ranges()...)
			s.Pending = seqrange.Of(s.Pending.Ranges()...)
			s.Elsewhere = seqrange.Of(s.Elsewhere.Ranges()...)
			if prev := byID[s.Stream]; prev != nil {
				mergeStream(prev, &s)
				continue
			}
			byID[s.Stream] = &s
		}
	}
	for _, s := range byID {
		out.Streams = append(out.Streams, *s)
	}
	if out.Streams == nil {
		out.Streams = []StreamReport{}
	}
	out.finish()
	return out
}
