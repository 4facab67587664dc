package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/killswitch"
)

// worker is one consumer group member with its own source and destination
// connections.
type worker struct {
	m      *Mirror
	id     int
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	srcSwitch, dstSwitch *killswitch.Switch
	killed               atomic.Bool
	killCh               chan struct{}
	claims               gate
	done                 chan struct{}
}

func newWorker(m *Mirror, id int) *worker {
	ctx, cancel := context.WithCancel(m.runCtx)
	return &worker{
		m: m, id: id,
		log:       m.log.With("worker", id),
		ctx:       ctx,
		cancel:    cancel,
		srcSwitch: killswitch.New(m.src.Dialer),
		dstSwitch: killswitch.New(m.dst.Dialer),
		killCh:    make(chan struct{}),
		claims:    gate{zero: make(chan struct{})},
		done:      make(chan struct{}),
	}
}

// kill stops the worker abruptly and returns once no claim of it runs.
func (w *worker) kill() {
	if !w.killed.CompareAndSwap(false, true) {
		return
	}
	close(w.killCh)
	w.srcSwitch.Kill()
	w.dstSwitch.Kill()
	w.cancel()
	<-w.claims.shut()
}

// run keeps the worker connected and consuming until it is stopped.
func (w *worker) run() {
	defer close(w.done)
	defer w.cancel()
	w.log.Info("mirror worker started")
	backoff := 200 * time.Millisecond
	for w.ctx.Err() == nil {
		err := w.connectAndConsume()
		if w.ctx.Err() != nil {
			break
		}
		w.log.Warn("mirror worker reconnecting", "err", err, "backoff", backoff)
		select {
		case <-w.ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	if w.killed.Load() {
		w.log.Warn("mirror worker killed")
	} else {
		w.log.Info("mirror worker stopped")
	}
}

func (w *worker) sourceConfig() (kafkaconf.Conn, *sarama.Config, error) {
	cfg := w.m.cfg
	src := w.m.src
	src.Dialer = w.srcSwitch
	if src.ClientID == "" {
		src.ClientID = "kmt-mirror"
	}
	src.ClientID = fmt.Sprintf("%s-%d", src.ClientID, w.id)
	sc, err := src.Sarama()
	if err != nil {
		return src, nil, fmt.Errorf("source: %w", err)
	}
	sc.Metadata.AllowAutoTopicCreation = false
	sc.Metadata.Retry.BackoffFunc = w.backoff(sc.Metadata.Retry.Backoff)
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Session.Timeout = cfg.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = cfg.SessionTimeout / 3
	// Sticky: partitions stay with their worker across rebalances (fewer
	// replays), and its subscription carries the current assignment, so a
	// leader rejoining after partitions grew makes the group rebalance.
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	sc.Consumer.Group.Rebalance.Timeout = max(cfg.SessionTimeout, 10*time.Second)
	sc.Consumer.Group.Rebalance.Retry.Backoff = 500 * time.Millisecond
	return src, sc, nil
}

func (w *worker) destinationConfig() (kafkaconf.Conn, *sarama.Config, error) {
	dst := w.m.dst
	dst.Dialer = w.dstSwitch
	if dst.ClientID == "" {
		dst.ClientID = "kmt-mirror"
	}
	dst.ClientID = fmt.Sprintf("%s-%d", dst.ClientID, w.id)
	dc, err := dst.Sarama()
	if err != nil {
		return dst, nil, fmt.Errorf("destination: %w", err)
	}
	dc.Metadata.AllowAutoTopicCreation = false
	dc.Producer.Partitioner = sarama.NewManualPartitioner
	dc.Producer.RequiredAcks = sarama.WaitForAll
	dc.Producer.Return.Successes = true
	dc.Producer.Return.Errors = true
	// One request in flight per broker keeps each partition's order across
	// retries.
	dc.Net.MaxOpenRequests = 1
	dc.Producer.Retry.Max = 5
	dc.Producer.Retry.BackoffFunc = w.backoff(300 * time.Millisecond)
	dc.Metadata.Retry.BackoffFunc = w.backoff(dc.Metadata.Retry.Backoff)
	return dst, dc, nil
}

// backoff returns a sarama retry backoff of d that drops to zero once the
// worker is killed: sarama sleeps it per failed message, and a killed
// worker's clients must fail everything they still hold at once.
func (w *worker) backoff(d time.Duration) func(retries, maxRetries int) time.Duration {
	return func(int, int) time.Duration {
		if w.killed.Load() {
			return 0
		}
		return d
	}
}

// connectAndConsume runs one lifetime of the worker's clients: connect,
// consume sessions until stopped or broken, tear down.
func (w *worker) connectAndConsume() error {
	src, sc, err := w.sourceConfig()
	if err != nil {
		return err
	}
	dst, dc, err := w.destinationConfig()
	if err != nil {
		return err
	}
	client, err := kafkaconf.Connect(w.ctx, src, sc)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer client.Close()
	group, err := sarama.NewConsumerGroupFromClient(w.m.cfg.Group, client)
	if err != nil {
		return fmt.Errorf("source consumer group %s: %w", w.m.cfg.Group, err)
	}
	h := &handler{w: w, client: client}
	groupDone := make(chan struct{})
	go func() {
		defer close(groupDone)
		var logged time.Time
		suppressed := 0
		for err := range group.Errors() {
			if w.killed.Load() || w.ctx.Err() != nil {
				continue
			}
			// A commit refused because the group moved on: end the session
			// now instead of replicating records it cannot commit.
			if errors.Is(err, sarama.ErrUnknownMemberId) || errors.Is(err, sarama.ErrIllegalGeneration) ||
				errors.Is(err, sarama.ErrRebalanceInProgress) {
				h.rejoin()
			}
			if kafkaconf.RebalanceChurn(err) {
				// Expected while the group rebalances: info, not a warning.
				w.log.Info("mirror consumer rebalance error", "err", err)
				continue
			}
			if time.Since(logged) < 5*time.Second {
				suppressed++
				continue
			}
			w.log.Warn("mirror consumer error", "err", err, "suppressed", suppressed)
			logged, suppressed = time.Now(), 0
		}
	}()
	defer func() {
		_ = group.Close()
		<-groupDone
	}()
	dclient, err := kafkaconf.Connect(w.ctx, dst, dc)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer dclient.Close()
	producer, err := sarama.NewAsyncProducerFromClient(dclient)
	if err != nil {
		return fmt.Errorf("destination producer: %w", err)
	}
	dispatched := make(chan struct{})
	go w.dispatch(producer, dispatched)
	defer func() {
		producer.AsyncClose()
		<-dispatched
	}()
	h.producer, h.dclient = producer, dclient
	return w.consume(group, h)
}

// consume runs consumer group sessions on the current topic set until the
// worker stops; a change of the topic set or a produce failure ends the
// session and starts a new one.
func (w *worker) consume(group sarama.ConsumerGroup, h *handler) error {
	failures := 0
	for {
		if w.ctx.Err() != nil {
			return nil
		}
		ts := w.m.topics.Load()
		if len(ts.names) == 0 {
			select {
			case <-ts.changed:
			case <-w.ctx.Done():
			}
			continue
		}
		sctx, scancel := context.WithCancel(w.ctx)
		h.setRestart(scancel)
		go func() {
			// A new topic needs a new session (new subscription). Grown
			// partitions do not: the group leader's partition watch
			// (Metadata.RefreshFrequency) rebalances the group, which a
			// rejoin with unchanged subscriptions would not.
			cur := ts
			for {
				select {
				case <-cur.changed:
					cur = w.m.topics.Load()
					if !slices.Equal(cur.names, ts.names) {
						scancel()
						return
					}
				case <-sctx.Done():
					return
				}
			}
		}()
		err := group.Consume(sctx, ts.names, h)
		restarted := sctx.Err() != nil // topic change, rejoin or produce failure
		scancel()
		if w.ctx.Err() != nil {
			return nil
		}
		if err != nil && !(restarted && errors.Is(err, context.Canceled)) {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) {
				return err
			}
			failures++
			if failures >= 5 {
				return fmt.Errorf("consumer group session failed %d times: %w", failures, err)
			}
			w.log.Log(w.ctx, kafkaconf.ChurnLevel(err), "mirror session failed, rejoining", "err", err)
			select {
			case <-w.ctx.Done():
			case <-time.After(time.Duration(failures) * 300 * time.Millisecond):
			}
			continue
		}
		failures = 0
		if h.takeFailed() {
			w.log.Warn("mirror session restart after produce failure: replaying from the last commit")
		}
	}
}

// dispatch routes the destination's acknowledgements to the trackers.
func (w *worker) dispatch(p sarama.AsyncProducer, done chan<- struct{}) {
	defer close(done)
	succ, errs := p.Successes(), p.Errors()
	var logged time.Time
	for succ != nil || errs != nil {
		select {
		case pm, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			t := pm.Metadata.(*ticket)
			t.tr.ack(t.offset)
			w.m.replicated.Add(1)
			t.tr.msgs.Inc()
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t := pe.Msg.Metadata.(*ticket)
			t.tr.fail(t.offset)
			if w.killed.Load() {
				continue // artifacts of the kill, not destination failures
			}
			w.m.errs.Add(1)
			t.tr.errs.Inc()
			if time.Since(logged) > 10*time.Second {
				logged = time.Now()
				w.log.Warn("mirror produce failed", "topic", pe.Msg.Topic, "partition", pe.Msg.Partition, "err", pe.Err)
			}
		}
	}
}

// gate counts running claims; once shut it admits no more and its zero
// channel closes when the last one leaves.
type gate struct {
	mu     sync.Mutex
	n      int
	closed bool
	zero   chan struct{}
}

func (g *gate) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.n++
	return true
}

func (g *gate) exit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.closed && g.n == 0 {
		close(g.zero)
	}
}

func (g *gate) shut() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		if g.n == 0 {
			close(g.zero)
		}
	}
	return g.zero
}

// handler is the worker's sarama consumer group handler.
type handler struct {
	w        *worker
	producer sarama.AsyncProducer
	client   sarama.Client // source
	dclient  sarama.Client // destination, the producer's

	mu         sync.Mutex
	restart    context.CancelFunc
	failed     bool
	commitDone chan struct{}
}

func (h *handler) setRestart(f context.CancelFunc) {
	h.mu.Lock()
	h.restart = f
	h.mu.Unlock()
}

// restartSession ends the current session after a produce failure.
func (h *handler) restartSession() {
	h.mu.Lock()
	h.failed = true
	f := h.restart
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

// rejoin ends the current session so the worker joins the group again.
func (h *handler) rejoin() {
	h.mu.Lock()
	f := h.restart
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

func (h *handler) takeFailed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.failed
	h.failed = false
	return f
}

// Setup starts the periodic commit of marked offsets.
func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	done := make(chan struct{})
	h.mu.Lock()
	h.commitDone = done
	h.mu.Unlock()
	w := h.w
	w.log.Info("mirror session started", "generation", sess.GenerationID(), "claims", sess.Claims())
	go func() {
		defer close(done)
		t := time.NewTicker(w.m.cfg.CommitInterval)
		defer t.Stop()
		for {
			select {
			case <-sess.Context().Done():
				return
			case <-w.killCh:
				return
			case <-t.C:
				if !w.killed.Load() {
					sess.Commit()
				}
			}
		}
	}()
	return nil
}

// Cleanup commits the session's final marks, unless the worker was killed.
func (h *handler) Cleanup(sess sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	done := h.commitDone
	h.mu.Unlock()
	if done != nil {
		<-done
	}
	if !h.w.killed.Load() {
		sess.Commit()
	}
	return nil
}

// ConsumeClaim mirrors one partition.
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	w := h.w
	if !w.claims.enter() {
		return nil
	}
	defer w.claims.exit()
	m := w.m
	tr := newTracker(sess, claim, m.cfg.Mode == Safe, m.met)
	m.registerClaim(tr)
	defer m.unregisterClaim(tr)
	if !h.ensureDestination(sess, claim) {
		return nil
	}
	c := &claimRun{h: h, sess: sess, claim: claim, tr: tr}
	c.run()
	return nil
}

// ensureDestination makes sure the claim's destination partition exists
// and the worker's producer knows it, retrying until then or until the
// session ends.
func (h *handler) ensureDestination(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) bool {
	m := h.w.m
	dt := m.DestinationTopic(claim.Topic())
	for {
		n := int(claim.Partition()) + 1
		if ps, err := h.client.Partitions(claim.Topic()); err == nil {
			n = max(n, len(ps))
		}
		err := m.ensureDestination(sess.Context(), claim.Topic(), n)
		if err == nil {
			if ps, perr := h.dclient.Partitions(dt); perr == nil && len(ps) > int(claim.Partition()) {
				return true
			}
			if err = h.dclient.RefreshMetadata(dt); err == nil {
				if ps, perr := h.dclient.Partitions(dt); perr == nil && len(ps) > int(claim.Partition()) {
					return true
				}
				err = fmt.Errorf("partition %d not in the producer's metadata yet", claim.Partition())
			}
		}
		h.w.log.Warn("mirror destination not ready", "topic", dt, "err", err)
		select {
		case <-sess.Context().Done():
			return false
		case <-h.w.killCh:
			return false
		case <-time.After(time.Second):
		}
	}
}

// claimRun is one partition's mirroring within a session.
type claimRun struct {
	h     *handler
	sess  sarama.ConsumerGroupSession
	claim sarama.ConsumerGroupClaim
	tr    *tracker
	hold  *held
	timer *time.Timer
	batch []*sarama.ConsumerMessage
}

// more appends the messages already waiting in msgs to batch, at most 1000
// in all, and reports whether msgs was closed.
func more(msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage) ([]*sarama.ConsumerMessage, bool) {
	for len(batch) < 1000 {
		select {
		case m, ok := <-msgs:
			if !ok {
				return batch, true
			}
			batch = append(batch, m)
		default:
			return batch, false
		}
	}
	return batch, false
}

func (c *claimRun) run() {
	w := c.h.w
	msgs := c.claim.Messages()
	var holdC <-chan time.Time
	defer func() {
		if c.timer != nil {
			c.timer.Stop()
		}
	}()
loop:
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				break loop
			}
			batch := append(c.batch[:0], msg)
			closed := false
			if !c.tr.safe {
				// Commit before producing: whatever is in flight when the
				// worker dies is already committed, hence lost.
				batch, closed = more(msgs, batch)
				c.sess.MarkOffset(c.tr.topic, c.tr.partition, batch[len(batch)-1].Offset+1, "")
				c.sess.Commit()
			}
			for _, m := range batch {
				if !c.process(m) {
					break loop
				}
			}
			c.batch = batch[:0]
			if closed {
				break loop
			}
			if c.hold != nil && holdC == nil {
				c.timer = time.NewTimer(w.m.cfg.SwapWait)
				holdC = c.timer.C
			} else if c.hold == nil && holdC != nil {
				c.timer.Stop()
				holdC = nil
			}
		case <-holdC:
			holdC = nil
			c.releaseHold()
		case <-c.tr.failedCh:
			c.h.restartSession()
			break loop
		case <-w.killCh:
			return
		case <-c.sess.Context().Done():
			break loop
		}
	}
	if w.killed.Load() {
		return
	}
	c.releaseHold()
	c.drain()
}

// releaseHold produces a held Swap record alone (its partner never came).
func (c *claimRun) releaseHold() {
	if c.hold == nil {
		return
	}
	h := c.hold
	c.hold = nil
	c.h.w.log.Warn("mirror swap partner not seen, record produced unswapped",
		"topic", h.msg.Topic, "partition", h.msg.Partition, "offset", h.msg.Offset)
	c.send(h.msg)
}

// drain waits for the destination to acknowledge what is in flight, at
// most DrainTimeout.
func (c *claimRun) drain() {
	w := c.h.w
	t := time.NewTimer(w.m.cfg.DrainTimeout)
	defer t.Stop()
	for {
		pending, failed, changed := c.tr.state()
		if pending == 0 || failed {
			return
		}
		select {
		case <-changed:
		case <-w.killCh:
			return
		case <-t.C:
			w.log.Warn("mirror drain timed out; unacknowledged records will be replayed",
				"topic", c.tr.topic, "partition", c.tr.partition, "pending", pending)
			return
		}
	}
}

// process mirrors one record, applying any injected fault. It returns false
// when the record could not be handed to the producer (session ending).
func (c *claimRun) process(msg *sarama.ConsumerMessage) bool {
	m := c.h.w.m
	m.read.Add(1)
	d := m.inj.decide(msg)
	if c.hold != nil && isPartner(c.hold, msg) {
		if d.fault == Swap {
			d.fault = NoFault
		}
		if !c.apply(msg, d) {
			return false
		}
		h := c.hold
		c.hold = nil
		if !c.send(h.msg) {
			return false
		}
		if m.inj.count(h.msg, Swap) {
			m.met.injected.WithLabelValues(Swap.String()).Inc()
		}
		return true
	}
	if d.fault == Swap && d.first && c.hold == nil {
		c.tr.add(msg.Offset, 1)
		c.hold = &held{msg: msg, bySeq: d.bySeq, pos: d.pos}
		return true
	}
	return c.apply(msg, d)
}

// apply handles a record that is not being held.
func (c *claimRun) apply(msg *sarama.ConsumerMessage, d decision) bool {
	m := c.h.w.m
	switch {
	case d.fault == Drop:
		c.tr.add(msg.Offset, 0)
		if m.inj.count(msg, Drop) {
			m.met.injected.WithLabelValues(Drop.String()).Inc()
		}
		return true
	case d.fault == Duplicate && d.first:
		c.tr.add(msg.Offset, 2)
		if !c.send(msg) || !c.send(msg) {
			return false
		}
		if m.inj.count(msg, Duplicate) {
			m.met.injected.WithLabelValues(Duplicate.String()).Inc()
		}
		return true
	}
	c.tr.add(msg.Offset, 1)
	return c.send(msg)
}

// send hands one copy of msg to the producer. The tracker entry must exist.
func (c *claimRun) send(msg *sarama.ConsumerMessage) bool {
	w := c.h.w
	pm := &sarama.ProducerMessage{
		Topic:     w.m.DestinationTopic(msg.Topic),
		Partition: msg.Partition,
		Timestamp: msg.Timestamp,
		Metadata:  &ticket{tr: c.tr, offset: msg.Offset},
	}
	if msg.Key != nil {
		pm.Key = sarama.ByteEncoder(msg.Key)
	}
	if msg.Value != nil {
		pm.Value = sarama.ByteEncoder(msg.Value)
	}
	if len(msg.Headers) > 0 {
		pm.Headers = make([]sarama.RecordHeader, 0, len(msg.Headers))
		for _, h := range msg.Headers {
			if h != nil {
				pm.Headers = append(pm.Headers, *h)
			}
		}
	}
	select {
	case c.h.producer.Input() <- pm:
		return true
	case <-w.killCh:
	case <-c.sess.Context().Done():
	}
	c.tr.abandon(msg.Offset) // never produced: never commit past it
	return false
}
