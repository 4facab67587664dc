package kubernetes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kmtproject/kmt/consumer"
	"github.com/kmtproject/kmt/controller"
	fleetacct "github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/mirror"
	"github.com/kmtproject/kmt/producer"
)

// TestPreflightWithoutData: with Prometheus unreachable and no accounting
// topic on either cluster, the run stops before its first step with
// ErrPreflight naming both, and nothing runs.
func TestPreflightWithoutData(t *testing.T) {
	src, dst := startCluster(t, "source"), startCluster(t, "destination")
	tg, _, _, _ := twoRegions(t, 0, Config{
		PrometheusURL:    "http://127.0.0.1:1", // nothing listens on port 1
		SourceKafka:      kafkaconf.Conn{Brokers: src.Addrs(), ConnectTimeout: 5 * time.Second},
		DestinationKafka: kafkaconf.Conn{Brokers: dst.Addrs(), ConnectTimeout: 5 * time.Second},
	})
	sc, err := scenario.Parse([]byte("workload: {duration: 5s}\nsteps:\n  - {at: 1s, action: kill-broker, cluster: source}\nexpect: [lost == 0]\n"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := (&controller.Runner{Target: tg, Scenario: sc}).Run(ctxT(t))
	if res != nil || !errors.Is(err, controller.ErrPreflight) {
		t.Fatalf("run: results %v, error %v; want no results and ErrPreflight", res, err)
	}
	for _, want := range []string{"prometheus", "source cluster", "destination cluster", fleetacct.DefaultTopic} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("preflight error does not mention %q: %v", want, err)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("preflight took %s", d)
	}
}

// TestReconcileFleet: the target's final step reconciles what a producer
// and a consumer published into their own cluster, through the two Kafka
// connections only, while the producer still runs: exact, nothing lost,
// the counts equal to the topics read back by hand up to what was
// acknowledged at the snapshot.
func TestReconcileFleet(t *testing.T) {
	src, dst := startCluster(t, "source"), startCluster(t, "destination")
	srcConn := kafkaconf.Conn{Brokers: src.Addrs(), ConnectTimeout: 10 * time.Second}
	dstConn := kafkaconf.Conn{Brokers: dst.Addrs(), ConnectTimeout: 10 * time.Second}
	const topic = "kmt-0"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := producer.EnsureTopics(ctx, srcConn, []string{topic}, 3, 1, 0); err != nil {
		t.Fatal(err)
	}
	m, err := mirror.New(srcConn, dstConn, mirror.Config{Topics: []string{topic}, ReplicationFactor: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = m.Run(mctx) }()
	t.Cleanup(func() { mcancel(); <-mdone })

	cpub, err := fleetacct.NewPublisher(ctx, dstConn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cpub.Close)
	ledger := consumer.NewLedger(nil, consumer.WithPublisher(cpub.ConsumerFunc("c1", fleetacct.NewInstance(), nil), 200*time.Millisecond))
	cons, err := consumer.New(dstConn, consumer.Config{Topics: []string{topic}, Group: "k8s-fleet", ID: "c1"}, ledger, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	cdone := make(chan struct{})
	go func() {
		defer close(cdone)
		if err := cons.Run(cctx); err != nil {
			t.Errorf("consumer: %v", err)
		}
	}()
	t.Cleanup(func() { ccancel(); <-cdone })

	ppub, err := fleetacct.NewPublisher(ctx, srcConn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ppub.Close)
	prod, err := producer.New(srcConn, producer.Config{ID: "p1", Topics: []string{topic}, Rate: 300}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	ran, published := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ran)
		if err := prod.Run(pctx); err != nil {
			t.Errorf("producer: %v", err)
		}
	}()
	go func() {
		defer close(published)
		if err := ppub.RunProducer(prod, 200*time.Millisecond, ran); err != nil {
			t.Errorf("producer publication: %v", err)
		}
	}()
	t.Cleanup(func() { pcancel(); <-published })

	tg, _, _, _ := twoRegions(t, 0, Config{SourceKafka: srcConn, DestinationKafka: dstConn})
	time.Sleep(3 * time.Second)
	f, err := tg.Reconcile(ctx, 3*time.Second) // the producer still runs
	if err != nil {
		t.Fatal(err)
	}
	s := f.Summary
	if !f.Exact || s.Lost != 0 || s.Duplicated != 0 || s.Reordered != 0 || s.Acked == 0 || s.Received < s.Acked || s.Verdict != "PASS" {
		t.Fatalf("final %+v exact %v; want exact, nothing lost, everything acked at the snapshot received", s, f.Exact)
	}
	// Ground truth, once the fleet stopped: everything received is in the
	// destination, once.
	pcancel()
	<-published
	mcancel()
	<-mdone
	truth := kafkatest.ReadTopic(t, dst.Addrs(), topic, 3*time.Second)
	unique, dups, _, _ := truth.Counts()
	if dups != 0 || uint64(unique) < s.Received {
		t.Errorf("destination holds %d unique, %d duplicates; reconciled received %d", unique, dups, s.Received)
	}
}
