package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/controller/kubernetes"
	"github.com/kmtproject/kmt/controller/scenario"
	"github.com/kmtproject/kmt/internal/exit"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// k8sCommand holds the helpers kmt's Kubernetes manifests run.
func k8sCommand() *cli.Command {
	return &cli.Command{
		Name:  "k8s",
		Usage: "helpers for kmt's Kubernetes deployment",
		Subcommands: []*cli.Command{{
			Name:  "advertise",
			Usage: "write a Kafka broker's advertised.listeners, waiting for its per-pod LoadBalancer Service's external address (init container)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "namespace", Usage: "(required) the broker pod's namespace (downward API)"},
				&cli.StringFlag{Name: "pod", Usage: "(required) the broker pod's name (downward API)"},
				&cli.PathFlag{Name: "output", Usage: "(required) file to write the advertised.listeners line to"},
				&cli.StringFlag{Name: "headless-service", Value: "kafka-broker", Usage: "headless Service of the broker StatefulSet"},
				&cli.IntFlag{Name: "internal-port", Value: 9092, Usage: "port of the INTERNAL listener"},
				&cli.IntFlag{Name: "external-port", Value: 9094, Usage: "port of the EXTERNAL listener"},
				&cli.StringFlag{Name: "external-service", Usage: "the pod's LoadBalancer Service, {pod} replaced by the pod name (empty: advertise the internal name on both listeners)"},
				&cli.StringFlag{Name: "template-service", Usage: "when the external Service is missing, create it as a copy of this Service selecting the pod"},
				&cli.BoolFlag{Name: "wait-dns", Usage: "wait until the load balancer's host name resolves"},
				&cli.DurationFlag{Name: "timeout", Value: 15 * time.Minute, Usage: "give up after this long"},
				&cli.PathFlag{Name: "kubeconfig", Usage: "kubeconfig file (default: the pod's service account)"},
			},
			Action: k8sAdvertise,
		}},
	}
}

func k8sAdvertise(c *cli.Context) error {
	for _, f := range []string{"namespace", "pod", "output"} {
		if c.String(f) == "" {
			return exit.Usagef("k8s advertise: --%s is required", f)
		}
	}
	for _, p := range []string{"internal-port", "external-port"} {
		if v := c.Int(p); v < 1 || v > 65535 {
			return exit.Usagef("--%s: %d is not a TCP port", p, v)
		}
	}
	if c.Duration("timeout") <= 0 {
		return exit.Usagef("--timeout: must be positive")
	}
	rc, err := kubernetes.RESTConfig(c.Path("kubeconfig"), "")
	if err != nil {
		return exit.Usagef("--kubeconfig: %v", err)
	}
	cs, err := kubernetes.NewClient(rc)
	if err != nil {
		return fmt.Errorf("advertise: %w", err)
	}
	a, err := kubernetes.Advertise(c.Context, cs, kubernetes.AdvertiseConfig{
		Namespace:       c.String("namespace"),
		Pod:             c.String("pod"),
		HeadlessService: c.String("headless-service"),
		InternalPort:    c.Int("internal-port"),
		ExternalPort:    c.Int("external-port"),
		ExternalService: c.String("external-service"),
		TemplateService: c.String("template-service"),
		WaitDNS:         c.Bool("wait-dns"),
		Timeout:         c.Duration("timeout"),
	})
	if err != nil {
		return err
	}
	out := c.Path("output")
	tmp, err := os.CreateTemp(filepath.Dir(out), ".advertise-*")
	if err != nil {
		return fmt.Errorf("advertise: --output %s: %w", out, err)
	}
	_, werr := tmp.WriteString(a.Properties())
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("advertise: write %s: %w", out, errors.Join(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("advertise: %w", err)
	}
	slog.Info("advertised listeners written", "file", out, "internal", a.Internal, "external", a.External)
	return nil
}

// k8sTargetFlags are the flags of `kmt controller run --target kubernetes`,
// including the TLS and SASL flags of the controller's own Kafka connections
// (--k8s-source-tls-ca-file, --k8s-destination-sasl-mechanism, ...).
func k8sTargetFlags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "prometheus-url", Usage: "Prometheus the kubernetes target reads the fleet's metrics from (required with --target kubernetes)"},
		&cli.PathFlag{Name: "k8s-source-kubeconfig", Usage: "kubeconfig of the source cluster (default: in-cluster service account, else $KUBECONFIG)"},
		&cli.StringFlag{Name: "k8s-source-context", Usage: "kubeconfig context of the source cluster (default: the current one)"},
		&cli.PathFlag{Name: "k8s-destination-kubeconfig", Usage: "kubeconfig of the destination cluster (default: in-cluster service account, else $KUBECONFIG)"},
		&cli.StringFlag{Name: "k8s-destination-context", Usage: "kubeconfig context of the destination cluster (default: the current one)"},
		&cli.StringFlag{Name: "k8s-accounting-topic", Value: fleet.DefaultTopic, Usage: "compacted topic, on both clusters, that the fleet's kmt produce and kmt consume pods publish their accounting into (the final step reconciles it through --k8s-*-bootstrap)"},
		&cli.StringFlag{Name: "k8s-topic-prefix", Usage: "prefix the replicator adds to destination topic names (as the consumers' --topic-prefix)"},
		&cli.StringFlag{Name: "k8s-source-namespace", Value: kubernetes.DefaultSourceNamespace, Usage: "namespace of the source Kafka cluster and the producers"},
		&cli.StringFlag{Name: "k8s-destination-namespace", Value: kubernetes.DefaultDestinationNamespace, Usage: "namespace of the destination Kafka cluster, the replicator and the consumers"},
		&cli.StringFlag{Name: "k8s-broker-statefulset", Value: kubernetes.DefaultBrokerStatefulSet, Usage: "broker StatefulSet in both namespaces"},
		&cli.StringFlag{Name: "k8s-replicator-deployment", Value: kubernetes.DefaultReplicatorDeployment, Usage: "replicator Deployment in the destination namespace"},
		&cli.StringSliceFlag{Name: "k8s-source-addresses", Usage: "source brokers' external hosts/IPs the WAN faults aim at (default: from the per-broker LoadBalancer Services)"},
		&cli.StringSliceFlag{Name: "k8s-source-bootstrap", Usage: "source Kafka host:port list for add-partitions and create-topic"},
		&cli.StringSliceFlag{Name: "k8s-destination-bootstrap", Usage: "destination Kafka host:port list for add-partitions"},
		&cli.DurationFlag{Name: "k8s-ready-timeout", Value: 10 * time.Minute, Usage: "bound on every wait (replacement broker Ready, scale settled, fault injected)"},
		&cli.DurationFlag{Name: "k8s-latency-window", Value: 30 * time.Second, Usage: "range of the Prometheus latency percentile queries"},
	}
	flags = append(flags, connFlags(k8sSourcePrefix)...)
	return append(flags, connFlags(k8sDestinationPrefix)...)
}

// k8sTargetOwnFlags is how many of k8sTargetFlags come before the TLS and
// SASL flags (which have their own help categories).
const k8sTargetOwnFlags = 14

// Prefixes of the kubernetes target's Kafka security flags.
const (
	k8sSourcePrefix      = "k8s-source-"
	k8sDestinationPrefix = "k8s-destination-"
)

// k8sKafkaConns builds the kubernetes target's admin connections to the
// source and destination Kafka clusters (used by add-partitions and
// create-topic) from --k8s-{source,destination}-bootstrap and their TLS and
// SASL flags. A cluster without a bootstrap list gets an empty connection;
// security flags without one are a usage error naming the flag.
func k8sKafkaConns(c *cli.Context) (src, dst kafkaconf.Conn, err error) {
	conn := func(prefix string) (kafkaconf.Conn, error) {
		flag := prefix + "bootstrap"
		cn := kafkaconf.Conn{Brokers: splitList(c.StringSlice(flag)), ClientID: "kmt-controller"} // connect timeout: the default 30s
		if len(cn.Brokers) == 0 {
			for _, f := range connFlags(prefix) {
				if name := f.Names()[0]; c.IsSet(name) {
					return cn, exit.Usagef("%s: --%s needs --%s (the brokers it secures)", c.Command.Name, name, flag)
				}
			}
			return cn, nil
		}
		if err := cn.Validate(); err != nil {
			return cn, exit.Usagef("%s: --%s: %v", c.Command.Name, flag, err)
		}
		return connFromFlags(c, prefix, cn)
	}
	if src, err = conn(k8sSourcePrefix); err != nil {
		return src, dst, err
	}
	dst, err = conn(k8sDestinationPrefix)
	return src, dst, err
}

// kubernetesTarget builds the kubernetes target from the flags of
// `kmt controller run --target kubernetes`.
func kubernetesTarget(c *cli.Context, sc *scenario.Scenario) (controller.Target, error) {
	if c.String("prometheus-url") == "" {
		return nil, exit.Usagef("--prometheus-url: required with --target kubernetes (e.g. http://kube-prometheus-stack-prometheus.monitoring.svc:9090)")
	}
	for _, f := range []string{"k8s-ready-timeout", "k8s-latency-window"} {
		if c.Duration(f) <= 0 {
			return nil, exit.Usagef("--%s: must be positive", f)
		}
	}
	srcCfg, err := kubernetes.RESTConfig(c.Path("k8s-source-kubeconfig"), c.String("k8s-source-context"))
	if err != nil {
		return nil, exit.Usagef("--k8s-source-kubeconfig/--k8s-source-context: %v", err)
	}
	dstCfg, err := kubernetes.RESTConfig(c.Path("k8s-destination-kubeconfig"), c.String("k8s-destination-context"))
	if err != nil {
		return nil, exit.Usagef("--k8s-destination-kubeconfig/--k8s-destination-context: %v", err)
	}
	src, _, err := kubernetes.Clients(srcCfg)
	if err != nil {
		return nil, err
	}
	dst, dyn, err := kubernetes.Clients(dstCfg)
	if err != nil {
		return nil, err
	}
	srcKafka, dstKafka, err := k8sKafkaConns(c)
	if err != nil {
		return nil, err
	}
	if sc.Workload.MirrorMode != "" {
		slog.Warn("kubernetes target: workload.mirror_mode applies to kmt's reference mirror on the local target; the deployed replicator runs as configured", "mirror_mode", sc.Workload.MirrorMode)
	}
	slog.Info("kubernetes target: the workload is the deployed kmt fleet; the scenario's rate, sizes and topics come from its kmt-workload ConfigMap",
		"scenario", sc.Name, "source", srcCfg.Host, "destination", dstCfg.Host)
	return kubernetes.New(src, dst, dyn, kubernetes.Config{
		SourceNamespace:      c.String("k8s-source-namespace"),
		DestinationNamespace: c.String("k8s-destination-namespace"),
		BrokerStatefulSet:    c.String("k8s-broker-statefulset"),
		ReplicatorDeployment: c.String("k8s-replicator-deployment"),
		SourceAddresses:      c.StringSlice("k8s-source-addresses"),
		SourceKafka:          srcKafka,
		DestinationKafka:     dstKafka,
		PrometheusURL:        c.String("prometheus-url"),
		AccountingTopic:      c.String("k8s-accounting-topic"),
		TopicPrefix:          c.String("k8s-topic-prefix"),
		ReadyTimeout:         c.Duration("k8s-ready-timeout"),
		LatencyWindow:        c.Duration("k8s-latency-window"),
	})
}
