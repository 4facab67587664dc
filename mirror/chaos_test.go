package mirror_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kmtproject/kmt/internal/wan"
	"github.com/kmtproject/kmt/mirror"
)

// TestAbruptKill kills the mirror while the destination is unreachable and
// records are in flight, then lets a new worker resume. The unsafe mirror
// had committed what it read, so it loses exactly the records in flight;
// the safe mirror loses none.
func TestAbruptKill(t *testing.T) {
	for _, mode := range []mirror.Mode{mirror.UnsafeCommitBeforeAck, mirror.Safe} {
		t.Run(mode.String(), func(t *testing.T) {
			src := startCluster(t, "source", 1)
			dst := startCluster(t, "destination", 1)
			topic := topicName(t)
			createTopic(t, src, topic, 2)
			pr := newProducer(t, src, topic, 2, 2)
			sent := pr.send(100)

			// The destination is reached through a link the test can cut.
			link := wan.New(wan.Name("to-destination"), wan.DialTimeout(200*time.Millisecond))
			t.Cleanup(func() { link.Close() })
			dconn := conn(dst)
			dconn.Dialer = link
			m, err := mirror.New(conn(src), dconn, mirror.Config{
				Topics: []string{topic}, Mode: mode, SessionTimeout: testSession, CommitInterval: 100 * time.Millisecond,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runMirror(t, m)
			// At least once: a rebalance before a commit may copy a record
			// twice, so the destination holds at least the 100.
			waitFor(t, 60*time.Second, "first 100 records mirrored and committed", func() bool {
				return committed(t, src, "kmt-mirror", topic, 2) == 100 && count(t, dst, topic) >= 100
			})

			if err := link.Set(wan.Conditions{Cut: true}); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, pr.send(200)...)
			waitFor(t, 30*time.Second, "the mirror to read the next 200", func() bool { return m.Counters().Read >= 300 })
			if mode == mirror.UnsafeCommitBeforeAck {
				waitFor(t, 10*time.Second, "the unsafe mirror to commit what it read", func() bool {
					return committed(t, src, "kmt-mirror", topic, 2) == 300
				})
			} else {
				time.Sleep(300 * time.Millisecond) // a few commit intervals
				if n := committed(t, src, "kmt-mirror", topic, 2); n != 100 {
					t.Fatalf("safe mirror committed %d with the destination cut, want 100", n)
				}
			}
			if n := m.Kill(); n != 1 {
				t.Fatalf("Kill killed %d workers, want 1", n)
			}
			if m.Workers() != 0 {
				t.Fatalf("%d workers after Kill", m.Workers())
			}
			link.Heal()
			if err := m.Scale(1); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "the new worker to catch up", func() bool {
				c := m.Counters()
				return committed(t, src, "kmt-mirror", topic, 2) == 300 && c.Lag == 0 && c.Workers == 1
			})
			time.Sleep(200 * time.Millisecond) // nothing more is in flight once committed; settle reads
			tl := compare(t, sent, readAll(t, dst, topic))
			t.Logf("%s: lost %d duplicated %d reordered %d", mode, tl.lost, tl.duplicated, tl.reordered)
			switch mode {
			case mirror.UnsafeCommitBeforeAck:
				// Nothing crossed the cut, and the kill dropped all of it.
				if tl.lost != 200 {
					t.Fatalf("unsafe mirror lost %d records, want the 200 in flight", tl.lost)
				}
			case mirror.Safe:
				if tl.lost != 0 {
					t.Fatalf("safe mirror lost %d records", tl.lost)
				}
			}
		})
	}
}

// TestAbruptKillWhileFlowing kills the mirror mid-stream while records
// flow through a slow destination link, as the abrupt-kill scenario does:
// the unsafe mirror loses what was in flight, the safe one loses nothing
// (and usually duplicates what was acknowledged but not yet committed).
func TestAbruptKillWhileFlowing(t *testing.T) {
	for _, mode := range []mirror.Mode{mirror.UnsafeCommitBeforeAck, mirror.Safe} {
		t.Run(mode.String(), func(t *testing.T) {
			src := startCluster(t, "source", 1)
			dst := startCluster(t, "destination", 1)
			topic := topicName(t)
			createTopic(t, src, topic, 3)
			pr := newProducer(t, src, topic, 3, 3)
			link := wan.New(wan.Name("to-destination"))
			t.Cleanup(func() { link.Close() })
			if err := link.Set(wan.Conditions{Latency: 30 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			dconn := conn(dst)
			dconn.Dialer = link
			m, err := mirror.New(conn(src), dconn, mirror.Config{
				Topics: []string{topic}, Mode: mode, SessionTimeout: testSession, CommitInterval: 100 * time.Millisecond,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			runMirror(t, m)
			fl := startFlow(pr, 15, 10*time.Millisecond) // about 1500 records/s
			waitFor(t, 60*time.Second, "replication under way", func() bool {
				return m.Counters().Replicated >= 150 && committed(t, src, "kmt-mirror", topic, 3) > 0
			})
			m.Kill()
			if err := m.Scale(1); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			sent := fl.Stop()
			total := int64(len(sent))
			waitFor(t, 60*time.Second, "the mirror to catch up", func() bool {
				return committed(t, src, "kmt-mirror", topic, 3) == total && m.Counters().Lag == 0
			})
			tl := compare(t, sent, readAll(t, dst, topic))
			t.Logf("%s: %d sent, lost %d duplicated %d reordered %d", mode, total, tl.lost, tl.duplicated, tl.reordered)
			if mode == mirror.UnsafeCommitBeforeAck && tl.lost == 0 {
				t.Fatal("the unsafe mirror lost nothing although it was killed with records in flight")
			}
			if mode == mirror.Safe && tl.lost != 0 {
				t.Fatalf("the safe mirror lost %d records", tl.lost)
			}
		})
	}
}

// TestScaleUpAndDownLosesNothing scales 1→3→1 while records flow.
func TestScaleUpAndDownLosesNothing(t *testing.T) {
	src := startCluster(t, "source", 3)
	dst := startCluster(t, "destination", 3)
	topic := topicName(t)
	createTopic(t, src, topic, 6)
	pr := newProducer(t, src, topic, 12, 6)
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{
		Topics: []string{topic}, SessionTimeout: testSession, CommitInterval: 100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMirror(t, m)
	fl := startFlow(pr, 20, 20*time.Millisecond)
	waitFor(t, 30*time.Second, "replication under way", func() bool { return m.Counters().Replicated > 200 })
	if err := m.Scale(3); err != nil {
		t.Fatal(err)
	}
	if m.Workers() != 3 {
		t.Fatalf("%d workers after Scale(3)", m.Workers())
	}
	at := fl.Count()
	waitFor(t, 30*time.Second, "progress with 3 workers", func() bool { return fl.Count() > at+300 && m.Counters().Lag < 100 })
	if err := m.Scale(1); err != nil {
		t.Fatal(err)
	}
	at = fl.Count()
	waitFor(t, 30*time.Second, "progress with 1 worker", func() bool { return fl.Count() > at+300 })
	sent := fl.Stop()
	total := int64(len(sent))
	waitFor(t, 60*time.Second, "the mirror to catch up", func() bool {
		return committed(t, src, "kmt-mirror", topic, 6) == total
	})
	tl := compare(t, sent, readAll(t, dst, topic))
	t.Logf("%d records sent; lost %d duplicated %d reordered %d", total, tl.lost, tl.duplicated, tl.reordered)
	if tl.lost != 0 {
		t.Fatalf("scaling lost %d records", tl.lost)
	}
}

// TestCutWANLinkStopsAndHealResumes mirrors through a WAN link to the
// source: a cut stops all progress, a heal resumes it with nothing lost.
func TestCutWANLinkStopsAndHealResumes(t *testing.T) {
	src := startCluster(t, "source", 3)
	dst := startCluster(t, "destination", 1)
	topic := topicName(t)
	createTopic(t, src, topic, 3)
	pr := newProducer(t, src, topic, 3, 3)
	sent := pr.send(150)

	link := wan.New(wan.Name("wan"), wan.DialTimeout(500*time.Millisecond))
	t.Cleanup(func() { link.Close() })
	sconn := conn(src)
	sconn.Dialer = link
	if err := link.Set(wan.Conditions{Latency: 5 * time.Millisecond, Jitter: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	m, err := mirror.New(sconn, conn(dst), mirror.Config{
		// The cut outlasts the session: the group evicts the worker meanwhile.
		Topics: []string{topic}, SessionTimeout: testSession, CommitInterval: 100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runMirror(t, m)
	waitFor(t, 60*time.Second, "first records mirrored and committed", func() bool {
		return committed(t, src, "kmt-mirror", topic, 3) == 150 && count(t, dst, topic) >= 150
	})
	if st := link.Stats(); st.BytesDown == 0 || st.Dials == 0 {
		t.Fatalf("the mirror's source traffic did not cross the link: %+v", st)
	}

	if err := link.Set(wan.Conditions{Cut: true}); err != nil {
		t.Fatal(err)
	}
	before := link.Stats()
	replicated := m.Counters().Replicated
	atCut := count(t, dst, topic)
	sent = append(sent, pr.send(150)...)
	time.Sleep(cutFor)
	if n := count(t, dst, topic); n != atCut {
		t.Fatalf("%d records reached the destination across a cut link, want %d", n, atCut)
	}
	if c := m.Counters(); c.Replicated != replicated {
		t.Fatalf("replicated moved from %d to %d during the cut", replicated, c.Replicated)
	}
	if st := link.Stats(); st.BytesUp != before.BytesUp || st.BytesDown != before.BytesDown {
		t.Fatalf("bytes crossed the cut: before %+v after %+v", before, st)
	}

	link.Heal()
	waitFor(t, 60*time.Second, "the mirror to resume after the heal", func() bool {
		return committed(t, src, "kmt-mirror", topic, 3) == 300
	})
	stop()
	tl := compare(t, sent, readAll(t, dst, topic))
	t.Logf("lost %d duplicated %d reordered %d; link %+v", tl.lost, tl.duplicated, tl.reordered, link.Stats())
	link.Close()
	noGoroutinesIn(t, "kmt/mirror.", "kmt/internal/wan.")
	if tl.lost != 0 {
		t.Fatalf("lost %d records across a healed cut", tl.lost)
	}
}

// TestRegexPicksUpNewTopicsAndPartitions mirrors by regular expression: a
// topic created later is mirrored, and a source topic that grows gets its
// destination grown, with every record in the partition it was written to.
func TestRegexPicksUpNewTopicsAndPartitions(t *testing.T) {
	src := startCluster(t, "source", 1)
	dst := startCluster(t, "destination", 1)
	a := topicName(t) + "-a"
	b := topicName(t) + "-b"
	createTopic(t, src, a, 2)
	createTopic(t, src, "other-topic", 1)
	sentA := newProducer(t, src, a, 2, 2).send(50)
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{
		TopicRegex: "kmt-.*", SessionTimeout: 6 * time.Second, CommitInterval: 100 * time.Millisecond,
		RefreshInterval: 200 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMirror(t, m)
	waitFor(t, 60*time.Second, "topic a mirrored", func() bool { return count(t, dst, a) >= 50 })

	createTopic(t, src, b, 3)
	sentB := newProducer(t, src, b, 3, 3).send(60)
	if err := admin(t, src).CreatePartitions(a, 4, nil, false); err != nil {
		t.Fatal(err)
	}
	prA := newProducer(t, src, a, 4, 4)
	prA.n = 1000 // new sequences, all four keys
	sentA = append(sentA, prA.send(80)...)
	waitFor(t, 60*time.Second, "new topic and partitions mirrored and committed", func() bool {
		return committed(t, src, "kmt-mirror", a, 4) == 130 && committed(t, src, "kmt-mirror", b, 3) == 60
	})
	gotA := readAll(t, dst, a)
	if len(gotA) != 4 {
		t.Fatalf("destination %s has records in %d partitions, want 4", a, len(gotA))
	}
	for p, rs := range gotA {
		for _, r := range rs {
			if r.Partition != p {
				t.Fatalf("record for partition %d in partition %d", r.Partition, p)
			}
		}
	}
	if tl := compare(t, sentA, gotA); tl.lost != 0 || tl.duplicated != 0 {
		t.Fatalf("topic a: %+v", tl)
	}
	if tl := compare(t, sentB, readAll(t, dst, b)); tl.lost != 0 || tl.duplicated != 0 {
		t.Fatalf("topic b: %+v", tl)
	}
	if n := count(t, dst, "other-topic"); n != 0 {
		t.Fatalf("a topic outside the regex was mirrored (%d records)", n)
	}
}

func TestTrimConsumedDeletesUpToTheCommit(t *testing.T) {
	src := startCluster(t, "source", 1)
	dst := startCluster(t, "destination", 1)
	topic := topicName(t)
	createTopic(t, src, topic, 2)
	newProducer(t, src, topic, 2, 2).send(100)
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{Topics: []string{topic}, SessionTimeout: testSession,
		CommitInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runMirror(t, m)
	waitFor(t, 60*time.Second, "mirrored and committed", func() bool { return committed(t, src, "kmt-mirror", topic, 2) == 100 })
	stop()
	n, err := mirror.TrimConsumed(context.Background(), conn(src), "kmt-mirror", []string{topic})
	if err != nil {
		t.Fatal(err)
	}
	// The last record of each partition stays (see TestTrimKeepsPartitionReadable).
	if n != 98 {
		t.Fatalf("trimmed %d records, want 98", n)
	}
	if c := count(t, src, topic); c != 2 {
		t.Fatalf("%d records left in the source, want 2", c)
	}
	cfg, _ := conn(src).Sarama()
	client, err := sarama.NewClient(src.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for p := int32(0); p < 2; p++ {
		if low, err := client.GetOffset(topic, p, sarama.OffsetOldest); err != nil || low != 49 {
			t.Fatalf("partition %d starts at %d (%v), want 49", p, low, err)
		}
	}
	if n, err := mirror.TrimConsumed(context.Background(), conn(src), "kmt-mirror", []string{topic}); err != nil || n != 0 {
		t.Fatalf("second trim: %d, %v; want 0, nil", n, err)
	}
}

// TestTrimKeepsPartitionReadable reproduces the false loss of an overloaded
// local run: the trimmer emptied a destination partition up to the
// consumers' commit, the embedded cluster then answered the consumer's
// next fetch (at the partition's end) with OFFSET_OUT_OF_RANGE, and the
// consumer's session restarted over and over without draining. Trimming
// must leave the partition readable at the committed offset: a reader
// there gets the next record, not an error. A limit below the commit (what
// a consumer really accounted) bounds the trim further.
func TestTrimKeepsPartitionReadable(t *testing.T) {
	cl := startCluster(t, "destination", 1)
	topic := topicName(t)
	createTopic(t, cl, topic, 1)
	newProducer(t, cl, topic, 1, 1).send(20)
	cfg, _ := conn(cl).Sarama()
	cfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient(cl.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	// The readers accounted and committed everything: a simple commit of
	// offset 20 for group "readers".
	kc, err := kgo.NewClient(kgo.SeedBrokers(cl.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "readers", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), kc)
	kc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("commit: error code %d", code)
	}
	tr, err := mirror.NewTrimmer(context.Background(), conn(cl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	// What the reader really accounted is below its commit: trim only below that.
	if n, err := tr.TrimBelow(context.Background(), "readers", []string{topic}, func(string, int32) (int64, bool) { return 12, true }); err != nil || n != 12 {
		t.Fatalf("trim below 12: %d, %v", n, err)
	}
	if n, err := tr.TrimBelow(context.Background(), "readers", []string{topic}, func(string, int32) (int64, bool) { return 0, false }); err != nil || n != 0 {
		t.Fatalf("trim with no accounted offset: %d, %v", n, err)
	}
	if n, err := tr.Trim(context.Background(), "readers", []string{topic}); err != nil || n != 7 {
		t.Fatalf("trim up to the commit: %d, %v; want 7 (the last record stays)", n, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { consumer.Close() })
	pc, err := consumer.ConsumePartition(topic, 0, 20)
	if err != nil {
		t.Fatalf("consume at the committed offset: %v", err)
	}
	t.Cleanup(func() { pc.Close() })
	// Let the reader fetch at the end of the trimmed partition before
	// anything new arrives (that fetch is what failed).
	select {
	case err := <-pc.Errors():
		t.Fatalf("reading at the committed offset after the trim: %v", err)
	case <-time.After(time.Second):
	}
	newProducer(t, cl, topic, 1, 1).send(1)
	select {
	case m := <-pc.Messages():
		if m.Offset != 20 {
			t.Fatalf("got offset %d, want 20", m.Offset)
		}
	case err := <-pc.Errors():
		t.Fatalf("reading at the committed offset after the trim: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no record within 30s")
	}
}

// TestBrokerKillsLoseNothing kills a source broker and a destination broker
// while records flow: leadership moves, clients reconnect, the safe mirror
// loses nothing.
func TestBrokerKillsLoseNothing(t *testing.T) {
	src := startCluster(t, "source", 3)
	dst := startCluster(t, "destination", 3)
	topic := topicName(t)
	createTopic(t, src, topic, 6)
	pr := newProducer(t, src, topic, 6, 6)
	m, err := mirror.New(conn(src), conn(dst), mirror.Config{
		Topics: []string{topic}, Workers: 2, SessionTimeout: 6 * time.Second, CommitInterval: 100 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	runMirror(t, m)
	var sent []record
	step := func(batches int) {
		for i := 0; i < batches; i++ {
			sent = append(sent, pr.send(20)...)
			time.Sleep(10 * time.Millisecond)
		}
	}
	step(20)
	waitFor(t, 60*time.Second, "replication under way", func() bool { return m.Counters().Replicated > 0 })
	// kfake (this version) has a data race between a change of its broker
	// set and a group join it is handling, which a source broker kill
	// causes; under the race detector only destination brokers are killed
	// (the mirror has no group there). kfake's controller is its last
	// broker and does not move, so broker 2 is spared: its death would stop
	// topic creation.
	if !raceEnabled {
		if err := src.KillBroker(1); err != nil {
			t.Fatal(err)
		}
	}
	step(20)
	if err := dst.KillBroker(0); err != nil {
		t.Fatal(err)
	}
	step(20)
	if err := dst.RestartBroker(0); err != nil {
		t.Fatal(err)
	}
	if !raceEnabled {
		if err := src.RestartBroker(1); err != nil {
			t.Fatal(err)
		}
	}
	step(20)
	total := int64(len(sent))
	waitFor(t, 60*time.Second, "the mirror to catch up", func() bool {
		return committed(t, src, "kmt-mirror", topic, 6) == total
	})
	tl := compare(t, sent, readAll(t, dst, topic))
	t.Logf("%d sent; lost %d duplicated %d reordered %d; counters %+v", total, tl.lost, tl.duplicated, tl.reordered, m.Counters())
	if tl.lost != 0 {
		t.Fatalf("lost %d records across broker kills", tl.lost)
	}
}
