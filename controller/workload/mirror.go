package workload

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/mirror"
)

// MirrorSessionTimeout is the reference mirror's group session timeout:
// how long after an abrupt kill its partitions stay unclaimed.
const MirrorSessionTimeout = 6 * time.Second

// Consumer group ids of the workload.
const (
	MirrorGroup   = "kmt-mirror"
	ConsumerGroup = "kmt-consumer"
)

// KMTMirror starts kmt's reference mirror: spec.Workers workers in group
// MirrorGroup, reading the source and writing the destination through the
// topology's replicator connections.
func KMTMirror(_ context.Context, topo Topology, spec ReplicatorSpec) (Replicator, error) {
	mode := mirror.Safe
	if spec.Unsafe {
		mode = mirror.UnsafeCommitBeforeAck
	}
	m, err := mirror.New(topo.ReplicatorConn(controller.Source, "kmt-mirror"), topo.ReplicatorConn(controller.Destination, "kmt-mirror"), mirror.Config{
		TopicRegex: spec.TopicRegex, TopicPrefix: spec.TopicPrefix, Group: MirrorGroup, Workers: spec.Workers, Mode: mode,
		Faults: spec.Faults, SessionTimeout: MirrorSessionTimeout,
	}, spec.Metrics)
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	r := &kmtMirror{m: m, topo: topo, workers: min(spec.Workers, max(spec.Partitions, 1))}
	r.run = start(context.Background(), m.Run)
	return r, nil
}

type kmtMirror struct {
	m       *mirror.Mirror
	topo    Topology
	run     *proc
	workers int
}

func (r *kmtMirror) Workers() int                         { return r.m.Workers() }
func (r *kmtMirror) Scale(_ context.Context, n int) error { return r.m.Scale(n) }
func (r *kmtMirror) Kill(context.Context) error           { return r.m.Scale(r.m.Kill()) }
func (r *kmtMirror) Lag() int64                           { return max(r.m.Counters().Lag, 0) }
func (r *kmtMirror) Group() string                        { return MirrorGroup }
func (r *kmtMirror) Stop() error                          { return r.run.stop() }

// Ready waits until the mirror's group on the source is stable with every
// worker holding partitions.
func (r *kmtMirror) Ready(ctx context.Context) error {
	return waitGroup(ctx, r.topo, controller.Source, MirrorGroup, r.workers)
}

// waitGroup waits until group on cluster is stable with at least want
// members holding partitions.
func waitGroup(ctx context.Context, topo Topology, c controller.Cluster, group string, want int) error {
	for {
		n, err := stableMembers(ctx, topo, c, group)
		if err == nil && n >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("group %s on %s: %d of %d members hold partitions (last error: %v)", group, c, n, want, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stableMembers returns how many members of a stable group hold partitions.
func stableMembers(ctx context.Context, topo Topology, c controller.Cluster, group string) (int, error) {
	var n int
	err := Admin(ctx, topo.Conn(c, "kmt-admin"), func(a sarama.ClusterAdmin) error {
		gs, err := a.DescribeConsumerGroups([]string{group})
		if err != nil {
			return err
		}
		for _, g := range gs {
			if g.State != "Stable" {
				continue
			}
			for _, m := range g.Members {
				if as, err := m.GetMemberAssignment(); err == nil && len(as.Topics) > 0 {
					n++
				}
			}
		}
		return nil
	})
	return n, err
}
