// Package local is the local target: two embedded Kafka-compatible clusters
// ("source" and "destination") on 127.0.0.1, a fault-injecting WAN link
// between them, kmt's reference mirror replicating across it, and the
// producers and validating consumers of the workload, all in one process.
// The workload is package workload's; this package is the embedded
// topology under it. Target implements controller.Target and
// controller.Workload, so the same scenario runs here as on real Kafka
// processes and on Kubernetes.
package local

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/controller/workload"
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/message"
	"github.com/kmtproject/kmt/internal/wan"
	"github.com/kmtproject/kmt/mirror"
	"github.com/kmtproject/kmt/producer"
)

// Option configures a Target.
type Option func(*options)

type options struct {
	wl          []workload.Option
	clusterOpts []embedded.Option
	conn        func(kafkaconf.Conn) kafkaconf.Conn
}

func wl(o workload.Option) Option { return func(op *options) { op.wl = append(op.wl, o) } }

// Registry registers every component's metrics with reg. Default: a fresh
// private registry (metrics not exported).
func Registry(reg prometheus.Registerer) Option { return wl(workload.Registry(reg)) }

// MirrorFaults makes the reference mirror inject faults (self-tests of the
// tester). Default: none.
func MirrorFaults(f mirror.Faults) Option { return wl(workload.MirrorFaults(f)) }

// Trim deletes, every interval, what the mirror (on the source) and the
// consumers (on the destination) have committed past, so long runs keep a
// bounded amount of data in memory. Default 0: keep everything (tests read
// the topics back).
func Trim(interval time.Duration) Option { return wl(workload.Trim(interval)) }

// TrimKeep makes trimming spare every record younger than d (by record
// timestamp, the producer's creation time), so a person can still read the
// last d of traffic with any Kafka tool while the run goes on. Default 0:
// trim everything committed past.
func TrimKeep(d time.Duration) Option { return wl(workload.TrimKeep(d)) }

// ClusterOptions are passed to both embedded clusters (TLS, SASL). Default:
// none.
func ClusterOptions(opts ...embedded.Option) Option {
	return func(o *options) { o.clusterOpts = append(o.clusterOpts, opts...) }
}

// ConnHook adjusts every connection's settings (credentials, TLS) before use.
// Default: none.
func ConnHook(f func(kafkaconf.Conn) kafkaconf.Conn) Option { return func(o *options) { o.conn = f } }

// AnomalyLimit caps how many per-stream anomalies the outcome lists.
// Default 50.
func AnomalyLimit(n int) Option { return wl(workload.AnomalyLimit(n)) }

// ConsumerIgnore makes the consumers skip the records ignore returns true
// for, as a buggy consumer would (self-tests of loss attribution). Default:
// none.
func ConsumerIgnore(ignore func(*sarama.ConsumerMessage) bool) Option {
	return wl(workload.ConsumerIgnore(ignore))
}

// ConsumerTune adjusts the consumers' sarama configuration. Default: none.
func ConsumerTune(f func(*sarama.Config)) Option { return wl(workload.ConsumerTune(f)) }

// TopicPrefix makes the reference mirror write prefix+topic on the
// destination (as MirrorMaker 2's default replication policy writes
// "source.topic"); the consumers read those names. Default "".
func TopicPrefix(p string) Option { return wl(workload.TopicPrefix(p)) }

// MirrorSessionTimeout is the reference mirror's group session timeout on
// the local target: how long after an abrupt kill its partitions stay
// unclaimed.
const MirrorSessionTimeout = workload.MirrorSessionTimeout

// Consumer group ids of the local topology.
const (
	MirrorGroup   = workload.MirrorGroup
	ConsumerGroup = workload.ConsumerGroup
)

// Target is a running local topology: the shared workload on two embedded
// clusters.
type Target struct {
	*workload.Target
	topo *topology
}

// topology is the embedded clusters and the WAN link.
type topology struct {
	src, dst *embedded.Cluster
	link     *wan.Link
	dstLink  *wan.Link
	hook     func(kafkaconf.Conn) kafkaconf.Conn
}

// longestProducerID is the longest producer id the local target uses for
// w: producers are named producer-1, producer-2, ... and create-topic and
// add-partitions steps start more; the check allows a thousand of those.
func longestProducerID(w scenario.Workload) string {
	return "producer-" + strconv.Itoa(w.Producers+1000)
}

// CheckWorkload reports what in w the local target cannot run, naming the
// workload field (workload.message_size: ...), before anything starts: the
// producers' settings as their producer.Config.Validate would refuse them
// after both clusters had started.
func CheckWorkload(w scenario.Workload) error {
	enc := message.Headers
	if w.Headers != nil && !*w.Headers {
		enc = message.Body
	}
	err := producer.Config{ID: longestProducerID(w), Topics: []string{"kmt-0"}, Rate: w.Rate,
		MessageSize: w.MessageSize, Encoding: enc}.Validate()
	var ce *producer.ConfigError
	if errors.As(err, &ce) {
		field := map[string]string{"MessageSize": "message_size", "Rate": "rate"}[ce.Field]
		if field == "" {
			field = ce.Field
		}
		return fmt.Errorf("workload.%s: %v: %s", field, ce.Value, ce.Reason)
	}
	return err
}

// New starts the two embedded clusters and the WAN link. w must have its
// defaults applied (scenario.Parse or scenario.FromWorkload do); a workload
// CheckWorkload refuses is refused before anything starts.
func New(w scenario.Workload, opts ...Option) (*Target, error) {
	if err := CheckWorkload(w); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	topo := &topology{hook: o.conn}
	// Short group sessions: a killed replicator's partitions move on in
	// seconds, which keeps time-scaled scenarios meaningful.
	o.clusterOpts = append([]embedded.Option{embedded.KfakeOpts(kfake.GroupMinSessionTimeout(500 * time.Millisecond))}, o.clusterOpts...)
	var err error
	if topo.src, err = embedded.Start(append([]embedded.Option{embedded.Name("source"), embedded.Brokers(w.Brokers)}, o.clusterOpts...)...); err != nil {
		return nil, err
	}
	if topo.dst, err = embedded.Start(append([]embedded.Option{embedded.Name("destination"), embedded.Brokers(w.Brokers)}, o.clusterOpts...)...); err != nil {
		topo.src.Close()
		return nil, err
	}
	topo.link = wan.New(wan.Name("wan"))
	topo.dstLink = wan.New(wan.Name("destination"))
	if d := w.DestinationLatency.D(); d > 0 {
		if err := topo.dstLink.Set(wan.Conditions{Latency: d}); err != nil {
			topo.Shutdown()
			return nil, fmt.Errorf("local: destination latency: %w", err)
		}
	}
	return &Target{Target: workload.New(topo, w, o.wl...), topo: topo}, nil
}

// Source returns the embedded source cluster.
func (t *Target) Source() *embedded.Cluster { return t.topo.src }

// Destination returns the embedded destination cluster.
func (t *Target) Destination() *embedded.Cluster { return t.topo.dst }

// Name returns "local".
func (*topology) Name() string { return "local" }

func (tp *topology) cluster(c controller.Cluster) (*embedded.Cluster, error) {
	switch c {
	case controller.Source:
		return tp.src, nil
	case controller.Destination:
		return tp.dst, nil
	}
	return nil, fmt.Errorf("local: unknown cluster %q", c)
}

// Conn returns the settings to reach cluster c directly.
func (tp *topology) Conn(c controller.Cluster, clientID string) kafkaconf.Conn {
	cl := tp.dst
	if c == controller.Source {
		cl = tp.src
	}
	k := kafkaconf.Conn{Brokers: cl.Addrs(), ClientID: clientID, ConnectTimeout: 30 * time.Second}
	if tp.hook != nil {
		k = tp.hook(k)
	}
	return k
}

// ReplicatorConn returns the settings to reach cluster c through the link
// the replicator's traffic crosses: the WAN to the source, the destination
// link (latency of a replicator far from the destination) to the
// destination.
func (tp *topology) ReplicatorConn(c controller.Cluster, clientID string) kafkaconf.Conn {
	k := tp.Conn(c, clientID)
	if c == controller.Source {
		k.Dialer = tp.link
	} else {
		k.Dialer = tp.dstLink
	}
	return k
}

// WAN returns the link between the regions.
func (tp *topology) WAN() *wan.Link { return tp.link }

// KillBroker kills broker id of cluster ("random": any live one).
func (tp *topology) KillBroker(_ context.Context, c controller.Cluster, id string) (string, error) {
	cl, err := tp.cluster(c)
	if err != nil {
		return "", err
	}
	live := cl.Brokers()
	if len(live) < 2 {
		return "", fmt.Errorf("local: %s has %d broker(s) left; killing one would stop the cluster", c, len(live))
	}
	var n int32
	if id == "random" {
		// The embedded cluster's controller (topic and partition creation)
		// is its highest broker id and never moves, so a random kill
		// spares it, as a KRaft cluster's separate controllers would be.
		n = live[rand.IntN(len(live)-1)]
	} else {
		v, err := strconv.Atoi(id)
		if err != nil {
			return "", fmt.Errorf("local: broker id %q: %w", id, err)
		}
		n = int32(v)
	}
	if err := cl.KillBroker(n); err != nil {
		return "", err
	}
	return strconv.Itoa(int(n)), nil
}

// RestartBroker restarts killed broker id of cluster.
func (tp *topology) RestartBroker(_ context.Context, c controller.Cluster, id string) error {
	cl, err := tp.cluster(c)
	if err != nil {
		return err
	}
	v, err := strconv.Atoi(id)
	if err != nil {
		return fmt.Errorf("local: broker id %q: %w", id, err)
	}
	return cl.RestartBroker(int32(v))
}

// ResizeCluster sets the number of live brokers of cluster.
func (tp *topology) ResizeCluster(_ context.Context, c controller.Cluster, n int) error {
	cl, err := tp.cluster(c)
	if err != nil {
		return err
	}
	return cl.Resize(n)
}

// Brokers returns the number of live brokers of cluster.
func (tp *topology) Brokers(_ context.Context, c controller.Cluster) (int, error) {
	cl, err := tp.cluster(c)
	if err != nil {
		return 0, err
	}
	return len(cl.Brokers()), nil
}

// Shutdown closes the links and both clusters.
func (tp *topology) Shutdown() {
	_ = tp.link.Close()
	_ = tp.dstLink.Close()
	tp.src.Close()
	tp.dst.Close()
}
