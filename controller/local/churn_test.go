package local_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/controller/local"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/results"
	"github.com/kmtproject/kmt/internal/seqrange"
	"github.com/kmtproject/kmt/mirror"
)

// churnWorkload is 600 messages/s on one topic of 6 partitions (key k on
// partition k) for 6 seconds: per-key sequence s of key 0 is produced about
// s/100 seconds after the start.
const churnWorkload = "workload: {rate: 600, duration: 6s, loss_grace: 5s, partitions: 6, consumers: %d, replicators: 1}\n"

// churnDrop is the real loss injected during the churn: the mirror drops
// key 0's sequences 250-254 (produced about 2.5s into the run).
var churnDrop = mirror.Faults{Drop: []mirror.Select{mirror.Seqs("kmt-0", 0, 250, 255)}}

// fastSessions makes a killed consumer's partitions move on in 2s.
func fastSessions(c *sarama.Config) {
	c.Consumer.Group.Session.Timeout = 2 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
}

// steadySessions keeps fastSessions' quick heartbeats (rebalances start at
// once) with a session that survives seconds of CPU starvation: a test of
// graceful rebalances that kills nothing must not see a member expire on
// a loaded machine (its uncommitted offsets would be read again).
func steadySessions(c *sarama.Config) {
	c.Consumer.Group.Session.Timeout = 15 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
}

// runTimeline runs sc on a fresh target while timeline acts on it; at is
// the time since the producers started, for the timeline to wait on.
func runTimeline(t *testing.T, sc *scenario.Scenario, timeline func(tg *local.Target, at func(time.Duration)), opts ...local.Option) (*results.Results, *local.Target) {
	t.Helper()
	tg, err := local.New(sc.Workload, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Shutdown)
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(time.Minute)
		for len(tg.ProducerReports()) == 0 || tg.ProducerReports()[0].Sent == 0 {
			if time.Now().After(deadline) {
				t.Error("the producers never started")
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		timeline(tg, func(d time.Duration) { time.Sleep(time.Until(start.Add(d))) })
	}()
	res := runOn(t, tg, sc)
	<-done
	return res, tg
}

// checkTruth reads every destination topic back and checks that the
// summary says exactly what the topics hold: unique messages, duplicates,
// reordered arrivals and missing sequences. It returns the missing
// sequences per stream.
func checkTruth(t *testing.T, tg *local.Target, s results.Summary) map[kafkatest.Stream][]int {
	t.Helper()
	var unique, dups, reordered, lost int
	all := map[kafkatest.Stream][]int{}
	for _, topic := range tg.Topics() {
		tr := kafkatest.ReadTopic(t, tg.DestinationAddrs(), topic, time.Second)
		u, d, r, missing := tr.Counts()
		unique, dups, reordered = unique+u, dups+d, reordered+r
		for st, m := range missing {
			lost += len(m)
			all[st] = m
		}
	}
	if uint64(unique) != s.Received || uint64(dups) != s.Duplicated || uint64(reordered) != s.Reordered || uint64(lost) != s.Lost {
		t.Errorf("destination holds %d unique, %d duplicates, %d reordered, %d missing; summary %d, %d, %d, %d",
			unique, dups, reordered, lost, s.Received, s.Duplicated, s.Reordered, s.Lost)
	}
	return all
}

// atLeastOnce logs where the duplicates of s come from when there are any:
// kmt's mirror is at-least-once, so a group rebalance of the mirror on a
// loaded machine (a missed heartbeat) replays records it had produced but
// not yet committed, and those copies are real. checkTruth has already
// checked that the summary counts exactly the copies the destination holds;
// a source read-back tells the producer's copies from the mirror's.
func atLeastOnce(t *testing.T, tg *local.Target, s results.Summary) {
	t.Helper()
	if s.Duplicated == 0 {
		return
	}
	srcDups := 0
	for _, topic := range tg.Topics() {
		_, d, _, _ := kafkatest.ReadTopic(t, tg.SourceAddrs(), topic, time.Second).Counts()
		srcDups += d
	}
	t.Logf("%d duplicates in the destination, %d of them already in the source: the rest are the mirror's at-least-once replays", s.Duplicated, srcDups)
}

// checkDrop checks that exactly the injected drop is missing.
func checkDrop(t *testing.T, missing map[kafkatest.Stream][]int, s results.Summary) {
	t.Helper()
	if s.Lost != 5 || len(missing) != 1 {
		t.Fatalf("lost %d in %d streams, want the 5 dropped in one: %v", s.Lost, len(missing), missing)
	}
	for st, m := range missing {
		if st.Key != 0 || len(m) != 5 || m[0] != 250 || m[4] != 254 {
			t.Errorf("missing %v: %v, want key 0 sequences 250-254", st, m)
		}
	}
}

func TestConsumerKilledAndRestarted(t *testing.T) {
	t.Parallel()
	sc := workload(t, fmt.Sprintf(churnWorkload, 2))
	var killed, added string
	res, tg := runTimeline(t, sc, func(tg *local.Target, at func(time.Duration)) {
		at(1500 * time.Millisecond)
		var err error
		if killed, err = tg.KillConsumer(0); err != nil {
			t.Error(err)
		}
		at(3 * time.Second)
		if added, err = tg.AddConsumer(); err != nil {
			t.Error(err)
		}
	}, local.MirrorFaults(churnDrop), local.ConsumerTune(fastSessions))
	s := res.Summary
	c := tg.Ledger().Counters()
	t.Logf("killed %s, added %s; summary %+v; re-reads %d", killed, added, s, c.Rereads)
	if killed == "" || added == "" {
		t.Fatal("the churn did not happen")
	}
	// Duplicates are allowed only as the copies the destination holds
	// (checkTruth): the mirror is at-least-once (see atLeastOnce).
	if s.Reordered != 0 || s.Late != 0 || s.NeverAcked != 0 || s.Produced != s.Acked {
		t.Errorf("false anomalies: %+v", s)
	}
	checkDrop(t, checkTruth(t, tg, s), s)
	atLeastOnce(t, tg, s)
	if res.Verdict != results.Fail {
		t.Errorf("verdict %s with 5 messages lost", res.Verdict)
	}
}

func TestConsumersScaledUpAndDown(t *testing.T) {
	t.Parallel()
	sc := workload(t, fmt.Sprintf(churnWorkload, 1))
	var peak int
	res, tg := runTimeline(t, sc, func(tg *local.Target, at func(time.Duration)) {
		at(time.Second)
		if err := tg.ScaleConsumers(3); err != nil {
			t.Error(err)
		}
		peak = len(tg.Consumers())
		at(3500 * time.Millisecond)
		if err := tg.ScaleConsumers(1); err != nil {
			t.Error(err)
		}
	}, local.MirrorFaults(churnDrop), local.ConsumerTune(steadySessions))
	s := res.Summary
	c := tg.Ledger().Counters()
	t.Logf("summary %+v; re-reads %d", s, c.Rereads)
	if peak != 3 {
		t.Fatalf("%d consumers ran at the peak, want 3", peak)
	}
	// Duplicates are allowed only as the copies the destination holds
	// (checkTruth): the mirror is at-least-once (see atLeastOnce).
	if s.Reordered != 0 || s.Late != 0 || s.NeverAcked != 0 || s.Produced != s.Acked {
		t.Errorf("false anomalies: %+v", s)
	}
	if c.Rereads != 0 {
		t.Errorf("%d re-reads after graceful rebalances (offsets are committed on revocation)", c.Rereads)
	}
	checkDrop(t, checkTruth(t, tg, s), s)
	atLeastOnce(t, tg, s)
}

// TestProducerKilledAndRestarted kills the producer abruptly while the
// source stalls its produce requests (so messages are in flight for sure),
// restarts it with a new run id, and checks the old run's unacknowledged
// tail against the topics read back: never acked or unacked-but-delivered,
// never replication loss; the new run is validated from sequence zero.
func TestProducerKilledAndRestarted(t *testing.T) {
	t.Parallel()
	sc := workload(t, "workload: {rate: 600, duration: 5s, loss_grace: 5s, partitions: 6, consumers: 1, replicators: 1}\n")
	res, tg := runTimeline(t, sc, func(tg *local.Target, at func(time.Duration)) {
		at(1500 * time.Millisecond)
		release := stallSource(tg)
		time.AfterFunc(300*time.Millisecond, release) // messages pile up in flight meanwhile
		at(1700 * time.Millisecond)
		if _, err := tg.KillProducer(0); err != nil {
			t.Error(err)
		}
		at(2500 * time.Millisecond)
		if err := tg.RestartProducer(0); err != nil {
			t.Error(err)
		}
	}, local.ConsumerTune(fastSessions))
	s := res.Summary
	reps := tg.ProducerReports()
	if len(reps) != 2 || reps[0].Producer != reps[1].Producer || reps[0].Run == reps[1].Run {
		t.Fatalf("want two runs of one producer, got %d reports", len(reps))
	}
	old, restarted := reps[0], reps[1]
	t.Logf("old run sent %d acked %d failed %d unresolved %d; new run sent %d; summary %+v",
		old.Sent, old.Acked, old.Errors, old.Unresolved, restarted.Sent, s)
	if old.Sent == old.Acked {
		t.Fatal("the kill left no message unacknowledged")
	}
	if old.EndMarkersAcked != 0 {
		t.Errorf("the killed run got %d end markers through", old.EndMarkersAcked)
	}
	// Duplicates only as the destination holds them (checkTruth below).
	if s.Lost != 0 || s.Reordered != 0 || s.Late != 0 {
		t.Errorf("the kill shows as replication anomalies: %+v", s)
	}
	// Ground truth: what the destination holds of each run.
	tr := kafkatest.ReadTopic(t, tg.DestinationAddrs(), "kmt-0", time.Second)
	seen := func(id message.StreamID) seqrange.Set {
		var set seqrange.Set
		for _, a := range tr.Streams[kafkatest.Stream{Topic: id.Topic, Producer: id.Producer, Run: id.Run, Key: int(id.Key)}] {
			set.Add(uint64(a.Seq))
		}
		return set
	}
	var neverAcked, unackedDelivered uint64
	for _, st := range old.Streams {
		d := seen(st.Stream)
		sent := seqrange.Of(seqrange.Range{Lo: 0, Hi: st.Sent})
		if lost := st.Acked.Minus(d); !lost.Empty() {
			t.Errorf("%v: acked but not in the destination: %v", st.Stream, lost)
		}
		notAcked := sent.Minus(st.Acked)
		never := notAcked.Minus(d)
		delivered := d.Minus(st.Acked)
		neverAcked += never.Len()
		unackedDelivered += delivered.Len()
	}
	if s.NeverAcked != neverAcked || s.UnackedDelivered != unackedDelivered {
		t.Errorf("summary never acked %d, unacked delivered %d; the topics say %d and %d", s.NeverAcked, s.UnackedDelivered, neverAcked, unackedDelivered)
	}
	if neverAcked+unackedDelivered != old.Sent-old.Acked {
		t.Errorf("%d never acked + %d unacked delivered, but %d sent and not acked", neverAcked, unackedDelivered, old.Sent-old.Acked)
	}
	for _, st := range restarted.Streams {
		want := seqrange.Of(seqrange.Range{Lo: 0, Hi: st.Sent})
		d := seen(st.Stream)
		if extra := d.Minus(want); d.Len() != want.Len() || !extra.Empty() || !st.EndAcked {
			t.Errorf("new run %v: destination holds %v of 0-%d (end acked %v)", st.Stream, d.Ranges(), st.Sent-1, st.EndAcked)
		}
	}
	if restarted.Sent == 0 || restarted.Acked != restarted.Sent {
		t.Errorf("new run sent %d, acked %d", restarted.Sent, restarted.Acked)
	}
	checkTruth(t, tg, s)
	atLeastOnce(t, tg, s)
}

// stallSource makes the source cluster hold every produce request until
// the returned function is called (at most 10s).
func stallSource(tg *local.Target) (release func()) {
	ch := make(chan struct{})
	var on atomic.Bool
	on.Store(true)
	tg.Source().OnProduce(func(*kmsg.ProduceRequest) (kmsg.Response, error, bool) {
		if on.Load() {
			select {
			case <-ch:
			case <-time.After(10 * time.Second):
			}
		}
		return nil, nil, false
	})
	return func() { on.Store(false); close(ch) }
}

// TestUndrainedConsumerIsNotLoss stops the only consumer mid-run (its
// connections cut, as a consumer stuck in an OFFSET_OUT_OF_RANGE loop
// would be): nothing reads the destination any more although the mirror
// copies every record. The run must report the unread records as not
// drained, with their count, and no loss; its verdict is INCONCLUSIVE,
// not PASS (nothing was verified) and not FAIL (nothing was lost). The
// destination read back by another client holds every acked message.
func TestUndrainedConsumerIsNotLoss(t *testing.T) {
	t.Parallel()
	sc := workload(t, "workload: {rate: 600, duration: 5s, loss_grace: 2s, partitions: 6, consumers: 1, replicators: 1}\n")
	res, tg := runTimeline(t, sc, func(tg *local.Target, at func(time.Duration)) {
		at(2 * time.Second)
		if _, err := tg.KillConsumer(0); err != nil {
			t.Error(err)
		}
	})
	s := res.Summary
	t.Logf("summary %+v", s)
	if s.Lost != 0 {
		t.Errorf("%d messages reported lost; the destination holds them, unread", s.Lost)
	}
	if s.Received >= s.Acked || s.NotDrained == 0 {
		t.Fatalf("received %d of %d acked, not drained %d: the consumer was not stopped early enough", s.Received, s.Acked, s.NotDrained)
	}
	if res.Verdict != results.Inconclusive || len(s.Warnings) == 0 || !strings.Contains(s.Warnings[0], "did not drain") {
		t.Errorf("verdict %s, warnings %q; want INCONCLUSIVE saying the consumers did not drain", res.Verdict, s.Warnings)
	}
	// Ground truth: everything acked is in the destination, and what the
	// consumer did not receive is exactly the unread part.
	var unique, records int
	for _, topic := range tg.Topics() {
		tr := kafkatest.ReadTopic(t, tg.DestinationAddrs(), topic, time.Second)
		u, _, _, missing := tr.Counts()
		if len(missing) != 0 {
			t.Errorf("destination misses %v", missing)
		}
		unique += u
		records += tr.Records
	}
	if uint64(unique) != s.Acked {
		t.Errorf("destination holds %d unique messages, %d acked", unique, s.Acked)
	}
	if s.NotDrained < uint64(unique)-s.Received || s.NotDrained > uint64(records)-s.Received {
		t.Errorf("not drained %d; the destination holds %d records (%d unique), %d received", s.NotDrained, records, unique, s.Received)
	}
}
