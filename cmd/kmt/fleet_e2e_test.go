package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/results"
)

// TestFleetReconcileEndToEnd is TestFleetReconcileProcesses against a real
// Apache Kafka (KMT_TEST_BROKERS; skipped without it): on one cluster, as
// separate OS processes, two kmt produce (one SIGKILLed mid-run), a kmt
// mirror copying the topic to copy.<topic> (SIGKILLed and restarted, so it
// re-delivers what it had not committed: duplicates at new offsets), three
// kmt consume in one group reading the copy (one SIGKILLed while it holds
// partitions, which move to the others), then kmt reconcile with the same
// cluster as source and destination. Producers and consumers therefore
// publish into the same __kmt_accounting topic, shared too with the other
// end-to-end tests' processes. The summary must equal what reading both
// topics back with franz-go and a hand parser shows: every message the
// source holds acknowledged (the killed producer's included), every unique
// copy received, nothing lost, the duplicates and reorders counted exactly.
func TestFleetReconcileEndToEnd(t *testing.T) {
	if os.Getenv(kafkatest.BrokersEnv) == "" {
		t.Skipf("needs a real Kafka in %s (make test-real-kafka)", kafkatest.BrokersEnv)
	}
	addrs, _ := kafkatest.Brokers(t, 1)
	brokers := strings.Join(addrs, ",")
	topic := fmt.Sprintf("kmt-e2e-fleet-%08x", rand.Uint32())
	copyTopic := "copy." + topic
	mirrorGroup, checkGroup := topic+"-mirror", topic+"-check"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	begin := time.Now()

	// The source topic first, so the mirror sees it at once.
	if r := runKmtProcess(ctx, t, nil, "produce", "--bootstrap-servers", brokers, "--topics", topic, "--create-topics",
		"--partitions", "6", "--replication-factor", "-1", "--duration", "1ms", "--rate", "1", "--id", "p0"); r.code != 0 {
		t.Fatalf("create topic: exit %d: %s", r.code, r.stderr)
	}
	mirror := func(name, commitInterval string) *kmtProc {
		return startKmt(t, name, "mirror", "--source", brokers, "--destination", brokers, "--topics", topic,
			"--topic-prefix", "copy.", "--group", mirrorGroup, "--commit-interval", commitInterval, "--metrics-addr", "")
	}
	// The first mirror commits rarely: when it is killed, up to two
	// seconds of records it already copied are copied again.
	m1 := mirror("m1", "2s")
	produce := func(id string) *kmtProc {
		return startKmt(t, id, "produce", "--bootstrap-servers", brokers, "--topics", topic, "--id", id,
			"--rate", "150", "--duration", "3m", "--accounting-interval", "300ms")
	}
	p1, p2 := produce("p1"), produce("p2")
	waitUntil(t, time.Minute, "the mirror copied the first records", func() bool {
		return kafkatest.Records(t, addrs, copyTopic) > 0
	})
	consume := func(id string) *kmtProc {
		return startKmt(t, id, "consume", "--bootstrap-servers", brokers, "--topics", topic, "--topic-prefix", "copy.",
			"--group", checkGroup, "--id", id, "--loss-grace", "3s", "--metrics-addr", "", "--accounting-interval", "300ms")
	}
	consumers := map[string]*kmtProc{"c1": consume("c1"), "c2": consume("c2"), "c3": consume("c3")}
	// Every consumer holds partitions and has published its accounting:
	// the one killed next takes partitions with it that must move.
	waitUntil(t, time.Minute, "three consumers hold partitions and published", func() bool {
		byConsumer := publishedPartitions(t, addrs, copyTopic)
		return groupMembers(t, addrs, checkGroup) == 3 && len(byConsumer["c1"]) > 0 && len(byConsumer["c2"]) > 0 && len(byConsumer["c3"]) > 0
	})
	t.Logf("%.1fs: fleet running; killing p2, c1 and m1", time.Since(begin).Seconds())
	p2.signal(t, syscall.SIGKILL) // its last acks die with it
	consumers["c1"].signal(t, syscall.SIGKILL)
	m1.signal(t, syscall.SIGKILL)
	m1.wait(t, 30*time.Second)
	m2 := mirror("m2", "200ms")
	// c1's partitions move to c2 and c3 once its session expires; p1 keeps
	// writing until then, so they have records to read beyond c1's last
	// commit.
	waitUntil(t, time.Minute, "c1's partitions moved to c2 and c3", func() bool {
		return groupMembers(t, addrs, checkGroup) == 2
	})
	t.Logf("%.1fs: c1's partitions moved; stopping p1", time.Since(begin).Seconds())
	p1.signal(t, syscall.SIGTERM)
	p1.wait(t, time.Minute)
	if p1.err != nil {
		t.Fatalf("p1: %v\n%s", p1.err, p1.out.String())
	}
	waitCommitted(t, addrs, mirrorGroup, topic, 90*time.Second)
	waitCommitted(t, addrs, checkGroup, copyTopic, 90*time.Second)
	for _, p := range []*kmtProc{consumers["c2"], consumers["c3"], m2} {
		p.signal(t, syscall.SIGTERM)
	}
	for _, p := range []*kmtProc{consumers["c2"], consumers["c3"], m2} {
		p.wait(t, time.Minute)
		t.Logf("%s ended: %v", p.name, p.err)
	}
	t.Logf("%.1fs: fleet stopped", time.Since(begin).Seconds())

	// Another fleet's consumer publishes into the same accounting topic.
	injectForeignLatency(t, addrs)
	summary := filepath.Join(t.TempDir(), "s.json")
	r := runKmtProcess(ctx, t, nil, "reconcile", "--source-bootstrap-servers", brokers, "--destination-bootstrap-servers", brokers,
		"--topics", topic, "--topic-prefix", "copy.", "--summary-json", summary)
	t.Logf("kmt reconcile (exit %d, %s):\n%s", r.code, r.took.Round(time.Millisecond), r.stdout)
	if r.code == 2 {
		t.Fatalf("kmt reconcile exit 2:\n%s", r.stderr)
	}
	got := readSummary(t, summary)

	// Ground truth, by hand: what the source topic holds was written
	// (acknowledged, or at least written by the killed producer), what the
	// copy holds arrived.
	srcTruth := kafkatest.ReadTopic(t, addrs, topic, time.Second)
	dstTruth := kafkatest.ReadTopic(t, addrs, copyTopic, time.Second)
	srcUnique, srcDups, _, _ := srcTruth.Counts()
	dstUnique, dstDups, dstReordered, _ := dstTruth.Counts()
	perProducer := map[string]int{}
	for s, arr := range srcTruth.Streams {
		perProducer[s.Producer] += len(arr)
	}
	t.Logf("truth: source %d records, %d unique (%v), %d duplicates; copy %d records, %d unique, %d duplicates, %d reordered; %.1fs in all",
		srcTruth.Records, srcUnique, perProducer, srcDups, dstTruth.Records, dstUnique, dstDups, dstReordered, time.Since(begin).Seconds())
	if perProducer["p1"] == 0 || perProducer["p2"] == 0 {
		t.Fatalf("the source holds no messages of p1 or p2: %v", perProducer)
	}
	if srcUnique != dstUnique {
		t.Errorf("the copy holds %d unique messages, the source %d: the mirror lost some", dstUnique, srcUnique)
	}
	want := results.Summary{Acked: uint64(srcUnique), Received: uint64(dstUnique), Lost: 0,
		Duplicated: uint64(dstDups), Reordered: uint64(dstReordered)}
	if got.Acked != want.Acked || got.Received != want.Received || got.Lost != want.Lost ||
		got.Duplicated != want.Duplicated || got.Reordered != want.Reordered || got.ProduceErrors != 0 || got.Foreign != 0 {
		t.Errorf("reconcile: acked %d received %d lost %d duplicated %d reordered %d errors %d foreign %d; truth: acked %d received %d lost %d duplicated %d reordered %d",
			got.Acked, got.Received, got.Lost, got.Duplicated, got.Reordered, got.ProduceErrors, got.Foreign,
			want.Acked, want.Received, want.Lost, want.Duplicated, want.Reordered)
	}
	wantCode := 0
	if dstDups > 0 || dstReordered > 0 {
		wantCode = 1 // duplicates or reorders make the verdict FAIL
	}
	if r.code != wantCode {
		t.Errorf("kmt reconcile exit %d, want %d", r.code, wantCode)
	}
	if !strings.Contains(r.stdout, "3 producer runs (2 stopped cleanly") || !strings.Contains(r.stdout, "3 consumer processes") {
		t.Errorf("reconcile does not count p0, p1 (stopped cleanly), the killed p2 and three consumer processes:\n%s", r.stdout)
	}
	checkNoForeignLatency(t, got)
	if dstDups == 0 {
		t.Logf("note: the killed mirror re-delivered nothing this time (no duplicates to count)")
	}
}

// waitUntil polls cond every 250ms until it holds, failing the test after
// timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// groupMembers returns how many members of group hold at least one
// partition while the group is Stable (0 otherwise), as the broker
// describes it.
func groupMembers(t *testing.T, brokers []string, group string) int {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		t.Fatalf("describe group %s: %v", group, err)
	}
	defer admin.Close()
	groups, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(groups) != 1 || groups[0].State != "Stable" {
		return 0
	}
	n := 0
	for _, m := range groups[0].Members {
		a, err := m.GetMemberAssignment()
		if err != nil {
			return 0
		}
		for _, parts := range a.Topics {
			if len(parts) > 0 {
				n++
				break
			}
		}
	}
	return n
}

// publishedPartitions reads the accounting topic back with franz-go, up to
// its high watermark, and returns per consumer id the partitions of topic
// it published records for (keys consumer/<id>/<instance>/<topic>/<p>).
func publishedPartitions(t *testing.T, brokers []string, topic string) map[string]map[int32]bool {
	t.Helper()
	out := map[string]map[int32]bool{}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		t.Fatalf("read %s: %v", fleet.DefaultTopic, err)
	}
	hw, err := client.GetOffset(fleet.DefaultTopic, 0, sarama.OffsetNewest)
	client.Close()
	if err != nil || hw == 0 {
		return out // not created yet
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{fleet.DefaultTopic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatalf("read %s: %v", fleet.DefaultTopic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: not at its high watermark %d after 30s", fleet.DefaultTopic, hw)
		}
		fs.EachRecord(func(r *kgo.Record) {
			done = done || r.Offset >= hw-1
			f := strings.Split(string(r.Key), "/")
			if len(f) != 5 || f[0] != "consumer" || f[3] != topic || r.Value == nil {
				return
			}
			p, err := strconv.ParseInt(f[4], 10, 32)
			if err != nil {
				return
			}
			if out[f[1]] == nil {
				out[f[1]] = map[int32]bool{}
			}
			out[f[1]][int32(p)] = true
		})
	}
	return out
}

// foreignLatency is the latency injectForeignLatency publishes for another
// fleet: far above anything a test fleet measures.
const foreignLatency = 30 * time.Minute

// injectForeignLatency publishes, into the accounting topic on brokers, the
// latency record of a consumer of another fleet sharing that topic (another
// test, another team): 1000 arrivals at foreignLatency. Latency records are
// per process, not per topic, so a reconciliation of this fleet must leave
// it out; check with checkNoForeignLatency.
func injectForeignLatency(t *testing.T, brokers []string) {
	t.Helper()
	h := hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3)
	if err := h.RecordValues(int64(foreignLatency/time.Microsecond), 1000); err != nil {
		t.Fatal(err)
	}
	s := h.Export()
	hist := &fleet.Histogram{Lowest: s.LowestTrackableValue, Highest: s.HighestTrackableValue, SigFigs: s.SignificantFigures}
	for i, n := range s.Counts {
		if n != 0 {
			hist.Counts = append(hist.Counts, [2]int64{int64(i), n})
		}
	}
	v, err := json.Marshal(fleet.LatencyRecord{V: 1, Consumer: "other-fleet", Instance: "x", At: time.Now(), Latency: hist})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.Produce(t, brokers, &kgo.Record{Topic: fleet.DefaultTopic, Key: []byte("consumer/other-fleet/x/latency"), Value: v})
}

// checkNoForeignLatency fails the test when the summary's latency shows the
// record injectForeignLatency published.
func checkNoForeignLatency(t *testing.T, got results.Summary) {
	t.Helper()
	if limit := float64(foreignLatency/time.Millisecond) / 2; got.LatencyMs.Max >= limit || got.LatencyMs.P50 <= 0 {
		t.Errorf("latency p50 %.1f ms, max %.1f ms: want measured (> 0) and without another fleet's consumer (%s)",
			got.LatencyMs.P50, got.LatencyMs.Max, foreignLatency)
	}
}
