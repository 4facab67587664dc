package kubernetes

import (
	"context"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kmtproject/kmt/controller"
)

const (
	srcNS = DefaultSourceNamespace
	dstNS = DefaultDestinationNamespace
)

// twoRegions starts simulated source and destination clusters with 3
// brokers each, 2 replicator workers and the kmt fleet, and a target on them.
func twoRegions(t *testing.T, readyDelay time.Duration, cfg Config) (*Target, *simCluster, *simCluster, *chaosMesh) {
	t.Helper()
	src := newSimCluster(t, readyDelay,
		brokerStatefulSet(srcNS, 3),
		deployment(srcNS, DefaultProducerDeployment, 2, "kmt-0,kmt-1"),
		lbService(srcNS, "kafka-broker-1-external", "b1.elb.example", ""),
		lbService(srcNS, "kafka-broker-0-external", "", "203.0.113.10"),
		lbService(srcNS, "kafka-broker-2-external", "b2.elb.example", ""),
	)
	dst := newSimCluster(t, readyDelay,
		brokerStatefulSet(dstNS, 3),
		deployment(dstNS, DefaultReplicatorDeployment, 2, ""),
		deployment(dstNS, DefaultConsumerDeployment, 2, "kmt-0,kmt-1"),
	)
	src.waitSettled(srcNS, "kafka-broker", DefaultProducerDeployment, 3, 2)
	dst.waitSettled(dstNS, "kafka-broker", DefaultReplicatorDeployment, 3, 2)
	cm := newChaosMesh(t, true, 20*time.Millisecond)
	tg, err := New(src.cs, dst.cs, cm.dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tg, src, dst, cm
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestKillBrokerDeletesPodAndWaitsForReadyReplacement(t *testing.T) {
	tg, src, _, _ := twoRegions(t, 150*time.Millisecond, testConfig())
	ctx := ctxT(t)
	before := src.pod(srcNS, "kafka-broker-1")
	others := map[string]string{}
	for _, n := range []string{"kafka-broker-0", "kafka-broker-2"} {
		others[n] = string(src.pod(srcNS, n).UID)
	}
	src.cs.ClearActions()

	id, err := tg.KillBroker(ctx, controller.Source, "1")
	if err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	if id != "1" {
		t.Fatalf("killed id = %q, want 1", id)
	}
	// The pod was deleted exactly once, by name, with the short grace
	// period and a UID precondition.
	var deletes []k8stesting.DeleteActionImpl
	for _, a := range src.cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && a.GetResource().Resource == "pods" {
			deletes = append(deletes, d)
		}
	}
	if len(deletes) != 1 || deletes[0].Name != "kafka-broker-1" || deletes[0].Namespace != srcNS {
		t.Fatalf("pod deletes = %+v, want one of %s/kafka-broker-1", deletes, srcNS)
	}
	opts := deletes[0].DeleteOptions
	if opts.GracePeriodSeconds == nil || *opts.GracePeriodSeconds != 1 {
		t.Fatalf("grace period = %v, want 1", opts.GracePeriodSeconds)
	}
	if opts.Preconditions == nil || *opts.Preconditions.UID != before.UID {
		t.Fatalf("preconditions = %+v, want UID %s", opts.Preconditions, before.UID)
	}
	// The replacement is a new pod, Ready before KillBroker returned.
	after := src.pod(srcNS, "kafka-broker-1")
	if after.UID == before.UID {
		t.Fatalf("pod kafka-broker-1 still has UID %s", before.UID)
	}
	if !podReady(after) {
		t.Fatal("replacement pod is not Ready")
	}
	if ra := src.readySince(after.UID); ra.IsZero() || ra.After(returned) {
		t.Fatalf("replacement became Ready at %v, after KillBroker returned at %v", ra, returned)
	}
	// The other brokers were not touched.
	for n, uid := range others {
		if got := string(src.pod(srcNS, n).UID); got != uid {
			t.Fatalf("%s was recreated: UID %s, was %s", n, got, uid)
		}
	}
}

func TestKillBrokerRandomAndPodName(t *testing.T) {
	tg, _, dst, _ := twoRegions(t, 10*time.Millisecond, testConfig())
	ctx := ctxT(t)
	id, err := tg.KillBroker(ctx, controller.Destination, "random")
	if err != nil {
		t.Fatal(err)
	}
	if id != "0" && id != "1" && id != "2" {
		t.Fatalf("random kill returned %q, want an ordinal 0..2", id)
	}
	dst.cs.ClearActions()
	if err := tg.RestartBroker(ctx, controller.Destination, "kafka-broker-2"); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range dst.cs.Actions() {
		if d, ok := a.(k8stesting.DeleteActionImpl); ok && d.Name == "kafka-broker-2" {
			found = true
		}
	}
	if !found {
		t.Fatal("restart of kafka-broker-2 deleted no pod of that name")
	}
}

func TestKillBrokerBadIDs(t *testing.T) {
	tg, _, _, _ := twoRegions(t, 0, testConfig())
	ctx := ctxT(t)
	for _, tc := range []struct{ id, want string }{
		{"3", "broker 3 does not exist: statefulset kmt-source/kafka-broker has 3 replicas"},
		{"seven", `broker id "seven" is not "random", an ordinal or a kafka-broker-N pod name`},
	} {
		_, err := tg.KillBroker(ctx, controller.Source, tc.id)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("KillBroker(%q) error = %v, want it to contain %q", tc.id, err, tc.want)
		}
	}
	if _, err := tg.KillBroker(ctx, "moon", "1"); err == nil || !strings.Contains(err.Error(), `cluster "moon" is not source or destination`) {
		t.Errorf("bad cluster error = %v", err)
	}
}

// scaleUpdates returns the replicas of every update of the scale subresource
// of resource/name recorded by the clientset.
func scaleUpdates(sim *simCluster, resource, name string) []int32 {
	var out []int32
	for _, a := range sim.cs.Actions() {
		u, ok := a.(k8stesting.UpdateActionImpl)
		if !ok || u.GetResource().Resource != resource || u.GetSubresource() != "scale" {
			continue
		}
		if s := u.GetObject().(*autoscalingv1.Scale); s.Name == name {
			out = append(out, s.Spec.Replicas)
		}
	}
	return out
}

func TestResizeClusterScalesStatefulSetAndWaits(t *testing.T) {
	tg, src, _, _ := twoRegions(t, 30*time.Millisecond, testConfig())
	ctx := ctxT(t)
	for _, n := range []int{5, 2} {
		src.cs.ClearActions()
		if err := tg.ResizeCluster(ctx, controller.Source, n); err != nil {
			t.Fatal(err)
		}
		if got := scaleUpdates(src, "statefulsets", "kafka-broker"); len(got) != 1 || got[0] != int32(n) {
			t.Fatalf("scale updates = %v, want [%d]", got, n)
		}
		b, err := tg.Brokers(ctx, controller.Source)
		if err != nil {
			t.Fatal(err)
		}
		if b != n {
			t.Fatalf("Brokers after resize to %d = %d", n, b)
		}
	}
	if err := tg.ResizeCluster(ctx, controller.Source, 0); err == nil {
		t.Fatal("resize to 0 brokers succeeded")
	}
}

func TestScaleReplicatorAndKill(t *testing.T) {
	tg, _, dst, _ := twoRegions(t, 30*time.Millisecond, testConfig())
	ctx := ctxT(t)
	dst.cs.ClearActions()
	if err := tg.ScaleReplicator(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if got := scaleUpdates(dst, "deployments", DefaultReplicatorDeployment); len(got) != 1 || got[0] != 4 {
		t.Fatalf("scale updates = %v, want [4]", got)
	}
	if n, err := tg.Replicators(ctx); err != nil || n != 4 {
		t.Fatalf("Replicators = %d, %v; want 4", n, err)
	}

	old := dst.pods(dstNS, &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": DefaultReplicatorDeployment}})
	dst.cs.ClearActions()
	if err := tg.KillReplicator(ctx); err != nil {
		t.Fatal(err)
	}
	deleted := map[string]bool{}
	for _, a := range dst.cs.Actions() {
		d, ok := a.(k8stesting.DeleteActionImpl)
		if !ok || d.GetResource().Resource != "pods" {
			continue
		}
		if g := d.DeleteOptions.GracePeriodSeconds; g == nil || *g != 0 {
			t.Fatalf("replicator pod %s deleted with grace %v, want 0", d.Name, g)
		}
		deleted[d.Name] = true
	}
	if len(deleted) != len(old) {
		t.Fatalf("deleted %v, want all %d old pods", deleted, len(old))
	}
	for _, p := range old {
		if !deleted[p.Name] {
			t.Fatalf("old pod %s not deleted", p.Name)
		}
	}
	now := dst.pods(dstNS, &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": DefaultReplicatorDeployment}})
	if len(now) != 4 {
		t.Fatalf("%d replicator pods after kill, want 4", len(now))
	}
	for _, p := range now {
		if deleted[p.Name] || !podReady(&p) {
			t.Fatalf("pod %s after kill: old=%v ready=%v", p.Name, deleted[p.Name], podReady(&p))
		}
	}
}

func TestWaitTimesOutWithClearError(t *testing.T) {
	cfg := testConfig()
	cfg.ReadyTimeout = 100 * time.Millisecond
	// Pods never become Ready within the timeout.
	slow := newSimCluster(t, time.Hour, brokerStatefulSet(srcNS, 1))
	tg, err := New(slow.cs, slow.cs, newChaosMesh(t, false, 0).dyn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = tg.ResizeCluster(ctxT(t), controller.Source, 2)
	if err == nil || !strings.Contains(err.Error(), "wait for statefulset kmt-source/kafka-broker to have 2 Ready brokers") {
		t.Fatalf("error = %v, want a timeout naming the wait", err)
	}
}

func TestNewRejectsMissingClients(t *testing.T) {
	if _, err := New(nil, nil, nil, Config{}); err == nil {
		t.Fatal("New with nil clients succeeded")
	}
}
