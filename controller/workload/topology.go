package workload

import (
	"context"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/wan"
	"github.com/kmtproject/kmt/mirror"
)

// Topology is what a target runs besides the workload: the two clusters,
// the WAN link between the regions and the faults on them. The embedded
// clusters of the local target and the real Kafka processes of the
// processes target are topologies; the workload (producers, consumers,
// sampling, reconciliation) is the same on both.
type Topology interface {
	// Name returns the target's name: "local" or "processes".
	Name() string
	// Conn returns the settings a workload client (producer, consumer,
	// admin, read-back) uses to reach cluster, with clientID.
	Conn(c controller.Cluster, clientID string) kafkaconf.Conn
	// ReplicatorConn returns the settings the replicator uses to reach
	// cluster: the source across the WAN link.
	ReplicatorConn(c controller.Cluster, clientID string) kafkaconf.Conn
	// WAN returns the link the replicator's source traffic crosses.
	WAN() *wan.Link
	// KillBroker kills broker id of cluster ("random": any live one that
	// may die) and returns the id it killed.
	KillBroker(ctx context.Context, c controller.Cluster, id string) (string, error)
	// RestartBroker starts killed broker id of cluster again.
	RestartBroker(ctx context.Context, c controller.Cluster, id string) error
	// ResizeCluster sets the number of live brokers of cluster.
	ResizeCluster(ctx context.Context, c controller.Cluster, n int) error
	// Brokers returns the number of live brokers of cluster.
	Brokers(ctx context.Context, c controller.Cluster) (int, error)
	// Shutdown stops both clusters and the link.
	Shutdown()
}

// ReplicatorSpec is what the workload asks of a replicator.
type ReplicatorSpec struct {
	// TopicRegex selects the source topics to replicate.
	TopicRegex string
	// TopicPrefix is prepended to the destination topic names ("" keeps
	// the names).
	TopicPrefix string
	// Workers is the number of workers (processes) to start.
	Workers int
	// Partitions is the number of source partitions at the start: no more
	// workers than this can hold partitions.
	Partitions int
	// Unsafe makes kmt's reference mirror commit before the destination
	// acknowledged (self-tests of the tester).
	Unsafe bool
	// Faults are the reference mirror's injected faults (self-tests).
	Faults mirror.Faults
	// Metrics are the reference mirror's metrics.
	Metrics *mirror.Metrics
}

// Replicator is a running replicator: kmt's reference mirror or real
// MirrorMaker 2 processes.
type Replicator interface {
	// Workers returns the number of running workers.
	Workers() int
	// Scale sets the number of workers.
	Scale(ctx context.Context, n int) error
	// Kill kills every worker abruptly, without committing, and starts as
	// many again.
	Kill(ctx context.Context) error
	// Lag returns how many source messages are known to be left to
	// replicate; 0 when caught up or unknown.
	Lag() int64
	// Group returns the consumer group whose commits on the source say
	// what was replicated ("" when the replicator keeps its positions
	// elsewhere; the source is then never trimmed).
	Group() string
	// Ready waits until the workers hold their partitions, at most until
	// ctx is done.
	Ready(ctx context.Context) error
	// Stop stops every worker.
	Stop() error
}

// StartReplicator starts a replicator on a topology.
type StartReplicator func(ctx context.Context, topo Topology, spec ReplicatorSpec) (Replicator, error)
