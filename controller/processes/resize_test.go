package processes_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/processes"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/results"
)

// growWorkload is how long the grow-source-cluster workload runs here.
const growWorkload = 30 * time.Second

// TestResizeReassignsOntoNewBrokers runs scenarios/grow-source-cluster.yaml
// on the processes target: two real 3-broker clusters (RF 3,
// min.insync.replicas 2), kmt's reference mirror between them (MirrorMaker
// 2's start would double the test's cost and the resize is the source's
// business; the library test runs the scenario with MirrorMaker 2 on
// demand), the source grown to 4 brokers under load.
//
// It checks, independently of kmt's code:
//   - the scenario's assertions (lost 0, reordered 0, throughput recovers;
//     a recovery later than its scaled window is logged, see checkVerdict)
//     and its declared verdict;
//   - the source's metadata read with franz-go's kmsg: 4 brokers; every
//     partition of the workload has exactly RF replicas, its ISR is all of
//     them, the new broker holds its share of the replicas and leads its
//     share of the partitions (the preferred leaders were elected);
//   - the counts against the destination read back by kcat: unique,
//     duplicated and reordered messages are those of the summary, and what
//     the destination misses is exactly lost + never acknowledged;
//   - then, without traffic: shrinking back to 3 stops the new broker, and
//     growing to 4 again restarts that broker on its log dir (no fifth id)
//     and gives it its replicas and leaderships back.
//
// Without a Kafka distribution, Java or kcat it is skipped, except under
// CI=true, where it fails.
func TestResizeReassignsOntoNewBrokers(t *testing.T) {
	home := kafkatest.KafkaHome(t)
	kafkatest.Kcat(t) // before any JVM starts: without kcat the test skips (fails under CI=true)
	sc, err := scenario.Load("../../scenarios/grow-source-cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Scale(float64(growWorkload) / float64(sc.Workload.Duration.D()))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	begin := time.Now()
	tg, err := processes.New(ctx, sc.Workload, processes.Config{Home: home, Dir: t.TempDir(), Replicator: processes.KMT})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Shutdown)
	t.Logf("clusters ready in %s", time.Since(begin).Round(time.Second))
	res, err := (&controller.Runner{Target: tg, Scenario: sc}).Run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	s := res.Summary
	t.Logf("summary %+v", s)
	checkVerdict(t, sc, res)
	if s.Lost != 0 || s.Reordered != 0 || s.Received == 0 {
		t.Errorf("lost %d, reordered %d, received %d: want 0, 0, > 0", s.Lost, s.Reordered, s.Received)
	}

	rf := tg.Source().ReplicationFactor()
	adm := metadataClient(t, tg.SourceAddrs())
	want := []int32{0, 1, 2, 3}
	checkPlacement(t, adm, tg.Topics(), want, rf, "after growing to 4")

	var unique, dups, reordered, missing int
	for _, topic := range tg.DestinationTopics() {
		tr := kafkatest.ReadTopicKcat(t, tg.DestinationAddrs(), topic)
		u, d, r, m := tr.Counts()
		unique, dups, reordered = unique+u, dups+d, reordered+r
		for _, seqs := range m {
			missing += len(seqs)
		}
		if tr.Foreign != 0 {
			t.Errorf("%s holds %d foreign records", topic, tr.Foreign)
		}
	}
	t.Logf("destination read back by kcat: %d unique, %d duplicates, %d reordered, %d missing", unique, dups, reordered, missing)
	if uint64(unique) != s.Received || uint64(dups) != s.Duplicated || uint64(reordered) != s.Reordered {
		t.Errorf("kcat read back %d unique, %d duplicates, %d reordered; summary %d received, %d duplicated, %d reordered",
			unique, dups, reordered, s.Received, s.Duplicated, s.Reordered)
	}
	if uint64(missing) != s.Lost+s.NeverAcked {
		t.Errorf("kcat read back misses %d messages; summary lost %d + never acked %d", missing, s.Lost, s.NeverAcked)
	}

	// Nothing acknowledged is missing from the source either; its
	// duplicates (producer retries across the leader moves) say where the
	// destination's come from.
	var srcDups, srcMissing int
	for _, topic := range tg.Topics() {
		_, d, _, m := kafkatest.ReadTopicKcat(t, tg.SourceAddrs(), topic).Counts()
		srcDups += d
		for _, seqs := range m {
			srcMissing += len(seqs)
		}
	}
	t.Logf("source read back by kcat: %d duplicates, %d missing", srcDups, srcMissing)
	if uint64(srcMissing) > s.NeverAcked {
		t.Errorf("the source misses %d messages, %d were never acknowledged", srcMissing, s.NeverAcked)
	}

	// A broker a resize stopped comes back before a new one is added.
	step := time.Now()
	if err := tg.ResizeCluster(ctx, controller.Source, 3); err != nil {
		t.Fatalf("shrink to 3: %v", err)
	}
	if got := tg.Source().Running(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("after shrinking to 3 brokers %v run, want [0 1 2]", got)
	}
	if err := tg.ResizeCluster(ctx, controller.Source, 4); err != nil {
		t.Fatalf("grow to 4 again: %v", err)
	}
	if got, all := tg.Source().Running(), tg.Source().Brokers(); !slices.Equal(got, []int{0, 1, 2, 3}) || !slices.Equal(all, []int{0, 1, 2, 3}) {
		t.Errorf("after growing back to 4: brokers %v, running %v; want broker 3 restarted, no new id", all, got)
	}
	t.Logf("shrink to 3 and grow back to 4: %s", time.Since(step).Round(100*time.Millisecond))
	checkPlacement(t, adm, tg.Topics(), want, rf, "after shrinking to 3 and growing back to 4")
	t.Logf("the test took %s", time.Since(begin).Round(time.Second))
}

// checkVerdict requires every assertion of the scenario to pass, except
// that a throughput recovery may take longer than its window: scaled to a
// 30 s workload, the file's "within 1m" is 10 s, which a loaded 2-core
// machine can overrun (a recovery time is a performance figure, logged
// here and recorded in docs/real-kafka.md, not a timed test); it must
// still recover. The verdict must be the declared one, or what those late
// recoveries (FAIL) or a saturated test machine (INCONCLUSIVE, as the
// local library test allows) explain.
func checkVerdict(t *testing.T, sc *scenario.Scenario, res *results.Results) {
	t.Helper()
	late := 0
	check := func(where string, as []results.Assertion) {
		for _, a := range as {
			t.Logf("%s: %s measured %s pass %v", where, a.Expr, a.Measured, a.Pass)
			switch {
			case a.Pass:
			case strings.HasPrefix(a.Expr, "recovers:") && !a.NoData:
				late++
				t.Logf("%s: %q measured %s: later than its scaled window on this machine", where, a.Expr, a.Measured)
			default:
				t.Errorf("%s: %s failed: measured %s", where, a.Expr, a.Measured)
			}
		}
	}
	for _, st := range res.Steps {
		where := fmt.Sprintf("step %d %s", st.Index, st.Description)
		if st.Error != "" {
			t.Errorf("%s: %s", where, st.Error)
		}
		check(where, st.Assertions)
		for _, r := range st.Recoveries {
			if !r.Recovered {
				t.Errorf("%s: %s never recovered", where, r.Metric)
			}
		}
	}
	check("run", res.Expect)
	w := res.Summary.Warnings
	switch {
	case res.Verdict == sc.Verdict:
	case sc.Verdict == results.Pass && res.Verdict == results.Fail && late > 0:
	case sc.Verdict == results.Pass && res.Verdict == results.Inconclusive && res.Summary.NotDrained == 0 &&
		len(w) > 0 && strings.HasPrefix(w[0], "the test rig saturated"):
		t.Logf("INCONCLUSIVE on this machine: %q", w)
	default:
		t.Errorf("verdict %s, the file declares %s (warnings %q)", res.Verdict, sc.Verdict, w)
	}
}

// metadataClient returns a franz-go client on brokers for metadata
// requests, closed when the test ends.
func metadataClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// checkPlacement checks the metadata of topics: the cluster lists exactly
// brokers; every partition has rf replicas, all on brokers, all in sync;
// every broker holds its share of the replicas and leads its share of the
// partitions (floor or ceiling of the even split). The ISR may still be
// catching up when the resize returns, so it is polled for up to a minute.
func checkPlacement(t *testing.T, cl *kgo.Client, topics []string, brokers []int32, rf int, when string) {
	t.Helper()
	var last error
	deadline := time.Now().Add(time.Minute)
	for {
		last = placement(cl, topics, brokers, rf)
		if last == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if last != nil {
		t.Errorf("%s: %v", when, last)
	}
}

// placement returns what is wrong with the placement of topics, or nil;
// it logs nothing, the caller polls it.
func placement(cl *kgo.Client, topics []string, brokers []int32, rf int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	var listed []int32
	for _, b := range resp.Brokers {
		listed = append(listed, b.NodeID)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, brokers) {
		return fmt.Errorf("metadata lists brokers %v, want %v", listed, brokers)
	}
	replicas, leads := map[int32]int{}, map[int32]int{}
	parts := 0
	for _, tp := range resp.Topics {
		if tp.ErrorCode != 0 {
			return fmt.Errorf("topic %s: error code %d", *tp.Topic, tp.ErrorCode)
		}
		for _, p := range tp.Partitions {
			parts++
			rs, isr := slices.Sorted(slices.Values(p.Replicas)), slices.Sorted(slices.Values(p.ISR))
			if len(rs) != rf || len(slices.Compact(slices.Clone(rs))) != rf {
				return fmt.Errorf("%s/%d has replicas %v, want %d distinct", *tp.Topic, p.Partition, p.Replicas, rf)
			}
			if !slices.Equal(rs, isr) {
				return fmt.Errorf("%s/%d has ISR %v, replicas %v", *tp.Topic, p.Partition, p.ISR, p.Replicas)
			}
			for _, r := range rs {
				if !slices.Contains(brokers, r) {
					return fmt.Errorf("%s/%d has a replica on broker %d, not one of %v", *tp.Topic, p.Partition, r, brokers)
				}
				replicas[r]++
			}
			leads[p.Leader]++
		}
	}
	n := len(brokers)
	for _, b := range brokers {
		if lo, hi := parts*rf/n, (parts*rf+n-1)/n; replicas[b] < lo || replicas[b] > hi {
			return fmt.Errorf("broker %d holds %d replicas, want %d..%d (replicas per broker %v, leaders per broker %v)", b, replicas[b], lo, hi, replicas, leads)
		}
		if lo, hi := parts/n, (parts+n-1)/n; leads[b] < lo || leads[b] > hi {
			return fmt.Errorf("broker %d leads %d partitions, want %d..%d (replicas per broker %v, leaders per broker %v)", b, leads[b], lo, hi, replicas, leads)
		}
	}
	return nil
}
