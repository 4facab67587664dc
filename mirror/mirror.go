// Package mirror is kmt's reference replicator: it copies topics from a
// source Kafka cluster to a destination cluster, record for record, keeping
// key, value, headers, timestamp and partition number.
//
// Each worker is one consumer group member on the source with its own
// connections to both clusters; the group spreads partitions over the
// workers, and Scale changes their number while running. For every record a
// worker produces to the same partition number of the destination topic
// (TopicPrefix + source name), creating destination topics with the source's
// partition count and growing them when the source grows.
//
// Safe mode is at-least-once: a source offset is committed only once the
// destination acknowledged that record and every lower offset of its
// partition, so a crash, a rebalance or a produce failure can only
// duplicate. UnsafeCommitBeforeAck commits each batch it reads before
// producing it, so an abrupt Kill loses whatever was in flight: the
// self-test that proves kmt catches loss. Faults inject exact numbers of
// drops, duplicates and swaps (see Faults and Select).
//
// Kill simulates a crash: every connection of every worker is cut at once,
// nothing more is delivered or committed; Scale then starts fresh workers,
// which resume from the committed offsets once the group has expired the
// dead members (Config.SessionTimeout).
//
// All connections to the source use Conn.Dialer of the source connection
// settings (the local target's WAN link), including the metadata client.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// Counters are a mirror's cumulative counters.
type Counters struct {
	// Read counts records read from the source, by every worker since New
	// (replays count again).
	Read uint64 `json:"read"`
	// Replicated counts records the destination acknowledged, by every
	// worker since New (an injected duplicate counts twice, replays after a
	// rebalance or crash count again).
	Replicated uint64 `json:"replicated"`
	// Errors counts records the destination failed to acknowledge (a safe
	// mirror replays them).
	Errors uint64 `json:"errors"`
	// Lag is the number of source records not yet acknowledged by the
	// destination, summed over partitions: high-water mark (as of the
	// claim's last fetch) minus the next unacknowledged offset; frozen at its
	// last value while no worker claims a partition.
	Lag int64 `json:"lag"`
	// Workers is the number of workers running.
	Workers int `json:"workers"`
	// Dropped, Duplicated and Swapped count injected faults: records
	// dropped, records produced twice, pairs produced reversed.
	Dropped    uint64 `json:"dropped"`
	Duplicated uint64 `json:"duplicated"`
	Swapped    uint64 `json:"swapped"`
}

// ErrNotRunning is returned by Scale after Run has returned.
var ErrNotRunning = errors.New("mirror is not running")

type runState int

const (
	stateNew runState = iota
	stateRunning
	stateStopped
)

// topicSet is the current set of source topics being mirrored.
type topicSet struct {
	names   []string
	parts   map[string]int
	changed chan struct{} // closed when replaced
}

type tp struct {
	topic     string
	partition int32
}

// Mirror replicates topics from a source cluster to a destination cluster.
type Mirror struct {
	src, dst kafkaconf.Conn
	cfg      Config
	re       *regexp.Regexp
	met      *Metrics
	log      *slog.Logger
	inj      *injector

	read       atomic.Uint64
	replicated atomic.Uint64
	errs       atomic.Uint64

	started atomic.Bool
	scaleMu sync.Mutex // serializes Scale, Kill and Run's start and stop
	mu      sync.Mutex
	state   runState
	runCtx  context.Context
	workers []*worker
	desired int
	nextID  int
	wg      sync.WaitGroup // every worker goroutine ever started

	topics atomic.Pointer[topicSet]

	srcClient sarama.Client
	dstClient sarama.Client
	dstAdmin  sarama.ClusterAdmin
	dstMu     sync.Mutex
	dstParts  map[string]int // destination topic -> partitions known to exist
	missing   map[string]bool

	lagMu  sync.Mutex
	claims map[*tracker]struct{}
	lag    map[tp]int64
}

// New validates cfg and returns a mirror; Run starts it. m may be nil (the
// metrics are then kept but not registered anywhere).
func New(src, dst kafkaconf.Conn, cfg Config, m *Metrics) (*Mirror, error) {
	if err := src.Validate(); err != nil {
		return nil, fmt.Errorf("mirror source: %w", err)
	}
	if err := dst.Validate(); err != nil {
		return nil, fmt.Errorf("mirror destination: %w", err)
	}
	cfg, re, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	mr := &Mirror{
		src: src, dst: dst, cfg: cfg, re: re, met: m,
		log:      cfg.Logger.With("component", "mirror"),
		inj:      newInjector(cfg.Faults),
		desired:  cfg.Workers,
		dstParts: map[string]int{},
		missing:  map[string]bool{},
		claims:   map[*tracker]struct{}{},
		lag:      map[tp]int64{},
	}
	mr.topics.Store(&topicSet{changed: make(chan struct{})})
	for _, f := range []struct {
		f    Fault
		list []Select
	}{{Drop, cfg.Faults.Drop}, {Duplicate, cfg.Faults.Duplicate}, {Swap, cfg.Faults.Swap}} {
		if len(f.list) > 0 || cfg.Faults.Func != nil {
			m.injected.WithLabelValues(f.f.String()).Add(0)
		}
	}
	return mr, nil
}

// Config returns the configuration with defaults filled in.
func (m *Mirror) Config() Config { return m.cfg }

// DestinationTopic returns the destination name of source topic t.
func (m *Mirror) DestinationTopic(t string) string { return m.cfg.TopicPrefix + t }

// Run connects to both clusters, starts the configured number of workers
// and mirrors until ctx is cancelled; then it stops every worker gracefully
// (committing what the destination acknowledged) and returns nil. It
// returns an error when a cluster cannot be reached within its connect
// timeout. Run may be called once.
func (m *Mirror) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("mirror: Run called twice")
	}
	if err := m.connect(ctx); err != nil {
		m.mu.Lock()
		m.state = stateStopped
		m.mu.Unlock()
		return err
	}
	m.log.Info("mirror starting", "source", m.src.String(), "destination", m.dst.String(),
		"topics", m.topicSpec(), "group", m.cfg.Group, "mode", m.cfg.Mode.String())
	if err := m.syncTopics(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("mirror topic sync failed, retrying", "err", err)
	}
	m.scaleMu.Lock()
	m.mu.Lock()
	m.state = stateRunning
	m.runCtx = ctx
	for len(m.workers) < m.desired {
		m.startWorkerLocked()
	}
	m.met.workers.Set(float64(len(m.workers)))
	m.mu.Unlock()
	m.scaleMu.Unlock()

	// Topic sync runs apart: over a cut WAN link a metadata refresh can
	// block for the client's read timeout.
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		t := time.NewTicker(m.cfg.RefreshInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := m.syncTopics(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("mirror topic sync failed, retrying", "err", err)
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.stopAll()
			m.closeClients() // also interrupts a sync blocked on the network
			<-syncDone
			m.log.Info("mirror stopped", "replicated", m.replicated.Load(), "errors", m.errs.Load())
			return nil
		case <-tick.C:
			m.updateLag()
		}
	}
}

func (m *Mirror) topicSpec() string {
	if m.re != nil {
		return "re:" + m.cfg.TopicRegex
	}
	return strings.Join(m.cfg.Topics, ",")
}

// stopAll stops every worker gracefully at the end of Run and waits for
// every worker goroutine, killed ones included.
func (m *Mirror) stopAll() {
	m.scaleMu.Lock()
	m.mu.Lock()
	m.state = stateStopped
	ws := m.workers
	m.workers = nil
	m.met.workers.Set(0)
	m.mu.Unlock()
	m.scaleMu.Unlock()
	m.stopWorkers(ws)
	m.wg.Wait()
}

// stopWorkers stops ws gracefully; workers that have not finished within
// DrainTimeout plus the session timeout (typically stuck on a cut link) are
// killed, which a safe mirror survives without loss.
func (m *Mirror) stopWorkers(ws []*worker) {
	for _, w := range ws {
		w.cancel()
	}
	bound := time.NewTimer(m.cfg.DrainTimeout + m.cfg.SessionTimeout)
	defer bound.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
			continue
		case <-bound.C:
		}
		for _, w := range ws {
			select {
			case <-w.done:
			default:
				m.log.Warn("mirror worker did not stop in time, killing it", "worker", w.id)
				w.kill()
			}
		}
		break
	}
	for _, w := range ws {
		<-w.done
	}
}

// Scale sets the number of workers: new ones join the group, surplus ones
// stop gracefully (finishing what is in flight, committing) before Scale
// returns — or are killed if that takes longer than DrainTimeout plus
// SessionTimeout. Before Run it sets how many Run starts.
func (m *Mirror) Scale(n int) error {
	if n < 0 {
		return fmt.Errorf("mirror: scale to %d workers: negative", n)
	}
	m.scaleMu.Lock()
	defer m.scaleMu.Unlock()
	m.mu.Lock()
	switch m.state {
	case stateNew:
		m.desired = n
		m.mu.Unlock()
		return nil
	case stateStopped:
		m.mu.Unlock()
		return ErrNotRunning
	}
	before := len(m.workers)
	m.desired = n
	for len(m.workers) < n {
		m.startWorkerLocked()
	}
	var stopping []*worker
	if len(m.workers) > n {
		stopping = slices.Clone(m.workers[n:])
		m.workers = m.workers[:n]
	}
	m.met.workers.Set(float64(len(m.workers)))
	m.mu.Unlock()
	m.stopWorkers(stopping)
	m.log.Info("mirror scaled", "from", before, "to", n)
	return nil
}

// Kill stops every worker abruptly, as if the process died: their
// connections are cut at once, nothing in flight is delivered or
// acknowledged, nothing more is committed. It returns the number of workers
// killed; Scale starts new ones, which resume from the last committed
// offsets once the group has expired the killed members (SessionTimeout).
func (m *Mirror) Kill() int {
	m.scaleMu.Lock()
	defer m.scaleMu.Unlock()
	m.mu.Lock()
	ws := m.workers
	m.workers = nil
	m.met.workers.Set(0)
	m.mu.Unlock()
	// Each kill returns once the worker's claims have ended; sarama's
	// teardown of the dead clients (which can only fail now) finishes in the
	// background and Run waits for it.
	for _, w := range ws {
		w.kill()
	}
	m.log.Warn("mirror workers killed", "workers", len(ws))
	return len(ws)
}

// Workers returns the number of workers running.
func (m *Mirror) Workers() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.workers)
}

// Counters returns the mirror's counters.
func (m *Mirror) Counters() Counters {
	c := Counters{
		Read:       m.read.Load(),
		Replicated: m.replicated.Load(),
		Errors:     m.errs.Load(),
		Workers:    m.Workers(),
		Dropped:    m.inj.injected(Drop),
		Duplicated: m.inj.injected(Duplicate),
		Swapped:    m.inj.injected(Swap),
	}
	m.lagMu.Lock()
	for t := range m.claims {
		m.lag[tp{t.topic, t.partition}] = t.lag()
	}
	for _, l := range m.lag {
		c.Lag += l
	}
	m.lagMu.Unlock()
	return c
}

func (m *Mirror) startWorkerLocked() {
	m.nextID++
	w := newWorker(m, m.nextID)
	m.workers = append(m.workers, w)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run()
	}()
}

// connect opens the metadata client on the source and the admin client on
// the destination.
func (m *Mirror) connect(ctx context.Context) error {
	src := m.src
	if src.ClientID == "" {
		src.ClientID = "kmt-mirror"
	}
	scfg, err := src.Sarama()
	if err != nil {
		return fmt.Errorf("mirror source: %w", err)
	}
	scfg.Metadata.AllowAutoTopicCreation = false
	if m.srcClient, err = kafkaconf.Connect(ctx, src, scfg); err != nil {
		return fmt.Errorf("mirror source: %w", err)
	}
	dst := m.dst
	if dst.ClientID == "" {
		dst.ClientID = "kmt-mirror"
	}
	dcfg, err := dst.Sarama()
	if err != nil {
		m.srcClient.Close()
		return fmt.Errorf("mirror destination: %w", err)
	}
	dcfg.Metadata.AllowAutoTopicCreation = false
	if m.dstClient, err = kafkaconf.Connect(ctx, dst, dcfg); err != nil {
		m.srcClient.Close()
		return fmt.Errorf("mirror destination: %w", err)
	}
	if m.dstAdmin, err = sarama.NewClusterAdminFromClient(m.dstClient); err != nil {
		m.srcClient.Close()
		m.dstClient.Close()
		return fmt.Errorf("mirror destination admin: %w", err)
	}
	return nil
}

func (m *Mirror) closeClients() {
	_ = m.dstAdmin.Close() // closes dstClient
	_ = m.srcClient.Close()
}

// matches reports whether source topic t is mirrored.
func (m *Mirror) matches(t string) bool {
	if strings.HasPrefix(t, "__") {
		return false
	}
	if m.re != nil {
		return m.re.MatchString(t)
	}
	return slices.Contains(m.cfg.Topics, t)
}

// syncTopics reads the source topics and partition counts, creates or grows
// their destination topics, and publishes the set to the workers when it
// changed.
func (m *Mirror) syncTopics(ctx context.Context) error {
	if err := m.srcClient.RefreshMetadata(); err != nil {
		return fmt.Errorf("refresh source metadata: %w", err)
	}
	all, err := m.srcClient.Topics()
	if err != nil {
		return fmt.Errorf("list source topics: %w", err)
	}
	parts := map[string]int{}
	var names []string
	for _, t := range all {
		if !m.matches(t) {
			continue
		}
		ps, err := m.srcClient.Partitions(t)
		if err != nil || len(ps) == 0 {
			continue
		}
		parts[t] = len(ps)
		names = append(names, t)
	}
	slices.Sort(names)
	for _, t := range m.cfg.Topics {
		if _, ok := parts[t]; !ok {
			m.dstMu.Lock()
			first := !m.missing[t]
			m.missing[t] = true
			m.dstMu.Unlock()
			if first {
				m.log.Warn("mirror source topic does not exist yet, waiting", "topic", t)
			}
		}
	}
	var firstErr error
	for _, t := range names {
		if err := m.ensureDestination(ctx, t, parts[t]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	cur := m.topics.Load()
	if !slices.Equal(cur.names, names) || !mapsEqual(cur.parts, parts) {
		m.topics.Store(&topicSet{names: names, parts: parts, changed: make(chan struct{})})
		close(cur.changed)
		m.log.Info("mirror topics changed", "topics", names)
	}
	return firstErr
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ensureDestination makes the destination topic of source topic t exist
// with at least n partitions.
func (m *Mirror) ensureDestination(ctx context.Context, t string, n int) error {
	dt := m.DestinationTopic(t)
	m.dstMu.Lock()
	defer m.dstMu.Unlock()
	if m.dstParts[dt] >= n {
		return nil
	}
	have := 0
	if err := m.dstClient.RefreshMetadata(dt); err == nil {
		if ps, err := m.dstClient.Partitions(dt); err == nil {
			have = len(ps)
		}
	}
	switch {
	case have == 0:
		err := m.dstAdmin.CreateTopic(dt, &sarama.TopicDetail{NumPartitions: int32(n), ReplicationFactor: m.cfg.ReplicationFactor}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create destination topic %s with %d partitions: %w", dt, n, err)
		}
		m.log.Info("mirror destination topic created", "topic", dt, "partitions", n)
	case have < n:
		err := m.dstAdmin.CreatePartitions(dt, int32(n), nil, false)
		if err != nil && !errors.Is(err, sarama.ErrInvalidPartitions) {
			return fmt.Errorf("grow destination topic %s from %d to %d partitions: %w", dt, have, n, err)
		}
		m.log.Info("mirror destination partitions added", "topic", dt, "from", have, "to", n)
	}
	// Wait until the destination's metadata shows them, so producing to the
	// new partitions works at once.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := m.dstClient.RefreshMetadata(dt); err == nil {
			if ps, err := m.dstClient.Partitions(dt); err == nil && len(ps) >= n {
				m.dstParts[dt] = len(ps)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("destination topic %s: %d partitions not visible after 10s", dt, n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// registerClaim and unregisterClaim keep the trackers whose lag is
// reported.
func (m *Mirror) registerClaim(t *tracker) {
	m.lagMu.Lock()
	m.claims[t] = struct{}{}
	m.lagMu.Unlock()
}

func (m *Mirror) unregisterClaim(t *tracker) {
	l := t.lag()
	m.lagMu.Lock()
	delete(m.claims, t)
	m.lag[tp{t.topic, t.partition}] = l
	m.lagMu.Unlock()
}

// updateLag refreshes the lag gauge from the live claims.
func (m *Mirror) updateLag() {
	m.lagMu.Lock()
	defer m.lagMu.Unlock()
	for t := range m.claims {
		m.lag[tp{t.topic, t.partition}] = t.lag()
	}
	byTopic := map[string]int64{}
	for k, l := range m.lag {
		byTopic[k.topic] += l
	}
	for topic, l := range byTopic {
		m.met.lag.WithLabelValues(topic).Set(float64(l))
	}
}
