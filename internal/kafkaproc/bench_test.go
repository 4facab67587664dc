package kafkaproc_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// BenchmarkTwoClustersAndMirrorMakerReady measures what `kmt local
// --kafka-home` waits for before its first status line: two clusters of
// three brokers and a dedicated controller each, started in parallel, then
// one MirrorMaker 2 worker between them. It reports the seconds until the
// clusters are ready (clusters-s) and until the worker is (ready-s).
//
//	go test -run '^$' -bench TwoClusters -benchtime 3x ./internal/kafkaproc/
func BenchmarkTwoClustersAndMirrorMakerReady(b *testing.B) {
	home := kafkatest.KafkaHome(b)
	var clusters, ready time.Duration
	for b.Loop() {
		dir := b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		begin := time.Now()
		var src, dst *kafkaproc.Cluster
		var srcErr, dstErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			src, srcErr = kafkaproc.StartCluster(ctx, kafkaproc.Config{Home: home, Dir: dir, Name: "source"})
		})
		wg.Go(func() {
			dst, dstErr = kafkaproc.StartCluster(ctx, kafkaproc.Config{Home: home, Dir: dir, Name: "destination"})
		})
		wg.Wait()
		if srcErr != nil || dstErr != nil {
			cancel()
			if src != nil {
				src.Close()
			}
			if dst != nil {
				dst.Close()
			}
			b.Fatal(srcErr, dstErr)
		}
		clusters += time.Since(begin)
		mm, err := kafkaproc.StartMirrorMaker(ctx, kafkaproc.MM2Config{Home: home, Dir: dir,
			Source: src.ReplicatorBootstrap(), Destination: dst.Bootstrap()})
		ready += time.Since(begin)
		cancel()
		if mm != nil {
			mm.Close()
		}
		src.Close()
		dst.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(clusters.Seconds()/float64(b.N), "clusters-s")
	b.ReportMetric(ready.Seconds()/float64(b.N), "ready-s")
}
