package producer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/message"
)

const (
	benchPartitions = 3
	benchSize       = 1000
)

// BenchmarkProduce compares the kmt producer at an unlimited rate with a
// bare sarama AsyncProducer, each sending 1000-byte messages to an embedded
// cluster in the same run, with the same client settings (acks all, manual
// partitioner, 5 requests in flight). Both are timed from connecting to
// closing. Each phase gets a fresh single-broker cluster and starts after a
// GC, so neither inherits the other's heap, and the phases run in ABBA
// order (b.N/2 messages each) so drift in the machine's load cancels out.
// It reports messages/s for both, the ratio kmt/sarama (target >= 0.90), and
// the process CPU time per message of each (less sensitive to other load
// on the machine than wall-clock rates). Run with a fixed count:
//
//	go test -run '^$' -bench BenchmarkProduce -benchtime 200000x -count 5 ./producer
func BenchmarkProduce(b *testing.B) {
	for _, enc := range []message.Encoding{message.Headers, message.Body} {
		b.Run(enc.String(), func(b *testing.B) {
			quiet := slog.Default()
			slog.SetDefault(slog.New(slog.DiscardHandler))
			defer slog.SetDefault(quiet)
			bare := func(conn kafkaconf.Conn, n int) time.Duration { return benchBare(b, conn, "bench", n) }
			kmt := func(conn kafkaconf.Conn, n int) time.Duration { return benchKmt(b, conn, "bench", n, enc) }
			b.StopTimer()
			benchPhase(b, bare, 2000) // warm up both code paths
			benchPhase(b, kmt, 2000)
			first, second := b.N/2, b.N-b.N/2
			var bareWall, kmtWall, bareCPU, kmtCPU time.Duration
			for _, ph := range []struct {
				run        func(kafkaconf.Conn, int) time.Duration
				n          int
				wall, proc *time.Duration
			}{
				{bare, first, &bareWall, &bareCPU},
				{kmt, first, &kmtWall, &kmtCPU},
				{kmt, second, &kmtWall, &kmtCPU},
				{bare, second, &bareWall, &bareCPU},
			} {
				w, c := benchPhase(b, ph.run, ph.n)
				*ph.wall += w
				*ph.proc += c
			}
			n := float64(b.N)
			b.ReportMetric(n/bareWall.Seconds(), "sarama-msgs/s")
			b.ReportMetric(n/kmtWall.Seconds(), "kmt-msgs/s")
			b.ReportMetric(bareWall.Seconds()/kmtWall.Seconds(), "kmt/sarama")
			b.ReportMetric(float64(bareCPU.Nanoseconds())/n, "sarama-cpu-ns/msg")
			b.ReportMetric(float64(kmtCPU.Nanoseconds())/n, "kmt-cpu-ns/msg")
		})
	}
}

// benchPhase runs one producer on a fresh cluster after a GC, with the
// benchmark timer running, and returns its wall time and the process CPU
// time it took (cluster included).
func benchPhase(b *testing.B, run func(kafkaconf.Conn, int) time.Duration, n int) (wall, cpu time.Duration) {
	b.Helper()
	if n == 0 {
		return 0, 0
	}
	c, err := embedded.Start(embedded.Brokers(1), embedded.Name("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	createTopics(b, c, benchPartitions, "bench")
	runtime.GC()
	before := processCPU(b)
	b.StartTimer()
	wall = run(connOf(c), n)
	b.StopTimer()
	return wall, processCPU(b) - before
}

// benchKmt produces n messages with a kmt producer and returns how long Run
// took.
func benchKmt(b *testing.B, conn kafkaconf.Conn, topic string, n int, enc message.Encoding) time.Duration {
	b.Helper()
	if n == 0 {
		return 0
	}
	p, err := New(conn, Config{ID: "bench", Topics: []string{topic}, Messages: uint64(n), MessageSize: benchSize, Encoding: enc}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	if err := p.Run(ctx); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	if rep := p.Report(); rep.Acked != uint64(n) {
		b.Fatalf("kmt: %d of %d acked (%d errors)", rep.Acked, n, rep.Errors)
	}
	return d
}

// benchBare produces n keyed 1000-byte messages with a bare sarama
// AsyncProducer and returns the time from connecting to closed.
func benchBare(b *testing.B, conn kafkaconf.Conn, topic string, n int) time.Duration {
	b.Helper()
	if n == 0 {
		return 0
	}
	start := time.Now()
	sc, err := conn.Sarama()
	if err != nil {
		b.Fatal(err)
	}
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = DefaultMaxInFlight
	client, err := sarama.NewClient(conn.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		b.Fatal(err)
	}
	value := sarama.ByteEncoder(make([]byte, benchSize))
	keys := make([]sarama.Encoder, benchPartitions)
	for k := range keys {
		keys[k] = sarama.ByteEncoder(message.AppendKey(nil, uint32(k)))
	}
	done := make(chan error, 1)
	go func() {
		var acked, failed int
		for acked+failed < n {
			select {
			case <-ap.Successes():
				acked++
			case e := <-ap.Errors():
				failed++
				if failed == 1 {
					done <- fmt.Errorf("bare sarama: %w", e.Err)
				}
			}
		}
		close(done)
	}()
	for i := 0; i < n; i++ {
		k := i % benchPartitions
		ap.Input() <- &sarama.ProducerMessage{Topic: topic, Partition: int32(k), Key: keys[k], Value: value}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if err := ap.Close(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}
