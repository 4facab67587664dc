package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kmtproject/kmt/internal/message"
)

// PartitionAccount is what one process accounted in one Kafka partition up
// to a moment: the partition's figures (offsets covered, re-reads, foreign
// records) and the streams seen there. It is what a ledger with a publisher
// publishes for the fleet's reconciliation.
type PartitionAccount struct {
	Partition PartitionReport `json:"partition"`
	Streams   []StreamReport  `json:"streams"`
}

// Publish publishes, with the ledger's publisher, the accounting of every
// partition that processed records or resumed since the last successful
// publication; all publishes every partition. On success the consumers may
// commit each published partition up to the offset the publication
// covered. It does nothing without a publisher (WithPublisher).
// Publications are serialised.
func (l *Ledger) Publish(ctx context.Context, all bool) error {
	if l.publish == nil {
		return nil
	}
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	l.lastPublish.Store(time.Now().UnixNano())
	var accounts []PartitionAccount
	var parts []*partition
	for _, p := range l.partitions() {
		p.mu.Lock()
		if !p.started || (!all && p.nextOffset == p.pubNext && p.resumes == p.pubResumes) {
			p.mu.Unlock()
			continue
		}
		a := PartitionAccount{Partition: p.report()}
		for _, r := range p.runs {
			for key, t := range r.streams {
				id := message.StreamID{Topic: p.source, Producer: r.producer, Run: r.run, Key: key}
				a.Streams = append(a.Streams, streamReport(id, t))
			}
		}
		p.mu.Unlock()
		accounts = append(accounts, a)
		parts = append(parts, p)
	}
	if len(accounts) == 0 {
		return nil
	}
	if err := l.publish(ctx, accounts); err != nil {
		return fmt.Errorf("consumer: publish accounting of %d partitions: %w", len(accounts), err)
	}
	for i, p := range parts {
		pr := accounts[i].Partition
		p.pubNext, p.pubResumes = pr.NextOffset, pr.Resumes
		p.published.Store(pr.NextOffset)
	}
	return nil
}

// Publishing reports whether the ledger publishes its accounting
// (WithPublisher).
func (l *Ledger) Publishing() bool { return l.publish != nil }

// maybePublish publishes unless a publication started within the last
// interval, logging a failure (the next one retries).
func (l *Ledger) maybePublish(ctx context.Context, now time.Time) {
	if l.publish == nil || now.UnixNano()-l.lastPublish.Load() < int64(l.pubInterval)*9/10 {
		return
	}
	if err := l.Publish(ctx, false); err != nil && ctx.Err() == nil {
		slog.Warn("consumer accounting publication failed; offsets stay uncommitted until one succeeds", "err", err)
	}
}
