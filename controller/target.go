package controller

import (
	"context"
	"time"
)

// Cluster names one of the two Kafka clusters.
type Cluster string

// The two clusters of a replication test.
const (
	Source      Cluster = "source"
	Destination Cluster = "destination"
)

// NetworkSpec describes a degradation of the WAN link between the regions
// (the replicator's connections to the source cluster). Zero fields mean
// "unchanged from a healthy link".
type NetworkSpec struct {
	Latency   time.Duration `json:"latency,omitempty"`   // added one-way delay
	Jitter    time.Duration `json:"jitter,omitempty"`    // uniform +/- around Latency
	Bandwidth int64         `json:"bandwidth,omitempty"` // bytes per second cap, 0 = unlimited
	LossPct   float64       `json:"loss_pct,omitempty"`  // packet loss percent (kubernetes netem); locally: stall probability per write
	Stall     time.Duration `json:"stall,omitempty"`     // locally: how long a stalled write blocks
	ResetPct  float64       `json:"reset_pct,omitempty"` // percent of writes that reset the connection
	Cut       bool          `json:"cut,omitempty"`       // full partition: nothing crosses
}

// Target is where a scenario's actions take effect: the embedded local
// topology, real Kafka processes, or two Kubernetes clusters. Every method returns once the action
// has taken effect (a killed broker's replacement is Ready, a resize settled).
type Target interface {
	// Name returns "local", "processes" or "kubernetes".
	Name() string
	// KillBroker kills broker id ("random" picks one) of cluster and returns
	// the id it killed. On Kubernetes the StatefulSet recreates the pod.
	KillBroker(ctx context.Context, cluster Cluster, id string) (string, error)
	// RestartBroker brings a killed broker back (local); on Kubernetes it
	// deletes the pod and waits for its replacement.
	RestartBroker(ctx context.Context, cluster Cluster, id string) error
	// ResizeCluster sets the number of brokers of cluster.
	ResizeCluster(ctx context.Context, cluster Cluster, brokers int) error
	// Brokers returns the number of running brokers of cluster.
	Brokers(ctx context.Context, cluster Cluster) (int, error)
	// ScaleReplicator sets the number of replicator workers.
	ScaleReplicator(ctx context.Context, workers int) error
	// Replicators returns the current number of replicator workers.
	Replicators(ctx context.Context) (int, error)
	// KillReplicator stops every replicator worker abruptly, without
	// committing, and starts the same number again.
	KillReplicator(ctx context.Context) error
	// Network degrades the WAN link until the returned undo is called.
	Network(ctx context.Context, spec NetworkSpec) (undo func(context.Context) error, err error)
	// AddPartitions grows topic to total partitions on both clusters.
	AddPartitions(ctx context.Context, topic string, total int) error
	// CreateTopic creates a topic on the source cluster and adds it to the
	// workload.
	CreateTopic(ctx context.Context, topic string, partitions int) error
	// Sample returns the workload's cumulative counters now.
	Sample(ctx context.Context) (Sample, error)
	// Close removes every fault still injected.
	Close(ctx context.Context) error
}

// Sample is a point-in-time reading of the workload's cumulative counters and
// current latency, as the target measures them.
type Sample struct {
	Time       time.Time `json:"time"`
	Produced   uint64    `json:"produced"`
	Acked      uint64    `json:"acked"`
	Received   uint64    `json:"received"`
	Lost       uint64    `json:"lost"`
	Duplicated uint64    `json:"duplicated"`
	Reordered  uint64    `json:"reordered"`
	Late       uint64    `json:"late"`
	Foreign    uint64    `json:"foreign"`
	// TargetRate is the configured produce rate, messages per second.
	TargetRate float64 `json:"target_rate"`
	// P99 is the end-to-end latency 99th percentile over the last interval.
	P99 time.Duration `json:"p99_ns"`
	// P50 is the end-to-end latency median over the last interval.
	P50 time.Duration `json:"p50_ns"`
	// P999 is the end-to-end latency 99.9th percentile over the last interval.
	P999 time.Duration `json:"p999_ns"`
	// Lag is the consumers' lag behind the destination's high watermarks.
	Lag int64 `json:"lag"`
	// Backlog is the replication backlog: messages acknowledged on the
	// source and not yet in the destination, Acked - Received - Lost - Lag
	// (never below 0), and BacklogAge how long ago the oldest of them was
	// acknowledged. The Runner fills both from the samples so far (see
	// FillBacklog); targets leave them zero.
	Backlog    int64         `json:"backlog"`
	BacklogAge time.Duration `json:"backlog_age_ns"`
	// Behind is how many scheduled messages the producers have not sent
	// yet (0 when they keep up with the target rate).
	Behind uint64 `json:"behind"`
	// CPU is the CPU kmt's own process used over the last interval, in
	// cores (1.5 = one and a half cores busy), and SchedLatency the 90th
	// percentile of how long its runnable goroutines waited for a CPU
	// (large when the process needs more CPU than it gets), when the
	// workload runs in the process; 0 when not measured. The Runner fills
	// both.
	CPU          float64       `json:"cpu"`
	SchedLatency time.Duration `json:"sched_latency_ns"`
	// CPUPressure is the share of the last interval during which runnable
	// tasks on the machine waited for a CPU (Linux pressure stall
	// information, 0 to 1; 0 when unavailable or not measured): near 1 when
	// the machine kmt runs on is short of CPU, whoever else uses it.
	CPUPressure float64 `json:"cpu_pressure"`
	// InFlight counts missing messages still within the loss grace.
	InFlight int64 `json:"in_flight"`
	// LatencyFuture counts first arrivals created after they were received
	// (clock skew: the producer's clock ahead of the consumer's);
	// LatencyOverCap those older than the latency histograms' 1 h cap.
	// Cumulative.
	LatencyFuture  uint64 `json:"latency_future"`
	LatencyOverCap uint64 `json:"latency_over_1h"`
}
