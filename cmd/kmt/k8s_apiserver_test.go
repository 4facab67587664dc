package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kmtproject/kmt/controller/fleet"
	"github.com/kmtproject/kmt/internal/embedded"
	"github.com/kmtproject/kmt/internal/k8stest"
	"github.com/kmtproject/kmt/internal/kafkaconf"
	"github.com/kmtproject/kmt/internal/kafkatest"
	"github.com/kmtproject/kmt/internal/syncbuf"
)

// k8sRealEnv is a real control plane with kmt's single-cluster overlay
// applied and Ready (kwok), the Chaos Mesh stand-in, two embedded Kafka
// clusters with topic kmt-0 (6 partitions) standing for the two regions'
// brokers, a real Prometheus (it scrapes nothing: the fleet's pods run no
// containers, so every query answers an empty vector), and the flags that
// point kmt controller run --target kubernetes at all of it as the
// controller's own ServiceAccount.
type k8sRealEnv struct {
	c        *k8stest.Cluster
	cm       *k8stest.ChaosMesh
	src, dst *embedded.Cluster
	flags    []string
}

func newK8sRealEnv(t *testing.T) *k8sRealEnv {
	t.Helper()
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not on PATH (make test-deps installs it): %v", err)
	}
	c := k8stest.Start(t)
	c.InstallCRDs(t)
	cm := c.StartChaosMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Applier(t).ApplyKustomization(ctx, "../../deploy/overlays/single-cluster"); err != nil {
		t.Fatal(err)
	}
	c.WaitWorkloads(t, 3*time.Minute, "kmt-source", "kmt-destination")
	kubeconfig, _ := c.ServiceAccountKubeconfig(t, "kmt-destination", "kmt-controller", "controller")
	e := &k8sRealEnv{c: c, cm: cm}
	e.src = kafkatest.Embedded(t, embedded.Brokers(3), embedded.Name("source"))
	e.dst = kafkatest.Embedded(t, embedded.Brokers(3), embedded.Name("destination"))
	for _, k := range []*embedded.Cluster{e.src, e.dst} {
		admin := saramaAdmin(t, k)
		if err := admin.CreateTopic("kmt-0", &sarama.TopicDetail{NumPartitions: 6, ReplicationFactor: 3}, false); err != nil {
			t.Fatal(err)
		}
		// The deployed fleet's pods would create their accounting topic
		// when they start publishing; kwok runs no containers, so the
		// test does, and the controller's preflight finds it.
		compact := "compact"
		if err := admin.CreateTopic(fleet.DefaultTopic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3,
			ConfigEntries: map[string]*string{"cleanup.policy": &compact}}, false); err != nil {
			t.Fatal(err)
		}
		admin.Close()
	}
	// The deployed fleet, for real: kwok runs no containers, so the test
	// runs the kmt processes the fleet's pods would (a producer in the
	// source region, kmt's reference mirror, a validating consumer in the
	// destination), each publishing its accounting, for the controller's
	// preflight and its exact final step. The processes die in the test's
	// cleanup, before the clusters.
	srcAddr, dstAddr := strings.Join(e.src.Addrs(), ","), strings.Join(e.dst.Addrs(), ",")
	startKmt(t, "mirror", "mirror", "--source", srcAddr, "--destination", dstAddr, "--topics", "kmt-0", "--metrics-addr", "")
	startKmt(t, "consumer", "consume", "--bootstrap-servers", dstAddr, "--topics", "kmt-0", "--group", "kmt-consumer",
		"--id", "consumer-1", "--metrics-addr", "", "--accounting-interval", "300ms")
	startKmt(t, "producer", "produce", "--bootstrap-servers", srcAddr, "--topics", "kmt-0", "--partitions", "6",
		"--id", "producer-1", "--rate", "50", "--metrics-addr", "", "--accounting-interval", "300ms")
	e.flags = []string{"--target", "kubernetes", "--prometheus-url", startPrometheus(t, prom),
		"--k8s-source-kubeconfig", kubeconfig, "--k8s-destination-kubeconfig", kubeconfig,
		"--k8s-source-bootstrap", strings.Join(e.src.Addrs(), ","),
		"--k8s-destination-bootstrap", strings.Join(e.dst.Addrs(), ","),
		"--k8s-ready-timeout", "2m", "--metrics-addr", "127.0.0.1:0"}
	return e
}

func saramaAdmin(t *testing.T, c *embedded.Cluster) sarama.ClusterAdmin {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = kafkaconf.DefaultVersion
	admin, err := sarama.NewClusterAdmin(c.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return admin
}

func partitionCount(t *testing.T, c *embedded.Cluster, topic string) int {
	t.Helper()
	admin := saramaAdmin(t, c)
	defer admin.Close()
	meta, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(meta) != 1 {
		t.Fatalf("describe %s: %v", topic, err)
	}
	return len(meta[0].Partitions)
}

// startPrometheus runs a real Prometheus on 127.0.0.1 with no scrape
// targets, until the test ends, and returns its URL.
func startPrometheus(t *testing.T, bin string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1s}\nscrape_configs: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready: %v\n%s", err, out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// podUID returns the UID of pod ns/name.
func (e *k8sRealEnv) podUID(t *testing.T, ns, name string) types.UID {
	t.Helper()
	p, err := e.c.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.UID
}

// liveChaos lists the NetworkChaos objects in kmt-destination (none when
// the list fails; it may run outside the test's goroutine).
func (e *k8sRealEnv) liveChaos(t *testing.T) []string {
	l, err := e.c.Dynamic().Resource(k8stest.NetworkChaosGVR).Namespace("kmt-destination").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Errorf("list networkchaos: %v", err)
		return nil
	}
	var out []string
	for _, u := range l.Items {
		out = append(out, u.GetName())
	}
	return out
}

// TestControllerRunKubernetesRealAPIServer runs a scenario with every
// Kubernetes action through kmt controller run --target kubernetes against
// a real API server, as the controller's ServiceAccount: broker kill and
// restart on the real StatefulSets (new pods, Ready), a resize up and down,
// replicator scaling and kill on the real Deployment, partitions added on
// both Kafka clusters, and a WAN fault whose NetworkChaos exists with the
// right spec during the step and is gone after it.
func TestControllerRunKubernetesRealAPIServer(t *testing.T) {
	e := newK8sRealEnv(t)
	srcBroker1 := e.podUID(t, "kmt-source", "kafka-broker-1")
	dstBroker0 := e.podUID(t, "kmt-destination", "kafka-broker-0")
	p := writeScenario(t, `name: k8s-real
workload: {duration: 1s, loss_grace: 5s}
steps:
  - action: kill-broker
    cluster: source
    broker: "1"
  - action: restart-broker
    cluster: destination
    broker: "0"
  - action: resize-cluster
    cluster: source
    size: 4
  - action: resize-cluster
    cluster: source
    size: 3
  - action: scale-replicator
    workers: 3
  - action: kill-replicator
  - action: add-partitions
    topic: kmt-0
    partitions: 12
  - action: network
    latency: 50ms
    jitter: 5ms
    loss_pct: 1.5
    for: 4s
`)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	// Watch the fault while the run is on.
	var during []string
	watch := make(chan struct{})
	wctx, stopWatch := context.WithCancel(ctx)
	go func() {
		defer close(watch)
		for wctx.Err() == nil && len(during) == 0 {
			during = e.liveChaos(t)
			time.Sleep(100 * time.Millisecond)
		}
	}()
	dir := t.TempDir()
	err, out := runKmt(ctx, t, append([]string{"controller", "run", "--scenario", p,
		"--results-json", filepath.Join(dir, "results.json")}, e.flags...)...)
	stopWatch()
	<-watch
	if err != nil {
		t.Fatalf("controller run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "verdict: PASS") {
		t.Errorf("output lacks the verdict:\n%s", out)
	}
	if e.podUID(t, "kmt-source", "kafka-broker-1") == srcBroker1 {
		t.Error("kafka-broker-1 in kmt-source was not replaced")
	}
	if e.podUID(t, "kmt-destination", "kafka-broker-0") == dstBroker0 {
		t.Error("kafka-broker-0 in kmt-destination was not replaced")
	}
	bg := context.Background()
	sts, err := e.c.Client.AppsV1().StatefulSets("kmt-source").Get(bg, "kafka-broker", metav1.GetOptions{})
	if err != nil || *sts.Spec.Replicas != 3 || sts.Status.ReadyReplicas != 3 {
		t.Errorf("source brokers after the resizes: %v %+v", err, sts.Status)
	}
	dep, err := e.c.Client.AppsV1().Deployments("kmt-destination").Get(bg, "mirrormaker2", metav1.GetOptions{})
	if err != nil || *dep.Spec.Replicas != 3 || dep.Status.ReadyReplicas != 3 {
		t.Errorf("replicator after scale and kill: %v %+v", err, dep.Status)
	}
	for _, k := range []*embedded.Cluster{e.src, e.dst} {
		if n := partitionCount(t, k, "kmt-0"); n != 12 {
			t.Errorf("%s: kmt-0 has %d partitions, want 12", k.Name(), n)
		}
	}
	if len(during) != 1 {
		t.Fatalf("NetworkChaos during the fault: %v", during)
	}
	spec := e.cm.Seen()["kmt-destination/"+during[0]]
	delay, _ := spec["delay"].(map[string]any)
	loss, _ := spec["loss"].(map[string]any)
	if spec["action"] != "netem" || spec["direction"] != "to" || delay["latency"] != "50ms" || delay["jitter"] != "5ms" || loss["loss"] != "1.5" {
		t.Errorf("NetworkChaos spec %v", spec)
	}
	if left := e.liveChaos(t); len(left) != 0 {
		t.Errorf("NetworkChaos left after the step: %v", left)
	}
}

// TestControllerInterruptKubernetesRealAPIServer: Ctrl-C (SIGINT) while a
// WAN cut is in place removes its NetworkChaos before kmt exits.
func TestControllerInterruptKubernetesRealAPIServer(t *testing.T) {
	e := newK8sRealEnv(t)
	p := writeScenario(t, `name: k8s-interrupt
workload: {duration: 10m, loss_grace: 1s}
steps:
  - action: network
    cut: true
    for: 10m
`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"controller", "run", "--scenario", p}, e.flags...)...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The NetworkChaos object is listed as soon as kmt creates it; the
	// Chaos Mesh stand-in records its spec a moment later.
	var live []string
	cut := func() bool {
		return len(live) == 1 && e.cm.Seen()["kmt-destination/"+live[0]]["action"] == "partition"
	}
	for ctx.Err() == nil {
		if live = e.liveChaos(t); cut() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !cut() {
		t.Fatalf("the cut's NetworkChaos: %v\n%s", live, out.String())
	}
	// Wait for the fault to be reported injected, then interrupt.
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err == nil {
		t.Errorf("an interrupted run exited 0:\n%s", out.String())
	}
	if left := e.liveChaos(t); len(left) != 0 {
		t.Errorf("NetworkChaos left after Ctrl-C: %v\n%s", left, out.String())
	}
}
