package workload

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/kmtproject/kmt/producer"
)

// Churn of the workload's own processes: consumers and producers killed
// abruptly, restarted and scaled while a run goes on. An abrupt kill cuts
// the component's connections first (see internal/killswitch), so it
// neither commits, nor leaves its group, nor sends anything it had in
// flight or buffered, as when its process dies; the consumers' shared
// ledger and the producer's report survive it, as a dead pod's metrics and
// report would have been scraped and kept.

// addedConsumers numbers the consumers started by AddConsumer and
// ScaleConsumers.
var addedConsumers atomic.Int64

// Consumers returns the ids of the running consumers, in start order.
func (t *Target) Consumers() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, len(t.consumers))
	for i, c := range t.consumers {
		ids[i] = c.id
	}
	return ids
}

// KillConsumer kills running consumer i (0-based, in start order)
// abruptly: its partitions stay with the dead member until the group's
// session timeout (consumers' Group.Session.Timeout, see ConsumerTune),
// then the others take them over and re-read what it had not committed.
// It returns the consumer's id at once; the dead consumer's goroutines end
// in the background (Shutdown waits for them).
func (t *Target) KillConsumer(i int) (string, error) {
	t.mu.Lock()
	if i < 0 || i >= len(t.consumers) {
		n := len(t.consumers)
		t.mu.Unlock()
		return "", fmt.Errorf("workload: kill consumer %d: %d consumers run", i, n)
	}
	c := t.consumers[i]
	t.consumers = append(t.consumers[:i:i], t.consumers[i+1:]...)
	t.mu.Unlock()
	cut := c.cut.Kill()
	c.cancel()
	t.bg.Add(1)
	go func() { defer t.bg.Done(); <-c.done }() // its clean-up cannot reach the cluster any more
	slog.Info("workload consumer killed", "consumer", c.id, "connections_cut", cut)
	return c.id, nil
}

// AddConsumer starts one more consumer in the group and returns its id. A
// consumer restarted after KillConsumer is a new group member like this.
func (t *Target) AddConsumer() (string, error) {
	id := "consumer-added-" + strconv.FormatInt(addedConsumers.Add(1), 10)
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.newConsumerLocked(id)
	if c == nil {
		return "", fmt.Errorf("workload: consumer %s did not start", id)
	}
	t.consumers = append(t.consumers, c)
	slog.Info("workload consumer added", "consumer", id)
	return id, nil
}

// ScaleConsumers starts consumers, or stops the newest ones gracefully
// (they commit and leave the group), until n run.
func (t *Target) ScaleConsumers(n int) error {
	if n < 0 {
		return fmt.Errorf("workload: scale consumers to %d: must be >= 0", n)
	}
	for {
		t.mu.Lock()
		running := len(t.consumers)
		var last *proc
		if running > n {
			last = t.consumers[running-1]
			t.consumers = t.consumers[:running-1]
		}
		t.mu.Unlock()
		switch {
		case running == n:
			return nil
		case last != nil:
			_ = last.stop()
			slog.Info("workload consumer stopped", "consumer", last.id)
		default:
			if _, err := t.AddConsumer(); err != nil {
				return err
			}
		}
	}
}

// Producers returns the ids of the producers started so far (running or
// not), in start order; an id restarted by RestartProducer appears again.
func (t *Target) Producers() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, len(t.producers))
	for i, p := range t.producers {
		ids[i] = p.p.Report().Producer
	}
	return ids
}

// ProducerReports returns every producer's report so far, in start order:
// per stream what was sent, acknowledged and failed.
func (t *Target) ProducerReports() []producer.Report {
	t.mu.Lock()
	prods := append([]*producerProc(nil), t.producers...)
	t.mu.Unlock()
	out := make([]producer.Report, len(prods))
	for i, p := range prods {
		out[i] = p.p.Report()
	}
	return out
}

// KillProducer kills producer i (0-based, in start order) abruptly: every
// message it had in flight or buffered fails, nothing more reaches the
// cluster and no end-of-stream marker gets through, so its streams end in
// an unacknowledged tail. Its report stays part of the run's outcome, where
// that tail counts as never acked (or unacked but delivered, when the
// cluster had written a message whose acknowledgement was cut off), never
// as replication loss. It returns the producer's id at once; the dead
// producer's client gives up on its messages in the background, and Finish
// waits for that.
func (t *Target) KillProducer(i int) (string, error) {
	t.mu.Lock()
	if i < 0 || i >= len(t.producers) {
		n := len(t.producers)
		t.mu.Unlock()
		return "", fmt.Errorf("workload: kill producer %d: %d producers were started", i, n)
	}
	p := t.producers[i]
	t.mu.Unlock()
	if p.cut.Killed() {
		return "", fmt.Errorf("workload: producer %d was killed already", i)
	}
	cut := p.cut.Kill()
	p.cancel()
	c := p.p.Counters()
	id := p.p.Report().Producer
	slog.Info("workload producer killed", "producer", id, "connections_cut", cut, "sent", c.Sent, "acked", c.Acked, "in_flight", c.InFlight)
	return id, nil
}

// RestartProducer starts a new run of killed producer i, with the same id
// and topics and a new run id: its streams are new and validated from
// sequence zero. It fails once the workload is finishing.
func (t *Target) RestartProducer(i int) error {
	t.mu.Lock()
	if i < 0 || i >= len(t.producers) {
		n := len(t.producers)
		t.mu.Unlock()
		return fmt.Errorf("workload: restart producer %d: %d producers were started", i, n)
	}
	p := t.producers[i]
	t.mu.Unlock()
	if !p.cut.Killed() {
		return fmt.Errorf("workload: restart producer %d: it was not killed", i)
	}
	return t.startProducerAs(p.p.Report().Producer, p.topics, p.partitions)
}
