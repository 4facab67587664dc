package kubernetes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// This file simulates the parts of a cluster the target relies on: the
// StatefulSet and Deployment controllers (recreating deleted pods under new
// UIDs, following replica counts, marking pods Ready after a delay and
// keeping status counts), the scale subresource, and Chaos Mesh (marking a
// NetworkChaos injected after a delay). The fake clientset stores objects;
// the simulator loops over them as the real controllers would.

var (
	podsGVR = corev1.SchemeGroupVersion.WithResource("pods")
	podsGVK = corev1.SchemeGroupVersion.WithKind("Pod")
	stsGVR  = appsv1.SchemeGroupVersion.WithResource("statefulsets")
	stsGVK  = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	depGVR  = appsv1.SchemeGroupVersion.WithResource("deployments")
	depGVK  = appsv1.SchemeGroupVersion.WithKind("Deployment")
)

// simCluster is a fake cluster with running controllers.
type simCluster struct {
	t          *testing.T
	cs         *fake.Clientset
	readyDelay time.Duration
	uid        atomic.Int64
	mu         sync.Mutex
	readyAt    map[types.UID]time.Time // when each pod became Ready
}

// newSimCluster returns a fake cluster holding objs whose controllers run
// until the test ends. Pods become Ready readyDelay after creation.
func newSimCluster(t *testing.T, readyDelay time.Duration, objs ...runtime.Object) *simCluster {
	t.Helper()
	s := &simCluster{t: t, cs: fake.NewSimpleClientset(objs...), readyDelay: readyDelay, readyAt: map[types.UID]time.Time{}}
	s.cs.PrependReactor("get", "statefulsets", s.getScale(stsGVR))
	s.cs.PrependReactor("get", "deployments", s.getScale(depGVR))
	s.cs.PrependReactor("update", "statefulsets", s.updateScale(stsGVR))
	s.cs.PrependReactor("update", "deployments", s.updateScale(depGVR))
	everyTick(t, func(context.Context) { s.reconcile() })
	return s
}

// everyTick calls fn every 2ms in the background until the test ends.
func everyTick(t *testing.T, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				fn(ctx)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// object reads a StatefulSet or Deployment and its spec.replicas from the
// tracker.
func (s *simCluster) object(gvr schema.GroupVersionResource, ns, name string) (runtime.Object, *int32, error) {
	obj, err := s.cs.Tracker().Get(gvr, ns, name)
	if err != nil {
		return nil, nil, err
	}
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		return o, o.Spec.Replicas, nil
	case *appsv1.Deployment:
		return o, o.Spec.Replicas, nil
	}
	return nil, nil, fmt.Errorf("unexpected %T", obj)
}

func (s *simCluster) getScale(gvr schema.GroupVersionResource) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		name := a.(k8stesting.GetAction).GetName()
		_, replicas, err := s.object(gvr, a.GetNamespace(), name)
		if err != nil {
			return true, nil, err
		}
		return true, &autoscalingv1.Scale{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.GetNamespace()},
			Spec:       autoscalingv1.ScaleSpec{Replicas: *replicas},
		}, nil
	}
}

func (s *simCluster) updateScale(gvr schema.GroupVersionResource) k8stesting.ReactionFunc {
	return func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		obj, _, err := s.object(gvr, a.GetNamespace(), sc.Name)
		if err != nil {
			return true, nil, err
		}
		n := sc.Spec.Replicas
		switch o := obj.DeepCopyObject().(type) {
		case *appsv1.StatefulSet:
			o.Spec.Replicas = &n
			err = s.cs.Tracker().Update(gvr, o, a.GetNamespace())
		case *appsv1.Deployment:
			o.Spec.Replicas = &n
			err = s.cs.Tracker().Update(gvr, o, a.GetNamespace())
		}
		return true, sc, err
	}
}

// reconcile runs one pass of the simulated controllers.
func (s *simCluster) reconcile() {
	tr := s.cs.Tracker()
	list, err := tr.List(stsGVR, stsGVK, "")
	if err != nil {
		return
	}
	for _, sts := range list.(*appsv1.StatefulSetList).Items {
		want := int(*sts.Spec.Replicas)
		pods := s.pods(sts.Namespace, sts.Spec.Selector)
		byName := map[string]*corev1.Pod{}
		for i := range pods {
			byName[pods[i].Name] = &pods[i]
		}
		for o := range want {
			name := fmt.Sprintf("%s-%d", sts.Name, o)
			if byName[name] == nil {
				lbl := map[string]string{PodNameLabel: name}
				for k, v := range sts.Spec.Template.Labels {
					lbl[k] = v
				}
				s.createPod(sts.Namespace, name, lbl)
			}
		}
		for name := range byName {
			if o, err := strconv.Atoi(strings.TrimPrefix(name, sts.Name+"-")); err == nil && o >= want {
				_ = tr.Delete(podsGVR, sts.Namespace, name)
			}
		}
		ready := s.markReady(sts.Namespace, sts.Spec.Selector)
		cur, err := tr.Get(stsGVR, sts.Namespace, sts.Name)
		if err != nil {
			continue
		}
		c := cur.(*appsv1.StatefulSet).DeepCopy()
		total := int32(len(s.pods(sts.Namespace, sts.Spec.Selector)))
		if c.Status.Replicas != total || c.Status.ReadyReplicas != ready {
			c.Status.Replicas, c.Status.ReadyReplicas = total, ready
			_ = tr.Update(stsGVR, c, sts.Namespace)
		}
	}
	dl, err := tr.List(depGVR, depGVK, "")
	if err != nil {
		return
	}
	for _, d := range dl.(*appsv1.DeploymentList).Items {
		want := int(*d.Spec.Replicas)
		pods := s.pods(d.Namespace, d.Spec.Selector)
		for i := len(pods); i < want; i++ {
			s.createPod(d.Namespace, fmt.Sprintf("%s-%d", d.Name, s.uid.Add(1)), d.Spec.Template.Labels)
		}
		for i := want; i < len(pods); i++ {
			_ = tr.Delete(podsGVR, d.Namespace, pods[i].Name)
		}
		ready := s.markReady(d.Namespace, d.Spec.Selector)
		cur, err := tr.Get(depGVR, d.Namespace, d.Name)
		if err != nil {
			continue
		}
		c := cur.(*appsv1.Deployment).DeepCopy()
		total := int32(len(s.pods(d.Namespace, d.Spec.Selector)))
		if c.Status.Replicas != total || c.Status.ReadyReplicas != ready {
			c.Status.Replicas, c.Status.UpdatedReplicas, c.Status.ReadyReplicas, c.Status.AvailableReplicas = total, total, ready, ready
			_ = tr.Update(depGVR, c, d.Namespace)
		}
	}
}

func (s *simCluster) pods(ns string, sel *metav1.LabelSelector) []corev1.Pod {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil
	}
	list, err := s.cs.Tracker().List(podsGVR, podsGVK, ns)
	if err != nil {
		return nil
	}
	var out []corev1.Pod
	for _, p := range list.(*corev1.PodList).Items {
		if selector.Matches(labels.Set(p.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

func (s *simCluster) createPod(ns, name string, lbl map[string]string) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: ns, Labels: lbl,
		UID:               types.UID(fmt.Sprintf("uid-%d", s.uid.Add(1))),
		CreationTimestamp: metav1.Now(),
	}, Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}}}
	_ = s.cs.Tracker().Create(podsGVR, p, ns)
}

// markReady marks pods older than readyDelay Ready and returns how many are.
func (s *simCluster) markReady(ns string, sel *metav1.LabelSelector) int32 {
	var n int32
	for _, p := range s.pods(ns, sel) {
		if podReady(&p) {
			n++
			continue
		}
		if time.Since(p.CreationTimestamp.Time) < s.readyDelay {
			continue
		}
		c := p.DeepCopy()
		c.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := s.cs.Tracker().Update(podsGVR, c, ns); err == nil {
			s.mu.Lock()
			s.readyAt[c.UID] = time.Now()
			s.mu.Unlock()
			n++
		}
	}
	return n
}

// readySince returns when pod uid became Ready (zero if never).
func (s *simCluster) readySince(uid types.UID) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readyAt[uid]
}

// pod returns pod ns/name, failing the test when it is missing.
func (s *simCluster) pod(ns, name string) *corev1.Pod {
	s.t.Helper()
	obj, err := s.cs.Tracker().Get(podsGVR, ns, name)
	if err != nil {
		s.t.Fatalf("get pod %s/%s: %v", ns, name, err)
	}
	return obj.(*corev1.Pod)
}

// waitSettled waits until every pod the controllers want exists and is
// Ready, so a test starts from a healthy cluster.
func (s *simCluster) waitSettled(ns, sts, dep string, brokers, workers int) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		if sts != "" {
			o, err := s.cs.Tracker().Get(stsGVR, ns, sts)
			ok = ok && err == nil && o.(*appsv1.StatefulSet).Status.ReadyReplicas == int32(brokers)
		}
		if dep != "" {
			o, err := s.cs.Tracker().Get(depGVR, ns, dep)
			ok = ok && err == nil && o.(*appsv1.Deployment).Status.ReadyReplicas == int32(workers)
		}
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.t.Fatalf("cluster did not settle: %s/%s brokers=%d, %s workers=%d", ns, sts, brokers, dep, workers)
}

// brokerStatefulSet returns a broker StatefulSet like deploy/'s.
func brokerStatefulSet(ns string, replicas int32) *appsv1.StatefulSet {
	lbl := map[string]string{"app.kubernetes.io/name": "kafka-broker", "app.kubernetes.io/part-of": "kmt"}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kafka-broker", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "kafka-broker"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}},
		},
	}
}

// deployment returns a Deployment whose kmt container lists topics in
// KMT_TOPICS.
func deployment(ns, name string, replicas int32, topics string) *appsv1.Deployment {
	lbl := map[string]string{"app.kubernetes.io/name": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "kmt", Env: []corev1.EnvVar{{Name: TopicsEnv, Value: topics}},
				}}},
			},
		},
	}
}

// lbService returns a per-broker LoadBalancer Service with an address.
func lbService(ns, name, host, ip string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ExternalServiceLabel: "true"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status:     corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: host, IP: ip}}}},
	}
}

// chaosMesh simulates Chaos Mesh on a dynamic fake client: every
// NetworkChaos is marked AllInjected injectDelay after it appears.
type chaosMesh struct {
	dyn     *dynfake.FakeDynamicClient
	mu      sync.Mutex
	seen    map[string]time.Time
	created map[string]*unstructured.Unstructured // every object ever created, as created
}

// newChaosMesh returns a dynamic fake client that knows NetworkChaos, with
// the simulated Chaos Mesh running until the test ends when inject is true.
func newChaosMesh(t *testing.T, inject bool, injectDelay time.Duration) *chaosMesh {
	t.Helper()
	m := &chaosMesh{
		dyn: dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{NetworkChaosGVR: "NetworkChaosList"}),
		seen:    map[string]time.Time{},
		created: map[string]*unstructured.Unstructured{},
	}
	m.dyn.PrependReactor("create", "networkchaos", func(a k8stesting.Action) (bool, runtime.Object, error) {
		u := a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured)
		m.mu.Lock()
		m.created[u.GetName()] = u.DeepCopy()
		m.mu.Unlock()
		return false, nil, nil
	})
	if !inject {
		return m
	}
	everyTick(t, func(ctx context.Context) {
		res := m.dyn.Resource(NetworkChaosGVR)
		list, err := res.List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for _, u := range list.Items {
			m.mu.Lock()
			first, ok := m.seen[u.GetName()]
			if !ok {
				first = time.Now()
				m.seen[u.GetName()] = first
			}
			m.mu.Unlock()
			if conditionTrue(&u, "AllInjected") || time.Since(first) < injectDelay {
				continue
			}
			c := u.DeepCopy()
			_ = unstructured.SetNestedSlice(c.Object, []any{
				map[string]any{"type": "Selected", "status": "True"},
				map[string]any{"type": "AllInjected", "status": "True"},
			}, "status", "conditions")
			if _, err := res.Namespace(u.GetNamespace()).Update(ctx, c, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				continue
			}
		}
	})
	return m
}

// createdObject returns the NetworkChaos named name as the target created it.
func (m *chaosMesh) createdObject(name string) *unstructured.Unstructured {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.created[name]
}

// live lists the NetworkChaos names that currently exist.
func (m *chaosMesh) live(t *testing.T, ns string) []string {
	t.Helper()
	list, err := m.dyn.Resource(NetworkChaosGVR).Namespace(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list networkchaos: %v", err)
	}
	var out []string
	for _, u := range list.Items {
		out = append(out, u.GetName())
	}
	return out
}

// quietLogger discards the target's logs.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testConfig returns a Config with fast polls for tests.
func testConfig() Config {
	return Config{PollInterval: 5 * time.Millisecond, ReadyTimeout: 10 * time.Second, Logger: quietLogger()}
}
