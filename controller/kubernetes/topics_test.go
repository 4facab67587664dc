package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
)

// startCluster starts an embedded Kafka cluster for the test.
func startCluster(t *testing.T, name string) *embedded.Cluster {
	t.Helper()
	return kafkatest.Embedded(t, embedded.Brokers(3), embedded.Name(name))
}

// partitions reads topic's partition count back from a cluster with a
// separate client.
func partitions(t *testing.T, c *embedded.Cluster, topic string) int {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafkaconf.DefaultVersion
	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		t.Fatal(err)
	}
	if md[0].Err != sarama.ErrNoError {
		return 0
	}
	return len(md[0].Partitions)
}

func createTopic(t *testing.T, c *embedded.Cluster, topic string, n int32) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafkaconf.DefaultVersion
	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: n, ReplicationFactor: 3}, false); err != nil {
		t.Fatal(err)
	}
}

func kafkaTarget(t *testing.T, src, dst *embedded.Cluster) (*Target, *simCluster, *simCluster) {
	t.Helper()
	ssim := newSimCluster(t, 0, deployment(srcNS, DefaultProducerDeployment, 2, "kmt-0,kmt-1"))
	dsim := newSimCluster(t, 0, deployment(dstNS, DefaultConsumerDeployment, 1, "kmt-0,kmt-1"))
	ssim.waitSettled(srcNS, "", DefaultProducerDeployment, 0, 2)
	dsim.waitSettled(dstNS, "", DefaultConsumerDeployment, 0, 1)
	cfg := testConfig()
	cfg.SourceKafka = kafkaconf.Conn{Brokers: src.Addrs(), ConnectTimeout: 10 * time.Second}
	cfg.DestinationKafka = kafkaconf.Conn{Brokers: dst.Addrs(), ConnectTimeout: 10 * time.Second}
	tg, err := New(ssim.cs, dsim.cs, newChaosMesh(t, false, 0).dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg, ssim, dsim
}

func TestAddPartitionsOnBothClusters(t *testing.T) {
	src, dst := startCluster(t, "source"), startCluster(t, "destination")
	createTopic(t, src, "kmt-0", 6)
	createTopic(t, dst, "kmt-0", 6)
	createTopic(t, src, "kmt-1", 6)
	createTopic(t, dst, "kmt-1", 12) // the replicator got there first
	tg, _, _ := kafkaTarget(t, src, dst)
	ctx := ctxT(t)
	if err := tg.AddPartitions(ctx, "kmt-0", 12); err != nil {
		t.Fatal(err)
	}
	if err := tg.AddPartitions(ctx, "kmt-1", 12); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c     *embedded.Cluster
		topic string
		want  int
	}{{src, "kmt-0", 12}, {dst, "kmt-0", 12}, {src, "kmt-1", 12}, {dst, "kmt-1", 12}} {
		if got := partitions(t, tc.c, tc.topic); got != tc.want {
			t.Errorf("%s %s: %d partitions, want %d", tc.c.Name(), tc.topic, got, tc.want)
		}
	}
	if err := tg.AddPartitions(ctx, "nope", 3); err == nil || !strings.Contains(err.Error(), "source: describe topic") {
		t.Fatalf("missing topic: %v", err)
	}
}

func topicsEnv(t *testing.T, sim *simCluster, ns, name string) string {
	t.Helper()
	obj, err := sim.cs.Tracker().Get(depGVR, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range obj.(*appsv1.Deployment).Spec.Template.Spec.Containers[0].Env {
		if e.Name == TopicsEnv {
			return e.Value
		}
	}
	return ""
}

func TestCreateTopicAddsItToTheWorkload(t *testing.T) {
	src, dst := startCluster(t, "source"), startCluster(t, "destination")
	tg, ssim, dsim := kafkaTarget(t, src, dst)
	ctx := ctxT(t)
	if err := tg.CreateTopic(ctx, "kmt-new", 4); err != nil {
		t.Fatal(err)
	}
	if got := partitions(t, src, "kmt-new"); got != 4 {
		t.Fatalf("source kmt-new has %d partitions, want 4", got)
	}
	if got := partitions(t, dst, "kmt-new"); got != 0 {
		t.Fatalf("destination has kmt-new with %d partitions before any replicator ran", got)
	}
	if got := topicsEnv(t, ssim, srcNS, DefaultProducerDeployment); got != "kmt-0,kmt-1,kmt-new" {
		t.Fatalf("producer KMT_TOPICS = %q", got)
	}
	if got := topicsEnv(t, dsim, dstNS, DefaultConsumerDeployment); got != "kmt-0,kmt-1,kmt-new" {
		t.Fatalf("consumer KMT_TOPICS = %q", got)
	}
	// Again: the topic exists and the Deployments already list it.
	ssim.cs.ClearActions()
	if err := tg.CreateTopic(ctx, "kmt-new", 4); err != nil {
		t.Fatal(err)
	}
	for _, a := range ssim.cs.Actions() {
		if a.GetVerb() == "patch" {
			t.Fatalf("second CreateTopic patched again: %+v", a)
		}
	}
	if got := topicsEnv(t, ssim, srcNS, DefaultProducerDeployment); got != "kmt-0,kmt-1,kmt-new" {
		t.Fatalf("producer KMT_TOPICS after repeat = %q", got)
	}
}

func TestTopicActionsNeedBrokers(t *testing.T) {
	sim := newSimCluster(t, 0)
	tg, err := New(sim.cs, sim.cs, newChaosMesh(t, false, 0).dyn, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	err = tg.CreateTopic(context.Background(), "x", 1)
	if err == nil || !strings.Contains(err.Error(), "--k8s-source-bootstrap") {
		t.Fatalf("error = %v", err)
	}
}

// TestAddPartitionsSecured grows a topic on two clusters that require
// mutual TLS and SCRAM: the target's admin connections carry the TLS and
// SASL settings of their kafkaconf.Conn. The partition counts are read back
// over a separate secured client.
func TestAddPartitionsSecured(t *testing.T) {
	pki := kafkatest.NewPKI(t, "kmt-test")
	cert, key := pki.Issue(t, "kmt-controller")
	tlsCfg, err := kafkaconf.TLSFiles{CAFile: pki.CAFile, CertFile: cert, KeyFile: key}.Config()
	if err != nil {
		t.Fatal(err)
	}
	secured := func(name string) (*embedded.Cluster, kafkaconf.Conn) {
		c := kafkatest.Embedded(t, embedded.Brokers(1), embedded.Name(name), embedded.TLS(pki.ServerTLS(t, true)),
			embedded.SASLUser(kafkaconf.ScramSHA256, "kmt", "s3cret-"+name))
		return c, kafkaconf.Conn{Brokers: c.Addrs(), ConnectTimeout: 10 * time.Second, TLS: tlsCfg,
			SASL: kafkaconf.SASL{Mechanism: kafkaconf.ScramSHA256, User: "kmt", Password: "s3cret-" + name}}
	}
	_, sconn := secured("source")
	_, dconn := secured("destination")
	ctx := ctxT(t)
	admin := func(conn kafkaconf.Conn) sarama.ClusterAdmin {
		t.Helper()
		cfg, err := conn.Sarama()
		if err != nil {
			t.Fatal(err)
		}
		client, err := kafkaconf.Connect(ctx, conn, cfg)
		if err != nil {
			t.Fatal(err)
		}
		a, err := sarama.NewClusterAdminFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a
	}
	sadmin, dadmin := admin(sconn), admin(dconn)
	for _, a := range []sarama.ClusterAdmin{sadmin, dadmin} {
		if err := a.CreateTopic("kmt-0", &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	ssim := newSimCluster(t, 0, deployment(srcNS, DefaultProducerDeployment, 1, "kmt-0"))
	dsim := newSimCluster(t, 0, deployment(dstNS, DefaultConsumerDeployment, 1, "kmt-0"))
	cfg := testConfig()
	cfg.SourceKafka, cfg.DestinationKafka = sconn, dconn
	tg, err := New(ssim.cs, dsim.cs, newChaosMesh(t, false, 0).dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.AddPartitions(ctx, "kmt-0", 6); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]sarama.ClusterAdmin{"source": sadmin, "destination": dadmin} {
		md, err := a.DescribeTopics([]string{"kmt-0"})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(md[0].Partitions); n != 6 {
			t.Errorf("%s: kmt-0 has %d partitions, want 6", name, n)
		}
	}
	// Without credentials the target's admin connection is refused, with
	// a message that names the cluster.
	cfg.SourceKafka = kafkaconf.Conn{Brokers: sconn.Brokers, ConnectTimeout: 2 * time.Second, TLS: tlsCfg}
	tg, err = New(ssim.cs, dsim.cs, newChaosMesh(t, false, 0).dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.AddPartitions(ctx, "kmt-0", 9); err == nil || !strings.Contains(err.Error(), "source") {
		t.Fatalf("AddPartitions without SASL: %v, want an error naming the source", err)
	}
}
