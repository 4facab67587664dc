package kubernetes

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kmtproject/kmt/controller"
	"github.com/kmtproject/kmt/internal/k8stest"
	"github.com/kmtproject/kmt/internal/kafkaconf"
)

// realCluster starts a control plane with kmt's single-cluster overlay
// applied (both regions as namespaces, kwok running the pods) and returns
// it with the Chaos Mesh stand-in and the controller ServiceAccount's
// client configuration.
func realCluster(t *testing.T) (*k8stest.Cluster, *k8stest.ChaosMesh, *rest.Config) {
	t.Helper()
	c := k8stest.Start(t)
	c.InstallCRDs(t)
	cm := c.StartChaosMesh(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Applier(t).ApplyKustomization(ctx, "../../deploy/overlays/single-cluster"); err != nil {
		t.Fatal(err)
	}
	c.WaitWorkloads(t, 3*time.Minute, srcNS, dstNS)
	_, cfg := c.ServiceAccountKubeconfig(t, dstNS, "kmt-controller", "controller")
	return c, cm, cfg
}

// vanishing deletes, with the admin client, the first pod the target is
// about to delete, just before the target's own DELETE reaches the API
// server: the pod vanished between the target's list and its delete.
type vanishing struct {
	admin k8s.Interface
	next  http.RoundTripper
	once  sync.Once
	hit   string
}

func (v *vanishing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/pods/") {
		v.once.Do(func() {
			parts := strings.Split(r.URL.Path, "/") // /api/v1/namespaces/NS/pods/NAME
			ns, name := parts[len(parts)-3], parts[len(parts)-1]
			zero := int64(0)
			if err := v.admin.CoreV1().Pods(ns).Delete(r.Context(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err == nil {
				v.hit = name
			}
			// Wait until it is gone for good (kwok finalizes it).
			for i := 0; i < 200; i++ {
				if _, err := v.admin.CoreV1().Pods(ns).Get(r.Context(), name, metav1.GetOptions{}); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	return v.next.RoundTrip(r)
}

// TestKillReplicatorPodVanishedRealAPIServer: a replicator pod deleted by
// someone else between KillReplicator's list and its delete makes the real
// API server answer 404 NotFound; the kill goes on and succeeds.
func TestKillReplicatorPodVanishedRealAPIServer(t *testing.T) {
	c, _, cfg := realCluster(t)
	v := &vanishing{admin: c.Client}
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { v.next = rt; return v }
	cs, dyn, err := Clients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := New(cs, cs, dyn, Config{PollInterval: 200 * time.Millisecond, ReadyTimeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := tg.ScaleReplicator(ctx, 2); err != nil {
		t.Fatal(err)
	}
	before := replicatorPods(ctx, t, c.Client)
	if err := tg.KillReplicator(ctx); err != nil {
		t.Fatalf("KillReplicator with a pod gone before its delete: %v", err)
	}
	if v.hit == "" {
		t.Fatal("the race was not injected")
	}
	after := replicatorPods(ctx, t, c.Client)
	if len(after) != 2 {
		t.Errorf("%d replicator pods after the kill, want 2", len(after))
	}
	for uid := range after {
		if before[uid] {
			t.Errorf("pod %s survived the kill", uid)
		}
	}
}

func replicatorPods(ctx context.Context, t *testing.T, cs k8s.Interface) map[types.UID]bool {
	t.Helper()
	l, err := cs.CoreV1().Pods(dstNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=mirrormaker2"})
	if err != nil {
		t.Fatal(err)
	}
	m := map[types.UID]bool{}
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			m[p.UID] = true
		}
	}
	return m
}

// TestTargetActionsRealAPIServer runs every action of the kubernetes target
// against real StatefulSets and Deployments, as the controller's own
// ServiceAccount (its Role is all it has), with embedded Kafka clusters as
// the two regions' brokers for the topic actions.
func TestTargetActionsRealAPIServer(t *testing.T) {
	c, cm, cfg := realCluster(t)
	cs, dyn, err := Clients(cfg)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := startCluster(t, "source"), startCluster(t, "destination")
	createTopic(t, src, "kmt-0", 3)
	createTopic(t, dst, "kmt-0", 3)
	tg, err := New(cs, cs, dyn, Config{
		PollInterval:     200 * time.Millisecond,
		ReadyTimeout:     2 * time.Minute,
		SourceKafka:      kafkaconf.Conn{Brokers: src.Addrs()},
		DestinationKafka: kafkaconf.Conn{Brokers: dst.Addrs()},
		Logger:           slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	admin := c.Client

	pod := func(ns, name string) *corev1.Pod {
		t.Helper()
		p, err := admin.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := pod(srcNS, "kafka-broker-1").UID
	if id, err := tg.KillBroker(ctx, controller.Source, "1"); err != nil || id != "1" {
		t.Fatalf("kill broker: %q, %v", id, err)
	}
	if p := pod(srcNS, "kafka-broker-1"); p.UID == before || !podReady(p) {
		t.Errorf("kafka-broker-1 not replaced by a Ready pod (uid %s, was %s)", p.UID, before)
	}
	if err := tg.RestartBroker(ctx, controller.Destination, "random"); err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	n, err := tg.Brokers(ctx, controller.Destination)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.ResizeCluster(ctx, controller.Source, n+1); err != nil {
		t.Fatalf("resize up: %v", err)
	}
	if got, _ := tg.Brokers(ctx, controller.Source); got != n+1 {
		t.Errorf("%d brokers after resize, want %d", got, n+1)
	}
	if err := tg.ResizeCluster(ctx, controller.Source, n); err != nil {
		t.Fatalf("resize down: %v", err)
	}
	if err := tg.ScaleReplicator(ctx, 3); err != nil {
		t.Fatalf("scale replicator: %v", err)
	}
	if got, _ := tg.Replicators(ctx); got != 3 {
		t.Errorf("%d replicators, want 3", got)
	}
	if err := tg.KillReplicator(ctx); err != nil {
		t.Fatalf("kill replicator: %v", err)
	}
	if err := tg.ScaleReplicator(ctx, 1); err != nil {
		t.Fatalf("scale replicator down: %v", err)
	}

	if err := tg.AddPartitions(ctx, "kmt-0", 6); err != nil {
		t.Fatalf("add partitions: %v", err)
	}
	for _, k := range []struct {
		name string
		n    int
	}{{"source", partitions(t, src, "kmt-0")}, {"destination", partitions(t, dst, "kmt-0")}} {
		if k.n != 6 {
			t.Errorf("%s: kmt-0 has %d partitions, want 6", k.name, k.n)
		}
	}

	// A WAN fault: NetworkChaos objects with the right spec, accepted by
	// the real CRD's schema, gone after undo.
	undo, err := tg.Network(ctx, controller.NetworkSpec{Latency: 80 * time.Millisecond, Jitter: 10 * time.Millisecond, LossPct: 2.5})
	if err != nil {
		t.Fatalf("network: %v", err)
	}
	live := liveChaos(ctx, t, c)
	if len(live) != 1 {
		t.Fatalf("%d NetworkChaos objects during the fault, want 1: %v", len(live), live)
	}
	spec := cm.Seen()[dstNS+"/"+live[0]]
	for path, want := range map[string]any{
		"action": "netem", "mode": "all", "direction": "to", "duration": "2h0m0s",
		"delay.latency": "80ms", "delay.jitter": "10ms", "loss.loss": "2.5",
		"selector.namespaces": []any{dstNS}, "selector.labelSelectors.app.kubernetes.io/name": "mirrormaker2",
		"target.mode": "all", "target.selector.namespaces": []any{srcNS},
	} {
		if got := dig(spec, path); !equalJSON(got, want) {
			t.Errorf("networkchaos spec %s = %v, want %v (spec %v)", path, got, want, spec)
		}
	}
	if err := undo(ctx); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if live := liveChaos(ctx, t, c); len(live) != 0 {
		t.Errorf("NetworkChaos left after undo: %v", live)
	}
	// A cut left in place is removed by Close (the abort path).
	if _, err := tg.Network(ctx, controller.NetworkSpec{Cut: true}); err != nil {
		t.Fatalf("network cut: %v", err)
	}
	if live := liveChaos(ctx, t, c); len(live) != 1 || dig(cm.Seen()[dstNS+"/"+live[0]], "action") != "partition" {
		t.Errorf("cut: %v", live)
	}
	if err := tg.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if live := liveChaos(ctx, t, c); len(live) != 0 {
		t.Errorf("NetworkChaos left after Close: %v", live)
	}

	// A new topic: created on the source, added to both fleet
	// Deployments, which roll out.
	if err := tg.CreateTopic(ctx, "kmt-new", 3); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	for _, d := range []struct{ ns, name string }{{srcNS, DefaultProducerDeployment}, {dstNS, DefaultConsumerDeployment}} {
		dep, err := admin.AppsV1().Deployments(d.ns).Get(ctx, d.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var topics string
		for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
			if e.Name == TopicsEnv {
				topics = e.Value
			}
		}
		if !strings.HasSuffix(topics, ",kmt-new") {
			t.Errorf("%s/%s %s=%q, want kmt-new appended", d.ns, d.name, TopicsEnv, topics)
		}
	}
	if partitions(t, src, "kmt-new") != 3 {
		t.Errorf("kmt-new not created with 3 partitions on the source")
	}
}

// liveChaos lists the NetworkChaos objects in the destination namespace.
func liveChaos(ctx context.Context, t *testing.T, c *k8stest.Cluster) []string {
	t.Helper()
	l, err := c.Applier(t).Resource(NetworkChaosGVR.GroupVersion().WithKind("NetworkChaos"), dstNS)
	if err != nil {
		t.Fatal(err)
	}
	list, err := l.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range list.Items {
		out = append(out, u.GetName())
	}
	return out
}

// dig returns the value at a dotted path; the last segments may form a
// label key with dots (app.kubernetes.io/name).
func dig(m map[string]any, path string) any {
	parts := strings.Split(path, ".")
	var cur any = m
	for i := 0; i < len(parts); i++ {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if v, ok := mm[parts[i]]; ok {
			cur = v
			continue
		}
		if v, ok := mm[strings.Join(parts[i:], ".")]; ok {
			return v
		}
		return nil
	}
	return cur
}

func equalJSON(a, b any) bool {
	as, _ := json.Marshal(a)
	bs, _ := json.Marshal(b)
	return string(as) == string(bs)
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
