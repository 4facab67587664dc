package kafkaproc_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/wan"
)

// TestMirrorMakerReplicatesThroughTheWANLink runs real MirrorMaker 2 between
// two real clusters. The source brokers' REPLICATOR listeners are
// advertised at proxies through a WAN link, so cutting the link stops
// replication while producers (on PLAINTEXT) carry on; after the heal every
// record is in the destination, read back by kcat with its key, value and
// headers intact, each once.
func TestMirrorMakerReplicatesThroughTheWANLink(t *testing.T) {
	home := kafkatest.KafkaHome(t)
	link := wan.New(wan.Name("wan"))
	t.Cleanup(func() { link.Close() })
	var proxies []*kafkaproc.Proxy
	var mu sync.Mutex
	t.Cleanup(func() {
		for _, p := range proxies {
			p.Close()
		}
	})
	src, dst := startPair(t,
		kafkaproc.Config{Home: home, Name: "source", Brokers: 1, Combined: true,
			Replicator: func(broker int, listen string) (string, error) {
				p, err := kafkaproc.NewProxy(link, listen)
				if err != nil {
					return "", err
				}
				mu.Lock()
				proxies = append(proxies, p)
				mu.Unlock()
				return p.Addr(), nil
			}},
		kafkaproc.Config{Home: home, Name: "destination", Brokers: 1, Combined: true})
	if src.ReplicatorBootstrap()[0] == src.Bootstrap()[0] {
		t.Fatalf("ReplicatorBootstrap() = Bootstrap() = %v", src.Bootstrap())
	}
	const topic = "kmt-mm2"
	prod := client(t, src.Bootstrap())
	createTopic(t, prod, topic, 2, 1)
	hdrs := []kgo.RecordHeader{{Key: "kmt-seq", Value: []byte("42")}, {Key: "trace", Value: []byte("x\x00\x01\t é")}}
	produce(t, prod, topic, 0, 200, hdrs...)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	mm, err := kafkaproc.StartMirrorMaker(ctx, kafkaproc.MM2Config{Home: home, Dir: t.TempDir(),
		Source: src.ReplicatorBootstrap(), Destination: dst.Bootstrap(),
		Properties: map[string]string{"refresh.topics.interval.seconds": "2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mm.Close() })
	t.Logf("MirrorMaker 2 started in %s (pid %d, log %s)", time.Since(begin).Round(time.Millisecond), mm.PID(), mm.LogPath())
	waitRecords(t, dst.Bootstrap(), topic, 200)
	t.Logf("200 records replicated %s after MirrorMaker 2 started", time.Since(begin).Round(time.Millisecond))

	// Cut the WAN link: the replicator stalls, producers do not.
	if err := link.Set(wan.Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	produce(t, prod, topic, 200, 100, hdrs...)
	time.Sleep(5 * time.Second)
	if n := kafkatest.Records(t, dst.Bootstrap(), topic); n != 200 {
		t.Fatalf("destination holds %d records while the WAN link is cut, want 200", n)
	}
	link.Heal()
	waitRecords(t, dst.Bootstrap(), topic, 300)

	got := distinctValues(t, kafkatest.KcatRead(t, dst.Bootstrap(), topic))
	if len(got) != 300 {
		t.Errorf("kcat read %d distinct records in the destination, want 300", len(got))
	}
	for i := range 300 {
		r, ok := got[fmt.Sprintf("value-%d", i)]
		if !ok {
			t.Errorf("value-%d missing in the destination", i)
			continue
		}
		// kcat -J prints JSON strings: header bytes that are valid UTF-8
		// (control bytes and NUL included) come back exactly.
		want := []string{"kmt-seq", "42", "trace", "x\x00\x01\t é"}
		if r.Key != fmt.Sprintf("key-%d", i) || fmt.Sprint(r.Headers) != fmt.Sprint(want) {
			t.Errorf("value-%d arrived with key %q headers %q, want key-%d headers %q", i, r.Key, r.Headers, i, want)
		}
	}
	if !mm.Running() {
		t.Fatal("MirrorMaker 2 is not running")
	}
	mm.Kill()
	if mm.Running() || mm.PID() != 0 {
		t.Fatal("MirrorMaker 2 still running after Kill")
	}
}

// waitRecords waits until topic holds n records on brokers.
func waitRecords(t *testing.T, brokers []string, topic string, n int64) {
	t.Helper()
	eventually(t, 3*time.Minute, fmt.Sprintf("%d records in %s", n, topic), func() error {
		if got := kafkatest.Records(t, brokers, topic); got != n {
			return fmt.Errorf("%d records", got)
		}
		return nil
	})
}

// startPair starts two clusters at once in the test's temporary directory
// and closes them when the test ends.
func startPair(t *testing.T, a, b kafkaproc.Config) (*kafkaproc.Cluster, *kafkaproc.Cluster) {
	t.Helper()
	dir := t.TempDir()
	a.Dir, b.Dir = dir, dir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	var ca, cb *kafkaproc.Cluster
	var ea, eb error
	var wg sync.WaitGroup
	wg.Go(func() { ca, ea = kafkaproc.StartCluster(ctx, a) })
	wg.Go(func() { cb, eb = kafkaproc.StartCluster(ctx, b) })
	wg.Wait()
	for _, c := range []*kafkaproc.Cluster{ca, cb} {
		if c != nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if ea != nil || eb != nil {
		t.Fatalf("start two real clusters: %v", errors.Join(ea, eb))
	}
	t.Logf("real Kafka %s and %s ready in %s", ca.Name(), cb.Name(), time.Since(begin).Round(time.Millisecond))
	return ca, cb
}
