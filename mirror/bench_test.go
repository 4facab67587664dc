package mirror_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/wan"
	"github.com/kmtproject/kmt/mirror"
)

// BenchmarkMirror measures how fast the mirror copies a backlog of records
// with 1000-byte values between two embedded 3-broker clusters, directly and
// through a healthy WAN link on the source side. Each iteration mirrors a
// fresh 6-partition topic of 20000 records. records/s counts from Run
// (connect and group join included), records/s-after-first from the first
// replicated record.
func BenchmarkMirror(b *testing.B) {
	for _, viaLink := range []bool{false, true} {
		name := "direct"
		if viaLink {
			name = "wan-link"
		}
		b.Run(name, func(b *testing.B) {
			src := startCluster(b, "source", 3)
			dst := startCluster(b, "destination", 3)
			const n = 20000
			var total, steady time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				topic := fmt.Sprintf("bench-%s-%d", name, i)
				createTopic(b, src, topic, 6)
				pr := newProducer(b, src, topic, 6, 6)
				pr.size = 1000
				for sent := 0; sent < n; sent += 1000 {
					pr.send(1000)
				}
				sconn := conn(src)
				if viaLink {
					l := wan.New()
					b.Cleanup(func() { l.Close() })
					sconn.Dialer = l
				}
				m, err := mirror.New(sconn, conn(dst), mirror.Config{Topics: []string{topic}, Group: topic}, nil)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start := time.Now()
				go func() { done <- m.Run(ctx) }()
				for m.Counters().Replicated == 0 {
					time.Sleep(time.Millisecond)
				}
				first := time.Now()
				for m.Counters().Replicated < n {
					time.Sleep(2 * time.Millisecond)
				}
				total += time.Since(start)
				steady += time.Since(first)
				b.StopTimer()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "records/s")
			b.ReportMetric(float64(n*b.N)/steady.Seconds(), "records/s-after-first")
		})
	}
}
