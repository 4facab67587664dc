package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/readback"
	"github.com/kmtproject/kmt/controller/reconcile"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/latency"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/seqrange"
)

// ErrNoData says neither cluster holds a single accounting record for the
// topics: there is nothing to give a verdict on.
var ErrNoData = errors.New("no producer or consumer accounting found")

// Config says what to reconcile.
type Config struct {
	// Source and Destination reach the two clusters. Required.
	Source, Destination kafkaconf.Conn
	// Topics are the source topic names to reconcile; empty means every
	// topic some accounting record names.
	Topics []string
	// TopicPrefix is the prefix the replicator added to destination topic
	// names. Default "".
	TopicPrefix string
	// Encoding is the producers' encoding (headers by default).
	Encoding message.Encoding
	// AccountingTopic is the accounting topic on both clusters. Default
	// DefaultTopic.
	AccountingTopic string
	// AnomalyLimit caps the listed anomalies. Default 1000.
	AnomalyLimit int
	// Settle, when positive, reconciles a fleet that is still running: the
	// producers' accounting is taken first, then Reconcile waits Settle
	// (the loss grace: what was acknowledged by then has had time to
	// arrive) before taking the consumers'. Producer runs that published
	// within Stale before the snapshot are alive: only what they had
	// acknowledged at the snapshot is judged, sequences they sent later
	// are ignored, and nothing is inferred from the source for them.
	// Default 0: the fleet has stopped (kmt reconcile after a run).
	Settle time.Duration
	// Stale is how old a running producer's last publication may be
	// before it counts as killed. Default 10s.
	Stale time.Duration
}

// Result is a reconciled fleet run: the Final a local run would give, and
// how it was reached.
type Result struct {
	Final   *controller.Final
	Outcome reconcile.Outcome
	// Producers counts producer runs with published accounting, Final
	// those that published after stopping (the others were killed or are
	// still running).
	Producers, FinalProducers int
	// Consumers counts consumer processes with published accounting.
	Consumers int
	// InferredAcked counts sequences of producer runs without a final
	// publication that no publication acknowledged but that the source
	// holds: acknowledged in the producer's last moments (or at least
	// written), so they are expected at the destination.
	InferredAcked uint64
	// UnpublishedRuns counts producer runs found in the source that never
	// published (killed before their first publication).
	UnpublishedRuns int
	// CrossDuplicates counts duplicates whose copies were read by
	// different consumer processes (included in Final's duplicated).
	CrossDuplicates uint64
	// SharedRecords counts destination records read by more than one
	// consumer process (re-reads across processes after a kill or a
	// rebalance), which are not duplicates.
	SharedRecords uint64
}

// Reconcile collects the accounting both clusters hold, unions it, reads
// the source back (what killed producers wrote), reads the destination back
// where two consumer processes read the same offsets and, when something is
// lost, both clusters to locate the loss; it returns the exact outcome.
// Without a single accounting record for the topics it returns ErrNoData.
func Reconcile(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.AnomalyLimit <= 0 {
		cfg.AnomalyLimit = 1000
	}
	if cfg.AccountingTopic == "" {
		cfg.AccountingTopic = DefaultTopic
	}
	src, err := readback.Open(ctx, cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("reconcile: source cluster: %w", err)
	}
	defer src.Close()
	dst, err := readback.Open(ctx, cfg.Destination)
	if err != nil {
		return nil, fmt.Errorf("reconcile: destination cluster: %w", err)
	}
	defer dst.Close()
	prodRecs, err := collect(ctx, src, cfg.AccountingTopic)
	if err != nil && !errors.Is(err, ErrNoAccounting) {
		return nil, fmt.Errorf("reconcile: source cluster: %w", err)
	}
	if prodRecs == nil {
		prodRecs = &Collected{}
	}
	snapshot := time.Now()
	if cfg.Settle > 0 {
		slog.Info("reconcile: producers' accounting taken; waiting for what they acknowledged to arrive", "settle", cfg.Settle)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reconcile: %w", ctx.Err())
		case <-time.After(cfg.Settle):
		}
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 10 * time.Second
	}
	consRecs, err := collect(ctx, dst, cfg.AccountingTopic)
	if err != nil && !errors.Is(err, ErrNoAccounting) {
		return nil, fmt.Errorf("reconcile: destination cluster: %w", err)
	}
	if consRecs == nil {
		consRecs = &Collected{}
	}
	want := map[string]bool{}
	for _, t := range cfg.Topics {
		want[t] = true
	}
	selected := func(topic string) bool { return len(want) == 0 || want[topic] }

	res := &Result{}
	// Producers: the published acknowledgements.
	var produced []reconcile.Produced
	finalRun := map[string]bool{} // producer/run -> stopped cleanly
	alive := map[string]bool{}    // producer/run -> still running at the snapshot (Settle)
	byStream := map[message.StreamID]int{}
	topicSet := map[string]bool{}
	for _, r := range prodRecs.Producers {
		if !selected(r.Topic) {
			continue
		}
		topicSet[r.Topic] = true
		run := r.Producer + "/" + r.Run
		if _, ok := finalRun[run]; !ok {
			res.Producers++
		}
		finalRun[run] = finalRun[run] || r.Final
		if cfg.Settle > 0 && !r.Final && snapshot.Sub(r.At) < cfg.Stale {
			alive[run] = true
		}
		for _, s := range r.Streams {
			id := message.StreamID{Topic: r.Topic, Producer: r.Producer, Run: r.Run, Key: s.Key}
			byStream[id] = len(produced)
			produced = append(produced, reconcile.Produced{Stream: id, Sent: s.Sent, Acked: s.Acked, Failed: s.Failed})
		}
	}
	for _, f := range finalRun {
		if f {
			res.FinalProducers++
		}
	}
	// Consumers: per partition, every process's record.
	type partKey struct {
		topic string
		id    int32
	}
	parts := map[partKey][]*ConsumerRecord{}
	instances := map[string]bool{}
	for i := range consRecs.Consumers {
		r := &consRecs.Consumers[i]
		if !selected(r.Partition.SourceTopic) {
			continue
		}
		topicSet[r.Partition.SourceTopic] = true
		instances[r.Consumer+"/"+r.Instance] = true
		k := partKey{r.Partition.Topic, r.Partition.Partition}
		parts[k] = append(parts[k], r)
	}
	res.Consumers = len(instances)
	if len(produced) == 0 && len(parts) == 0 {
		return nil, fmt.Errorf("reconcile: %w in %s on either cluster", ErrNoData, orDefault(cfg.AccountingTopic))
	}
	topics := cfg.Topics
	if len(topics) == 0 {
		for t := range topicSet {
			topics = append(topics, t)
		}
		sort.Strings(topics)
	}

	// The source is the record of what was written: sequences of producer
	// runs that did not publish a final record, beyond what they published,
	// are expected if the source holds them.
	srcStreams, err := readback.Scan(ctx, cfg.Source, topics, "", cfg.Encoding)
	if err != nil {
		return nil, fmt.Errorf("reconcile: read the source back: %w", err)
	}
	unpublished := map[string]bool{}
	for id, set := range srcStreams {
		run := id.Producer + "/" + id.Run
		if finalRun[run] || alive[run] {
			continue
		}
		i, ok := byStream[id]
		if !ok {
			if _, known := finalRun[run]; !known {
				unpublished[run] = true
			}
			byStream[id] = len(produced)
			produced = append(produced, reconcile.Produced{Stream: id})
			i = byStream[id]
		}
		p := &produced[i]
		extra := set.Minus(p.Acked)
		extra = extra.Minus(p.Failed)
		if n := extra.Len(); n > 0 {
			res.InferredAcked += n
			p.Acked.Union(extra)
		}
		p.Sent = max(p.Sent, set.Max())
	}
	res.UnpublishedRuns = len(unpublished)
	if res.InferredAcked > 0 || res.UnpublishedRuns > 0 {
		slog.Info("reconcile: sequences in the source beyond the published acknowledgements of producers that did not stop cleanly count as acknowledged",
			"sequences", res.InferredAcked, "unpublished_runs", res.UnpublishedRuns)
	}

	// Consumers: union per partition, with the records read by more than
	// one process read back to tell re-reads from duplicates.
	var received []reconcile.Received
	var foreign uint64
	lat := latency.New()
	var first, last time.Time
	keys := make([]partKey, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].id < keys[j].id
	})
	for _, k := range keys {
		recs := parts[k]
		source := recs[0].Partition.SourceTopic
		type acc struct {
			union   seqrange.Set
			seenSum uint64
			seen    []seqrange.Set
			below   []seqrange.Set
			recv    []int // index in received of each process's entry
		}
		streams := map[message.StreamID]*acc{}
		for _, r := range recs {
			foreign += r.Partition.Foreign
			for _, s := range r.Streams {
				id := message.StreamID{Topic: source, Producer: s.Producer, Run: s.Run, Key: s.Key}
				if alive[s.Producer+"/"+s.Run] {
					// Judge only what the producer had sent at the snapshot.
					if i, ok := byStream[id]; ok {
						s.Seen = s.Seen.Intersect(seqrange.Of(seqrange.Range{Lo: 0, Hi: produced[i].Sent}))
					}
				}
				received = append(received, reconcile.Received{Stream: id, Seen: s.Seen, Duplicates: s.Duplicates,
					DuplicatedSeqs: s.DuplicatedSeqs, Reordered: s.Reordered, Late: s.Late})
				a := streams[id]
				if a == nil {
					a = &acc{}
					streams[id] = a
				}
				a.union.Union(s.Seen)
				a.seenSum += s.Seen.Len()
				a.seen = append(a.seen, s.Seen)
				a.below = append(a.below, s.Below)
				a.recv = append(a.recv, len(received)-1)
				if !s.First.IsZero() && (first.IsZero() || s.First.Before(first)) {
					first = s.First
				}
				if s.Last.After(last) {
					last = s.Last
				}
			}
		}
		if len(recs) < 2 {
			continue
		}
		shared, sharedForeign, n, err := readShared(ctx, dst, k.topic, k.id, recs, source, cfg.Encoding)
		if err != nil {
			return nil, fmt.Errorf("reconcile: read back records read by several consumer processes: %w", err)
		}
		res.SharedRecords += n
		foreign -= min(foreign, sharedForeign)
		ids := make([]message.StreamID, 0, len(streams))
		for id := range streams {
			ids = append(ids, id)
		}
		sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })
		for _, id := range ids {
			a := streams[id]
			// A sequence that arrived below a process's adopted baseline,
			// or that its resumed stream had resolved elsewhere, was
			// counted reordered there (Below); if another process saw it,
			// in the union it is a re-read or a duplicate, not a reorder.
			for i := range a.below {
				if a.below[i].Empty() {
					continue
				}
				var others seqrange.Set
				for j := range a.seen {
					if j != i {
						others.Union(a.seen[j])
					}
				}
				b := a.below[i].Intersect(others)
				r := &received[a.recv[i]]
				r.Reordered -= min(r.Reordered, b.Len())
			}
			// Every arrival a process counted either added to its Seen
			// set or was one of its own duplicates. Across processes, the
			// arrivals of one record read by several processes (shared)
			// are one arrival; the distinct records beyond the union of
			// Seen sets are the duplicates. The processes' own duplicate
			// counts are corrected by the difference: up for copies read
			// by different processes, down for a duplicate pair that two
			// processes both read.
			var dups uint64
			for _, i := range a.recv {
				dups += received[i].Duplicates
			}
			arrivals := a.seenSum + dups
			distinct := arrivals - min(arrivals, shared[id])
			u := a.union.Len()
			if distinct < u {
				slog.Warn("reconcile: consumer publications disagree with the records read back", "stream", id.String(), "records", distinct, "unique", u)
				distinct = u
			}
			want := distinct - u
			switch {
			case want > dups:
				res.CrossDuplicates += want - dups
				received = append(received, reconcile.Received{Stream: id, Duplicates: want - dups})
			case want < dups:
				excess := dups - want
				for _, i := range a.recv {
					n := min(excess, received[i].Duplicates)
					received[i].Duplicates -= n
					excess -= n
				}
			}
		}
	}
	for _, l := range consRecs.Latency {
		if l.Latency == nil || !instances[l.Consumer+"/"+l.Instance] {
			// Latency records are per process, not per topic: one of a
			// consumer that published nothing about these topics belongs
			// to another fleet sharing the accounting topic.
			continue
		}
		s, err := l.Latency.Snapshot()
		if err != nil {
			slog.Warn("reconcile: latency histogram skipped", "consumer", l.Consumer, "err", err)
			continue
		}
		lat.Merge(s)
	}

	o := reconcile.Reconcile(produced, received)
	if o.Lost > 0 {
		dstStreams, err := readback.Scan(ctx, cfg.Destination, topics, cfg.TopicPrefix, cfg.Encoding)
		if err != nil {
			slog.Warn("loss attribution failed", "cluster", "destination", "err", err)
		} else {
			for i := range o.Streams {
				s := &o.Streams[i]
				if !s.Lost.Empty() {
					s.LostWhere = readback.Attribute(s.Stream, s.Lost, srcStreams, dstStreams)
				}
			}
		}
	}
	res.Outcome = o
	res.Final = final(o, foreign, lat, last.Sub(first), cfg.AnomalyLimit)
	return res, nil
}

// readShared reads back the offsets of partition topic/id that more than
// one of recs covered and returns, per stream, how many arrivals they
// account for beyond the first (a record read by k processes counts k-1),
// the same for foreign records, and how many such records there are.
func readShared(ctx context.Context, r *readback.Reader, topic string, id int32, recs []*ConsumerRecord, source string, enc message.Encoding) (map[message.StreamID]uint64, uint64, uint64, error) {
	type edge struct {
		at    uint64
		delta int
	}
	var edges []edge
	for _, rec := range recs {
		for _, rg := range rec.Partition.Covered.Ranges() {
			edges = append(edges, edge{rg.Lo, 1}, edge{rg.Hi, -1})
		}
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at != edges[j].at {
			return edges[i].at < edges[j].at
		}
		return edges[i].delta < edges[j].delta
	})
	type segment struct {
		lo, hi uint64
		extra  uint64 // readers beyond the first
	}
	var segs []segment
	depth := 0
	for i, e := range edges {
		depth += e.delta
		if depth >= 2 && i+1 < len(edges) && edges[i+1].at > e.at {
			segs = append(segs, segment{e.at, edges[i+1].at, uint64(depth - 1)})
		}
	}
	shared := map[message.StreamID]uint64{}
	var foreign, n uint64
	var m message.Meta
	for _, sg := range segs {
		err := r.Each(ctx, topic, id, int64(sg.lo), int64(sg.hi), func(msg *sarama.ConsumerMessage) {
			n += sg.extra
			var err error
			if enc == message.Body {
				err = message.DecodeBody(msg.Key, msg.Value, &m)
			} else {
				err = message.DecodeHeaders(msg.Key, msg.Headers, &m)
			}
			switch {
			case err != nil:
				foreign += sg.extra
			case !m.End:
				shared[message.StreamID{Topic: source, Producer: string(m.Producer), Run: string(m.Run), Key: m.Key}] += sg.extra
			}
		})
		if err != nil {
			return nil, 0, 0, err
		}
	}
	return shared, foreign, n, nil
}

// final turns an outcome into the Final a local run reports.
func final(o reconcile.Outcome, foreign uint64, lat *latency.Recorder, d time.Duration, limit int) *controller.Final {
	tot := lat.Total()
	msf := func(v time.Duration) float64 { return float64(v) / float64(time.Millisecond) }
	s := results.Summary{
		Verdict:   results.Fail,
		DurationS: d.Seconds(), Produced: o.Produced, Acked: o.Acked, ProduceErrors: o.ProduceErrors,
		Received: o.Received, Lost: o.Lost, Duplicated: o.Duplicated, Reordered: o.Reordered, Late: o.Late,
		Foreign: foreign, UnackedDelivered: o.UnackedDelivered, NeverAcked: o.NeverAcked,
		LatencyMs: results.Latencies{P50: msf(tot.P50), P90: msf(tot.P90), P99: msf(tot.P99), P999: msf(tot.P999), Max: msf(tot.Max)},
	}
	if o.Pass() {
		s.Verdict = results.Pass
	}
	if d > 0 {
		s.ThroughputMsgsPerS = float64(o.Received) / d.Seconds()
	}
	anomalies, totals := o.Anomalies(limit)
	f := &controller.Final{Summary: s, Anomalies: anomalies, AnomalyTotals: totals, Exact: true}
	for i, v := range lat.Curve() {
		f.Latency = append(f.Latency, results.Percentile{Percentile: latency.CurvePercentiles[i], ValueMs: msf(v)})
	}
	return f
}

func orDefault(topic string) string {
	if topic == "" {
		return DefaultTopic
	}
	return topic
}
