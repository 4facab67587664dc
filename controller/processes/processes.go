// Package processes is the processes target: the workload of package
// workload on two real Apache Kafka KRaft clusters ("source" and
// "destination") running as JVM child processes on 127.0.0.1, with real
// MirrorMaker 2 (or kmt's reference mirror) replicating between them.
//
// The source brokers carry a second listener, REPLICATOR, whose advertised
// addresses are proxies through kmt's WAN link (internal/wan): the
// replicator bootstraps from them, so a network fault degrades exactly the
// replicator's cross-region traffic, as on the local target. Producers,
// consumers and administration use the brokers' own listener.
//
// Faults act on the processes: kill-broker SIGKILLs a broker's JVM,
// restart-broker starts it again on its log dir, resize-cluster stops
// brokers or starts them (restarting stopped ones first, then new ones),
// reassigns the workload's partitions over the running brokers through the
// admin API and elects their preferred leaders, scale-replicator and
// kill-replicator start, stop and SIGKILL MirrorMaker 2 processes.
package processes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/controller/workload"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkaproc"
	"github.com/kmtproject/kmt/internal/wan"
)

// Replicators the processes target runs.
const (
	MirrorMaker2 = "mirrormaker2"
	KMT          = "kmt"
)

// Replication policies of MirrorMaker 2 (and their equivalent for kmt's
// mirror).
const (
	// Identity keeps topic names (IdentityReplicationPolicy).
	Identity = "identity"
	// Default prefixes destination topics with the source cluster's alias
	// and a dot: "source.kmt-0" (DefaultReplicationPolicy).
	Default = "default"
)

// Config configures the processes target. The zero value of every field
// means its documented default.
type Config struct {
	// Home is the Kafka distribution folder (DIR/libs/*.jar). Default:
	// $KAFKA_HOME.
	Home string
	// Dir is the run directory: both clusters' configurations, logs and
	// data, and MirrorMaker 2's. Default: a new temporary directory.
	Dir string
	// Keep leaves the run directory in place after Shutdown for a
	// post-mortem. Default false: it is removed.
	Keep bool
	// Replicator is MirrorMaker2 or KMT. Default MirrorMaker2.
	Replicator string
	// Policy is the replication policy: Identity or Default. Default
	// Identity.
	Policy string
	// Registry registers the workload's metrics. Default: a private
	// registry.
	Registry prometheus.Registerer
	// Workload are further options of the workload (trimming, anomaly
	// limit). Default: none.
	Workload []workload.Option
}

// Target is the workload running on two real Kafka clusters.
type Target struct {
	*workload.Target
	topo *topology
}

// topology is the two clusters, the WAN link and its proxies.
type topology struct {
	src, dst *kafkaproc.Cluster
	link     *wan.Link
	dir      string
	remove   string // run directory to remove at Shutdown ("" keep)
	home     string

	mu      sync.Mutex
	proxies []*kafkaproc.Proxy
	stopped map[controller.Cluster][]int // brokers stopped by a resize, oldest first
}

// New starts the two clusters (each w.Brokers brokers and a dedicated
// controller; replication factor min(3, brokers), min.insync.replicas
// min(2, RF), w.SourceBrokerConfig on every source broker) and the WAN link, and
// prepares the workload with cfg's replicator. w must have its defaults
// applied.
func New(ctx context.Context, w scenario.Workload, cfg Config) (_ *Target, err error) {
	if cfg.Replicator == "" {
		cfg.Replicator = MirrorMaker2
	}
	if cfg.Policy == "" {
		cfg.Policy = Identity
	}
	switch cfg.Replicator {
	case MirrorMaker2, KMT:
	default:
		return nil, fmt.Errorf("processes: replicator %q is not %s or %s", cfg.Replicator, MirrorMaker2, KMT)
	}
	var prefix string
	switch cfg.Policy {
	case Identity:
	case Default:
		prefix = "source."
	default:
		return nil, fmt.Errorf("processes: replication policy %q is not %s or %s", cfg.Policy, Identity, Default)
	}
	home, err := kafkaproc.Home(cfg.Home)
	if err != nil {
		return nil, fmt.Errorf("processes: %w", err)
	}
	topo := &topology{home: home, stopped: map[controller.Cluster][]int{}}
	topo.dir = cfg.Dir
	if topo.dir == "" {
		if topo.dir, err = os.MkdirTemp("", "kmt-processes-"); err != nil {
			return nil, fmt.Errorf("processes: run directory: %w", err)
		}
		if !cfg.Keep {
			topo.remove = topo.dir
		}
	}
	topo.link = wan.New(wan.Name("wan"))
	defer func() {
		if err != nil {
			topo.Shutdown()
		}
	}()
	// Each cluster removes its own folder when the run directory goes too,
	// and otherwise keeps it (and says so).
	base := kafkaproc.Config{Home: home, Dir: topo.dir, Keep: topo.remove == "", Brokers: w.Brokers}
	srcCfg, dstCfg := base, base
	srcCfg.Name, dstCfg.Name = "source", "destination"
	srcCfg.BrokerProperties = w.SourceBrokerConfig
	srcCfg.Replicator = topo.proxy
	begin := time.Now()
	var wg sync.WaitGroup
	var srcErr, dstErr error
	wg.Go(func() { topo.src, srcErr = kafkaproc.StartCluster(ctx, srcCfg) })
	wg.Go(func() { topo.dst, dstErr = kafkaproc.StartCluster(ctx, dstCfg) })
	wg.Wait()
	if err := errors.Join(srcErr, dstErr); err != nil {
		topo.remove = "" // the error names a log inside it
		return nil, fmt.Errorf("processes: %w", err)
	}
	slog.Info("processes clusters ready", "seconds", time.Since(begin).Seconds(), "dir", topo.dir)
	// Explicit: KRaft applies default.replication.factor of the controller
	// to a CreateTopics request without one, and the brokers' setting is
	// not the controller's.
	opts := append([]workload.Option{workload.TopicPrefix(prefix), workload.ReplicationFactor(topo.src.ReplicationFactor())}, cfg.Workload...)
	if cfg.Registry != nil {
		opts = append(opts, workload.Registry(cfg.Registry))
	}
	if cfg.Replicator == MirrorMaker2 {
		opts = append(opts, workload.WithReplicator(mirrorMaker(home, topo.dir, cfg.Policy)))
	}
	return &Target{Target: workload.New(topo, w, opts...), topo: topo}, nil
}

// Source returns the source cluster.
func (t *Target) Source() *kafkaproc.Cluster { return t.topo.src }

// Destination returns the destination cluster.
func (t *Target) Destination() *kafkaproc.Cluster { return t.topo.dst }

// Dir returns the run directory.
func (t *Target) Dir() string { return t.topo.dir }

// proxy is the source cluster's REPLICATOR listener callback: a proxy
// through the WAN link in front of broker's listener, whose address the
// listener advertises.
func (tp *topology) proxy(broker int, listen string) (string, error) {
	p, err := kafkaproc.NewProxy(tp.link, listen)
	if err != nil {
		return "", err
	}
	tp.mu.Lock()
	tp.proxies = append(tp.proxies, p)
	tp.mu.Unlock()
	slog.Debug("wan proxy", "broker", broker, "listen", p.Addr(), "upstream", listen)
	return p.Addr(), nil
}

// Name returns "processes".
func (*topology) Name() string { return "processes" }

func (tp *topology) cluster(c controller.Cluster) (*kafkaproc.Cluster, error) {
	switch c {
	case controller.Source:
		return tp.src, nil
	case controller.Destination:
		return tp.dst, nil
	}
	return nil, fmt.Errorf("processes: unknown cluster %q", c)
}

// Conn returns the settings to reach cluster c on its brokers' own
// listener.
func (tp *topology) Conn(c controller.Cluster, clientID string) kafkaconf.Conn {
	cl := tp.dst
	if c == controller.Source {
		cl = tp.src
	}
	return kafkaconf.Conn{Brokers: cl.Bootstrap(), ClientID: clientID, ConnectTimeout: 30 * time.Second}
}

// ReplicatorConn returns the settings the replicator uses: the source's
// REPLICATOR listener, across the WAN link; the destination directly.
func (tp *topology) ReplicatorConn(c controller.Cluster, clientID string) kafkaconf.Conn {
	k := tp.Conn(c, clientID)
	if c == controller.Source {
		k.Brokers = tp.src.ReplicatorBootstrap()
	}
	return k
}

// WAN returns the link between the regions.
func (tp *topology) WAN() *wan.Link { return tp.link }

// KillBroker SIGKILLs broker id's JVM ("random": any running broker).
func (tp *topology) KillBroker(_ context.Context, c controller.Cluster, id string) (string, error) {
	cl, err := tp.cluster(c)
	if err != nil {
		return "", err
	}
	running := cl.Running()
	if len(running) < 2 {
		return "", fmt.Errorf("processes: %s has %d broker(s) running; killing one would stop the cluster", c, len(running))
	}
	var n int
	if id == "random" {
		n = running[rand.IntN(len(running))]
	} else if n, err = strconv.Atoi(id); err != nil {
		return "", fmt.Errorf("processes: broker id %q: %w", id, err)
	}
	if err := cl.Kill(n); err != nil {
		return "", fmt.Errorf("processes: %w", err)
	}
	return strconv.Itoa(n), nil
}

// RestartBroker starts killed broker id again on its log dir.
func (tp *topology) RestartBroker(ctx context.Context, c controller.Cluster, id string) error {
	cl, err := tp.cluster(c)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("processes: broker id %q: %w", id, err)
	}
	if slices.Contains(cl.Running(), n) {
		return fmt.Errorf("processes: %s broker %d is running", c, n)
	}
	if err := cl.Restart(ctx, n); err != nil {
		return fmt.Errorf("processes: %w", err)
	}
	tp.mu.Lock()
	tp.stopped[c] = slices.DeleteFunc(tp.stopped[c], func(v int) bool { return v == n })
	tp.mu.Unlock()
	return nil
}

// ResizeCluster stops the newest running brokers (a controlled shutdown)
// or starts brokers until n run: brokers a resize stopped come back first
// on their log dirs, then new ones join. After growing, the workload's
// partitions are reassigned over the running brokers and their preferred
// leaders elected, so the new ones carry replicas and leaderships. A
// shrink reassigns nothing: the stopped brokers' replicas stay offline.
func (tp *topology) ResizeCluster(ctx context.Context, c controller.Cluster, n int) error {
	cl, err := tp.cluster(c)
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("processes: resize %s to %d brokers: at least 1", c, n)
	}
	running := cl.Running()
	for len(running) > n {
		id := running[len(running)-1]
		if err := cl.Stop(ctx, id); err != nil {
			return fmt.Errorf("processes: resize %s: %w", c, err)
		}
		tp.mu.Lock()
		tp.stopped[c] = append(tp.stopped[c], id)
		tp.mu.Unlock()
		running = cl.Running()
	}
	if len(running) == n {
		return nil
	}
	for len(cl.Running()) < n {
		tp.mu.Lock()
		var id = -1
		if s := tp.stopped[c]; len(s) > 0 {
			id, tp.stopped[c] = s[len(s)-1], s[:len(s)-1]
		}
		tp.mu.Unlock()
		if id >= 0 {
			if err := cl.Restart(ctx, id); err != nil {
				return fmt.Errorf("processes: resize %s: %w", c, err)
			}
			continue
		}
		if _, err := cl.AddBroker(ctx); err != nil {
			return fmt.Errorf("processes: resize %s: %w", c, err)
		}
	}
	return tp.reassign(ctx, c, cl)
}

// workloadTopic matches the workload's topics on either cluster.
var workloadTopic = regexp.MustCompile(`^(source\.)?kmt-`)

// reassign spreads the replicas and preferred leaderships of every
// workload topic of cluster over its running brokers, moving as few as the
// balance needs (Balance: a broker joining a cluster of three takes a
// quarter of the replicas and leaderships, nothing else moves), waits
// until the reassignments finished, then elects each partition's
// preferred leader (the first replica of the plan).
func (tp *topology) reassign(ctx context.Context, c controller.Cluster, cl *kafkaproc.Cluster) error {
	var brokers []int32
	for _, id := range cl.Running() {
		brokers = append(brokers, int32(id))
	}
	slices.Sort(brokers)
	return workload.Admin(ctx, tp.Conn(c, "kmt-admin"), func(a sarama.ClusterAdmin) error {
		topics, err := a.ListTopics()
		if err != nil {
			return fmt.Errorf("processes: reassign on %s: %w", c, err)
		}
		var names []string
		for name := range topics {
			if workloadTopic.MatchString(name) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		md, err := a.DescribeTopics(names)
		if err != nil {
			return fmt.Errorf("processes: reassign on %s: %w", c, err)
		}
		cur, leaders := Placement{}, map[string][]int32{}
		for _, t := range md {
			if !errors.Is(t.Err, sarama.ErrNoError) {
				return fmt.Errorf("processes: reassign %s on %s: %w", t.Name, c, t.Err)
			}
			cur[t.Name] = make([][]int32, len(t.Partitions))
			leaders[t.Name] = make([]int32, len(t.Partitions))
			for _, p := range t.Partitions {
				if int(p.ID) >= len(t.Partitions) {
					return fmt.Errorf("processes: reassign %s on %s: partition %d of %d", t.Name, c, p.ID, len(t.Partitions))
				}
				cur[t.Name][p.ID] = p.Replicas
				leaders[t.Name][p.ID] = p.Leader
			}
		}
		plan := Balance(cur, leaders, brokers)
		moved, elected := Moves(cur, leaders, plan)
		for _, name := range names {
			if slices.EqualFunc(plan[name], cur[name], slices.Equal) {
				continue // neither a replica nor a preferred leader changes
			}
			if err := a.AlterPartitionReassignments(name, plan[name]); err != nil {
				return fmt.Errorf("processes: reassign %s on %s: %w", name, c, err)
			}
		}
		slog.Info("partitions reassigned", "cluster", c, "topics", names, "brokers", brokers,
			"replicas_moved", moved, "leaderships_to_move", elected)
		parts := map[string][]int32{}
		for _, t := range md {
			for _, p := range t.Partitions {
				parts[t.Name] = append(parts[t.Name], p.ID)
			}
		}
		for {
			pending := 0
			for _, t := range md {
				// The partitions are named: sarama cannot encode a topic
				// with a null partition list ("all of them").
				st, err := a.ListPartitionReassignments(t.Name, parts[t.Name])
				if err != nil {
					return fmt.Errorf("processes: reassignment of %s on %s: %w", t.Name, c, err)
				}
				pending += len(st[t.Name])
			}
			if pending == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("processes: reassignment on %s: %d partitions still moving: %w", c, pending, ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		return electPreferred(ctx, a, c, names, parts)
	})
}

// inSyncWait bounds how long electPreferred waits for the preferred
// leaders to be in sync before it elects those that are.
const inSyncWait = 2 * time.Minute

// electPreferred moves the leadership of parts to their preferred replica
// (the first of the replica list a reassignment wrote). A reassignment
// moves leadership only off brokers that lose their replica: without an
// election a new broker would hold replicas and lead nothing until Kafka's
// automatic leader rebalance (auto.leader.rebalance.enable, every
// leader.imbalance.check.interval.seconds, 300 s by default) got to it.
// A preferred replica must be in sync to lead, so it first waits, at most
// inSyncWait, until every partition's ISR holds all its replicas (a broker
// a resize restarted may still be catching up).
func electPreferred(ctx context.Context, a sarama.ClusterAdmin, c controller.Cluster, names []string, parts map[string][]int32) error {
	begin := time.Now()
	var before map[int32]int // leaderships per broker before the election
	for {
		md, err := a.DescribeTopics(names)
		if err != nil {
			return fmt.Errorf("processes: preferred leaders on %s: %w", c, err)
		}
		short := 0
		before = map[int32]int{}
		for _, t := range md {
			for _, p := range t.Partitions {
				if len(p.Isr) < len(p.Replicas) {
					short++
				}
				before[p.Leader]++
			}
		}
		if short == 0 {
			break
		}
		if time.Since(begin) > inSyncWait {
			slog.Warn("partitions not in sync, electing preferred leaders anyway", "cluster", c, "partitions", short, "waited", inSyncWait)
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes: preferred leaders on %s: %d partitions under-replicated: %w", c, short, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	res, err := a.ElectLeaders(sarama.PreferredElection, parts)
	if err != nil {
		return fmt.Errorf("processes: preferred leader election on %s: %w", c, err)
	}
	var moved, already, unavailable int
	for topic, ps := range res {
		for p, r := range ps {
			switch {
			case r == nil || errors.Is(r.ErrorCode, sarama.ErrNoError):
				moved++
			case errors.Is(r.ErrorCode, sarama.ErrElectionNotNeeded):
				already++
			case errors.Is(r.ErrorCode, sarama.ErrPreferredLeaderNotAvailable):
				unavailable++
			default:
				return fmt.Errorf("processes: preferred leader election of %s/%d on %s: %w", topic, p, c, r.ErrorCode)
			}
		}
	}
	slog.Info("preferred leaders elected", "cluster", c, "moved", moved, "already_preferred", already, "not_in_sync", unavailable, "leaders_per_broker_before", before)
	return nil
}

// Brokers returns the number of running brokers of cluster.
func (tp *topology) Brokers(_ context.Context, c controller.Cluster) (int, error) {
	cl, err := tp.cluster(c)
	if err != nil {
		return 0, err
	}
	return len(cl.Running()), nil
}

// Shutdown stops both clusters, the proxies and the link, and removes the
// run directory unless it is kept.
func (tp *topology) Shutdown() {
	for _, cl := range []*kafkaproc.Cluster{tp.src, tp.dst} {
		if cl != nil {
			if err := cl.Close(); err != nil {
				slog.Warn("processes cluster close failed", "cluster", cl.Name(), "err", err)
			}
		}
	}
	tp.mu.Lock()
	ps := tp.proxies
	tp.proxies = nil
	tp.mu.Unlock()
	for _, p := range ps {
		_ = p.Close()
	}
	_ = tp.link.Close()
	if tp.remove != "" {
		if err := os.RemoveAll(tp.remove); err != nil {
			slog.Warn("processes run directory not removed", "dir", tp.remove, "err", err)
		}
	} else if tp.dir != "" {
		slog.Info("processes run directory kept", "dir", tp.dir)
	}
}
