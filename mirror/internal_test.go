package mirror

import (
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kmtproject/kmt/internal/message"
)

// markSession records MarkOffset calls; the tracker uses nothing else of a
// session.
type markSession struct {
	sarama.ConsumerGroupSession
	mu    sync.Mutex
	marks []int64
}

func (s *markSession) MarkOffset(_ string, _ int32, offset int64, _ string) {
	s.mu.Lock()
	s.marks = append(s.marks, offset)
	s.mu.Unlock()
}

func (s *markSession) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) == 0 {
		return -1
	}
	return s.marks[len(s.marks)-1]
}

func newTestTracker(safe bool) (*tracker, *markSession) {
	s := &markSession{}
	return &tracker{topic: "t", sess: s, safe: safe, failedCh: make(chan struct{}), notify: make(chan struct{})}, s
}

func TestTrackerMarksOnlyTheAcknowledgedFront(t *testing.T) {
	tr, s := newTestTracker(true)
	tr.add(10, 1)
	tr.add(11, 2) // duplicated: two acks
	tr.add(12, 0) // dropped
	tr.add(13, 1)
	tr.ack(13)
	if s.last() != -1 {
		t.Fatalf("marked %d before offset 10 was acknowledged", s.last())
	}
	tr.ack(10)
	if s.last() != 11 {
		t.Fatalf("front at %d, want 11", s.last())
	}
	tr.ack(11)
	if s.last() != 11 {
		t.Fatalf("front moved to %d with one of two copies acknowledged", s.last())
	}
	tr.ack(11)
	if s.last() != 14 {
		t.Fatalf("front at %d, want 14 (12 dropped, 13 acknowledged)", s.last())
	}
	if n, failed, _ := tr.state(); n != 0 || failed {
		t.Fatalf("state %d pending, failed %v", n, failed)
	}
}

func TestTrackerFailureAndAbandonNeverCommitPast(t *testing.T) {
	tr, s := newTestTracker(true)
	tr.add(0, 1)
	tr.add(1, 1)
	tr.add(2, 1)
	tr.fail(1)
	tr.ack(0)
	tr.ack(2)
	if s.last() != 1 {
		t.Fatalf("front at %d, want 1: a failed record is never committed past", s.last())
	}
	select {
	case <-tr.failedCh:
	default:
		t.Fatal("failure not signalled")
	}

	tr, s = newTestTracker(true)
	tr.add(5, 1)
	tr.add(6, 1)
	tr.abandon(6)
	if n, _, _ := tr.state(); n != 1 {
		t.Fatalf("%d pending, want 1 (the abandoned record is not waited for)", n)
	}
	tr.ack(5)
	if n, _, _ := tr.state(); n != 0 || s.last() != 6 {
		t.Fatalf("pending %d, front %d; want 0 and 6", n, s.last())
	}
}

func TestUnsafeTrackerMarksOnRead(t *testing.T) {
	tr, s := newTestTracker(false)
	tr.add(7, 1)
	if s.last() != 8 {
		t.Fatalf("unsafe mark %d, want 8 on read", s.last())
	}
	tr.fail(7) // lost, as the mode allows; nothing stops
	if n, failed, _ := tr.state(); n != 0 || failed {
		t.Fatalf("pending %d failed %v after an unsafe failure", n, failed)
	}
}

func msg(topic string, p int32, off int64, key uint32, seq uint64, body bool) *sarama.ConsumerMessage {
	m := &sarama.ConsumerMessage{Topic: topic, Partition: p, Offset: off, Key: message.AppendKey(nil, key)}
	if body {
		m.Value = message.AppendBody(nil, "prod", "run", seq, 1, 40, make([]byte, 40))
	} else {
		hs := message.NewHeaders("prod", "run", seq, 1, false)
		for i := range hs {
			m.Headers = append(m.Headers, &hs[i])
		}
		m.Value = []byte("x")
	}
	return m
}

func TestInjectorDecides(t *testing.T) {
	in := newInjector(Faults{
		Drop:      []Select{Offsets("t", 0, 5, 7), Seqs("t", 3, 100, 101)},
		Duplicate: []Select{Offsets("t", 0, 6, 9)},
		Swap:      []Select{{Topic: "t", By: BySeq, Key: 4, Producer: "other", From: 0, To: 10}},
		Func: func(m *sarama.ConsumerMessage) Fault {
			if m.Partition == 9 {
				return Duplicate
			}
			return NoFault
		},
	})
	for _, tc := range []struct {
		m     *sarama.ConsumerMessage
		fault Fault
	}{
		{msg("t", 0, 4, 0, 4, false), NoFault},
		{msg("t", 0, 5, 0, 5, false), Drop},
		{msg("t", 0, 6, 0, 6, false), Drop}, // Drop wins over Duplicate
		{msg("t", 0, 7, 0, 7, false), Duplicate},
		{msg("u", 0, 7, 0, 7, false), NoFault},                                                    // other topic
		{msg("t", 1, 50, 3, 100, true), Drop},                                                     // by sequence, in-body encoding
		{msg("t", 1, 51, 3, 101, false), NoFault},                                                 // next sequence
		{msg("t", 2, 0, 4, 1, false), NoFault},                                                    // producer "prod" is not "other"
		{msg("t", 9, 0, 1, 1, false), Duplicate},                                                  // Func
		{&sarama.ConsumerMessage{Topic: "t", Partition: 1, Offset: 3, Key: []byte("x")}, NoFault}, // foreign
	} {
		if d := in.decide(tc.m); d.fault != tc.fault {
			t.Errorf("%s/%d@%d: fault %s, want %s", tc.m.Topic, tc.m.Partition, tc.m.Offset, d.fault, tc.fault)
		}
	}
	m := msg("t", 0, 7, 0, 7, false)
	if !in.decide(m).first || !in.count(m, Duplicate) {
		t.Fatal("first duplicate not counted")
	}
	if in.decide(m).first || in.count(m, Duplicate) {
		t.Fatal("a record re-read was counted twice")
	}
	if n := in.injected(Duplicate); n != 1 {
		t.Fatalf("%d duplicates counted, want 1", n)
	}
	h := &held{msg: msg("t", 2, 10, 4, 1, false), bySeq: true, pos: streamPos{producer: "prod", run: "run", key: 4, seq: 1}}
	if isPartner(h, msg("t", 2, 11, 5, 1, false)) || isPartner(h, msg("t", 2, 11, 4, 3, false)) || !isPartner(h, msg("t", 2, 12, 4, 2, false)) {
		t.Fatal("BySeq partner is the next sequence of the same stream only")
	}
}

func TestGate(t *testing.T) {
	g := gate{zero: make(chan struct{})}
	if !g.enter() {
		t.Fatal("open gate refused")
	}
	ch := g.shut()
	if g.enter() {
		t.Fatal("shut gate admitted")
	}
	select {
	case <-ch:
		t.Fatal("zero before the last exit")
	default:
	}
	g.exit()
	<-ch
}

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.messages.WithLabelValues("t").Inc()
	m.errors.WithLabelValues("t").Inc()
	m.lag.WithLabelValues("t").Set(1)
	m.injected.WithLabelValues("drop").Inc()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if again := NewMetrics(reg); again.messages != m.messages {
		t.Error("registering twice did not reuse the registered collectors")
	}
}
