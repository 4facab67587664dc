package mirror

import (
	"sync"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// tracker follows one claimed partition: which records read are still
// waiting for the destination, and the acknowledged front (the next offset
// not yet acknowledged) that a safe mirror marks for commit.
type tracker struct {
	topic     string
	partition int32
	sess      sarama.ConsumerGroupSession
	claim     sarama.ConsumerGroupClaim
	safe      bool
	msgs      prometheus.Counter
	errs      prometheus.Counter

	mu       sync.Mutex
	q        []entry
	waiting  int   // entries with need > 0, not blocked
	front    int64 // next offset not yet acknowledged
	failed   bool
	failedCh chan struct{}
	notify   chan struct{} // closed and replaced when nothing waits any more or on failure
	watched  bool          // someone waits on notify (drain)
}

// entry is a read record awaiting need more acknowledgements.
type entry struct {
	offset int64
	need   int
	// blocked: the record was never handed to the producer (the session
	// ended first); the front never passes it and nothing waits for it.
	blocked bool
}

// ticket rides along a produced record (ProducerMessage.Metadata).
type ticket struct {
	tr     *tracker
	offset int64
}

func newTracker(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, safe bool, met *Metrics) *tracker {
	return &tracker{
		topic:     claim.Topic(),
		partition: claim.Partition(),
		sess:      sess,
		claim:     claim,
		safe:      safe,
		msgs:      met.messages.WithLabelValues(claim.Topic()),
		errs:      met.errors.WithLabelValues(claim.Topic()),
		front:     claim.InitialOffset(),
		failedCh:  make(chan struct{}),
		notify:    make(chan struct{}),
	}
}

// add records that offset was read and needs need acknowledgements (0 for a
// dropped record). An unsafe mirror marks it at once.
func (t *tracker) add(offset int64, need int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.q = append(t.q, entry{offset: offset, need: need})
	if need > 0 {
		t.waiting++
	}
	if !t.safe {
		t.sess.MarkOffset(t.topic, t.partition, offset+1, "")
	}
	t.advanceLocked()
}

// ack records one acknowledgement of offset.
func (t *tracker) ack(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.q {
		if e := &t.q[i]; e.offset == offset && e.need > 0 {
			e.need--
			if e.need == 0 && !e.blocked {
				t.waiting--
			}
			break
		}
	}
	t.advanceLocked()
}

// fail records that offset could not be produced. A safe mirror never
// commits past it: the partition stops and the session restarts from the
// last commit. An unsafe mirror has already committed it; the record is
// lost, as that mode allows.
func (t *tracker) fail(offset int64) {
	if !t.safe {
		t.ack(offset)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.failed {
		t.failed = true
		close(t.failedCh)
		t.wakeLocked()
	}
}

// abandon records that offset will not be produced in this session.
func (t *tracker) abandon(offset int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.q {
		if e := &t.q[i]; e.offset == offset && !e.blocked {
			e.blocked = true
			if e.need > 0 {
				t.waiting--
			}
		}
	}
	t.advanceLocked()
}

func (t *tracker) advanceLocked() {
	moved := false
	n := 0
	for n < len(t.q) && t.q[n].need <= 0 && !t.q[n].blocked {
		t.front = t.q[n].offset + 1
		n++
		moved = true
	}
	if n > 0 {
		t.q = t.q[n:]
		if len(t.q) == 0 {
			t.q = nil
		}
	}
	if moved && t.safe {
		t.sess.MarkOffset(t.topic, t.partition, t.front, "")
	}
	if t.waiting == 0 {
		t.wakeLocked()
	}
}

func (t *tracker) wakeLocked() {
	if !t.watched {
		return
	}
	t.watched = false
	close(t.notify)
	t.notify = make(chan struct{})
}

// state returns whether records are in flight, whether the partition
// failed, and a channel closed at the next change.
func (t *tracker) state() (pending int, failed bool, changed <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.watched = true
	return t.waiting, t.failed, t.notify
}

// lag is the partition's high-water mark minus the next offset the
// destination has not acknowledged.
func (t *tracker) lag() int64 {
	hwm := t.claim.HighWaterMarkOffset()
	t.mu.Lock()
	front := t.front
	t.mu.Unlock()
	return max(hwm-front, 0)
}
