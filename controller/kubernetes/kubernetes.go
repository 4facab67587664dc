// Package kubernetes is kmt's Kubernetes target: the controller.Target that
// acts on two real regions (or two namespaces of one cluster) through
// client-go. Broker kills delete pods and wait for the StatefulSet's
// replacement to be Ready, resizes and replicator scaling go through the
// scale subresource, WAN faults are Chaos Mesh NetworkChaos resources created
// through the dynamic client, topic changes use the Kafka admin API, and
// measurements come from Prometheus queries over the fleet's metrics.
//
// The package also holds Advertise, the helper a Kafka broker's init
// container runs (kmt k8s advertise) to find the external address of its
// per-pod LoadBalancer Service.
package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// Defaults of Config, matching the manifests under deploy/.
const (
	DefaultSourceNamespace      = "kmt-source"
	DefaultDestinationNamespace = "kmt-destination"
	DefaultBrokerStatefulSet    = "kafka-broker"
	DefaultReplicatorDeployment = "mirrormaker2"
	DefaultProducerDeployment   = "kmt-producer"
	DefaultConsumerDeployment   = "kmt-consumer"
	DefaultWorkloadContainer    = "kmt"
)

// ExternalServiceLabel marks the per-broker LoadBalancer Services through
// which the other region reaches the source brokers. The target reads their
// addresses to aim WAN faults at them.
const ExternalServiceLabel = "kmt.dev/broker-external"

// Config tells the target where the workload lives. Zero fields take the
// defaults documented on each field.
type Config struct {
	// SourceNamespace holds the source Kafka cluster and the producers.
	// Default "kmt-source".
	SourceNamespace string
	// DestinationNamespace holds the destination Kafka cluster, the
	// replicator, the consumers and the NetworkChaos resources.
	// Default "kmt-destination".
	DestinationNamespace string
	// BrokerStatefulSet names the broker StatefulSet in both namespaces.
	// Default "kafka-broker". Broker id N is its pod ordinal N.
	BrokerStatefulSet string
	// ReplicatorDeployment names the replicator Deployment in the
	// destination namespace. Default "mirrormaker2".
	ReplicatorDeployment string
	// ProducerDeployment and ConsumerDeployment name the kmt fleet, which
	// CreateTopic extends. Defaults "kmt-producer" and "kmt-consumer".
	ProducerDeployment string
	ConsumerDeployment string
	// WorkloadContainer is the kmt container in those Deployments, whose
	// KMT_TOPICS variable lists the topics. Default "kmt".
	WorkloadContainer string

	// SourceAddresses are the source brokers' addresses as the replicator
	// reaches them across the WAN (hosts or IPs, no ports); WAN faults are
	// aimed at them. Default: the addresses of the LoadBalancer Services
	// labelled kmt.dev/broker-external in the source namespace; when there
	// are none (one cluster), the source broker pods are selected directly.
	SourceAddresses []string

	// SourceKafka and DestinationKafka reach the two Kafka clusters for
	// AddPartitions and CreateTopic. Without brokers those actions return
	// an error saying so.
	SourceKafka      kafkaconf.Conn
	DestinationKafka kafkaconf.Conn
	// AccountingTopic is the compacted topic the fleet's pods publish their
	// accounting into, on both clusters (Preflight and Reconcile read it).
	// Default fleet.DefaultTopic.
	AccountingTopic string
	// TopicPrefix is the prefix the replicator adds to destination topic
	// names. Default "".
	TopicPrefix string
	// ReplicationFactor of topics CreateTopic creates. Default 3.
	ReplicationFactor int16

	// PrometheusURL is the Prometheus server Sample queries, e.g.
	// http://kube-prometheus-stack-prometheus.monitoring.svc:9090.
	// Required for Sample.
	PrometheusURL string
	// HTTPClient queries Prometheus. Default a client with a 10 s timeout.
	HTTPClient *http.Client
	// LatencyWindow is the range over which Sample computes latency
	// percentiles. Default 30s.
	LatencyWindow time.Duration

	// PollInterval is how often waits re-read the cluster. Default 2s.
	PollInterval time.Duration
	// ReadyTimeout bounds every wait (a replacement broker Ready, a scale
	// settled, a fault injected or recovered). Default 10m.
	ReadyTimeout time.Duration
	// BrokerGracePeriod is the termination grace given to a killed broker.
	// Default 1s: the JVM gets SIGKILL a second after SIGTERM, abrupt enough
	// to skip a controlled shutdown, while the StatefulSet still waits for
	// the old container to be gone before starting its replacement (a grace
	// period of 0 would force-delete and could run two brokers on one
	// volume).
	BrokerGracePeriod time.Duration
	// FaultTTL is the Chaos Mesh duration set on every NetworkChaos, so a
	// fault left behind by a controller that died without cleaning up heals
	// by itself. Default 2h.
	FaultTTL time.Duration
	// Logger receives the target's progress messages. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.SourceNamespace, DefaultSourceNamespace)
	def(&c.DestinationNamespace, DefaultDestinationNamespace)
	def(&c.BrokerStatefulSet, DefaultBrokerStatefulSet)
	def(&c.ReplicatorDeployment, DefaultReplicatorDeployment)
	def(&c.ProducerDeployment, DefaultProducerDeployment)
	def(&c.ConsumerDeployment, DefaultConsumerDeployment)
	def(&c.WorkloadContainer, DefaultWorkloadContainer)
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 3
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.LatencyWindow <= 0 {
		c.LatencyWindow = 30 * time.Second
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 10 * time.Minute
	}
	if c.BrokerGracePeriod <= 0 {
		c.BrokerGracePeriod = time.Second
	}
	if c.FaultTTL <= 0 {
		c.FaultTTL = 2 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Target acts on the two regions. It is safe for concurrent use.
type Target struct {
	src, dst Client
	dyn      dynamic.Interface
	cfg      Config
	log      *slog.Logger
	run      string // suffix making this target's resource names unique

	mu     sync.Mutex
	faults map[string]bool // NetworkChaos names created and not yet removed
	seq    int
	prom   *promState
}

var _ controller.Target = (*Target)(nil)

// New returns a target acting on source and destination (the same clientset
// twice when both regions are namespaces of one cluster) and creating Chaos
// Mesh resources in the destination cluster through dyn.
func New(source, destination Client, dyn dynamic.Interface, cfg Config) (*Target, error) {
	if source == nil || destination == nil {
		return nil, errors.New("kubernetes target: source and destination clientsets are required")
	}
	if dyn == nil {
		return nil, errors.New("kubernetes target: a dynamic client for Chaos Mesh resources is required")
	}
	cfg.setDefaults()
	return &Target{
		src: source, dst: destination, dyn: dyn, cfg: cfg,
		log:    cfg.Logger.With("target", "kubernetes"),
		run:    fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff),
		faults: map[string]bool{},
		prom:   newPromState(),
	}, nil
}

// Name returns "kubernetes".
func (t *Target) Name() string { return "kubernetes" }

// client returns the clientset and namespace of cluster.
func (t *Target) client(cluster controller.Cluster) (Client, string, error) {
	switch cluster {
	case controller.Source:
		return t.src, t.cfg.SourceNamespace, nil
	case controller.Destination:
		return t.dst, t.cfg.DestinationNamespace, nil
	default:
		return nil, "", fmt.Errorf("cluster %q is not source or destination", cluster)
	}
}

// Close removes every NetworkChaos this target created and has not removed
// yet (the abort path), waiting until Chaos Mesh has recovered each one. It
// tries them all and returns the errors joined.
func (t *Target) Close(ctx context.Context) error {
	t.mu.Lock()
	var names []string
	for n := range t.faults {
		names = append(names, n)
	}
	t.mu.Unlock()
	var errs []error
	for _, n := range names {
		if err := t.removeChaos(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	if len(names) > 0 {
		t.log.Info("faults removed on close", "count", len(names)-len(errs))
	}
	return errors.Join(errs...)
}

// poll calls done every PollInterval until it reports true, returns an
// error, ctx ends or ReadyTimeout passes; what names the wait in errors.
func (t *Target) poll(ctx context.Context, what string, done func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(t.cfg.PollInterval)
	defer tick.Stop()
	var last error
	for {
		ok, err := done(ctx)
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
}
