package kubernetes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kmtproject/kmt/controller"
)

// KillBroker deletes the pod of broker id ("random": a Ready one picked at
// random) of cluster with BrokerGracePeriod and waits until the StatefulSet
// has recreated it and the replacement (a new pod UID) is Ready. It returns
// the broker id, the pod's ordinal.
func (t *Target) KillBroker(ctx context.Context, cluster controller.Cluster, id string) (string, error) {
	c, ns, err := t.client(cluster)
	if err != nil {
		return "", fmt.Errorf("kill broker: %w", err)
	}
	ordinal, err := t.resolveBroker(ctx, c, ns, id)
	if err != nil {
		return "", fmt.Errorf("kill broker %s of %s: %w", id, cluster, err)
	}
	if err := t.replaceBrokerPod(ctx, c, ns, ordinal); err != nil {
		return "", fmt.Errorf("kill broker %d of %s: %w", ordinal, cluster, err)
	}
	return strconv.Itoa(ordinal), nil
}

// RestartBroker deletes broker id's pod and waits for its Ready replacement,
// exactly like KillBroker: on Kubernetes a killed broker comes back by
// itself, so restarting one means killing it again.
func (t *Target) RestartBroker(ctx context.Context, cluster controller.Cluster, id string) error {
	c, ns, err := t.client(cluster)
	if err != nil {
		return fmt.Errorf("restart broker: %w", err)
	}
	ordinal, err := t.resolveBroker(ctx, c, ns, id)
	if err != nil {
		return fmt.Errorf("restart broker %s of %s: %w", id, cluster, err)
	}
	if err := t.replaceBrokerPod(ctx, c, ns, ordinal); err != nil {
		return fmt.Errorf("restart broker %d of %s: %w", ordinal, cluster, err)
	}
	return nil
}

// resolveBroker turns "random", an ordinal ("2") or a pod name
// ("kafka-broker-2") into an ordinal that exists in the StatefulSet.
func (t *Target) resolveBroker(ctx context.Context, c Client, ns, id string) (int, error) {
	sts, err := c.AppsV1().StatefulSets(ns).Get(ctx, t.cfg.BrokerStatefulSet, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("get statefulset %s/%s: %w", ns, t.cfg.BrokerStatefulSet, err)
	}
	replicas := 1
	if sts.Spec.Replicas != nil {
		replicas = int(*sts.Spec.Replicas)
	}
	if id == "random" || id == "" {
		pods, err := t.brokerPods(ctx, c, ns)
		if err != nil {
			return 0, err
		}
		var ready []int
		for _, p := range pods {
			if o, ok := t.ordinal(p.Name); ok && podReady(&p) && p.DeletionTimestamp == nil {
				ready = append(ready, o)
			}
		}
		if len(ready) == 0 {
			return 0, fmt.Errorf("no Ready broker pod in %s", ns)
		}
		sort.Ints(ready)
		return ready[rand.IntN(len(ready))], nil
	}
	o, err := strconv.Atoi(strings.TrimPrefix(id, t.cfg.BrokerStatefulSet+"-"))
	if err != nil || o < 0 {
		return 0, fmt.Errorf("broker id %q is not \"random\", an ordinal or a %s-N pod name", id, t.cfg.BrokerStatefulSet)
	}
	if o >= replicas {
		return 0, fmt.Errorf("broker %d does not exist: statefulset %s/%s has %d replicas", o, ns, t.cfg.BrokerStatefulSet, replicas)
	}
	return o, nil
}

// ordinal parses the ordinal out of a broker pod name.
func (t *Target) ordinal(pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, t.cfg.BrokerStatefulSet+"-")
	if !ok {
		return 0, false
	}
	o, err := strconv.Atoi(rest)
	return o, err == nil
}

// brokerPods lists the pods selected by the broker StatefulSet.
func (t *Target) brokerPods(ctx context.Context, c Client, ns string) ([]corev1.Pod, error) {
	sts, err := c.AppsV1().StatefulSets(ns).Get(ctx, t.cfg.BrokerStatefulSet, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get statefulset %s/%s: %w", ns, t.cfg.BrokerStatefulSet, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("statefulset %s/%s selector: %w", ns, t.cfg.BrokerStatefulSet, err)
	}
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list broker pods in %s: %w", ns, err)
	}
	return list.Items, nil
}

// replaceBrokerPod deletes the broker pod of ordinal and waits until a pod
// of that name with another UID is Ready.
func (t *Target) replaceBrokerPod(ctx context.Context, c Client, ns string, ordinal int) error {
	name := fmt.Sprintf("%s-%d", t.cfg.BrokerStatefulSet, ordinal)
	pod, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get pod %s/%s: %w", ns, name, err)
	}
	old := pod.UID
	grace := int64(t.cfg.BrokerGracePeriod.Seconds())
	if grace < 1 {
		grace = 1
	}
	err = c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: &grace,
		Preconditions:      &metav1.Preconditions{UID: &old},
	})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	t.log.Info("broker pod deleted", "namespace", ns, "pod", name, "uid", old)
	err = t.poll(ctx, fmt.Sprintf("wait for replacement of pod %s/%s to be Ready", ns, name), func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return p.UID != old && podReady(p) && p.DeletionTimestamp == nil, nil
	})
	if err != nil {
		return err
	}
	t.log.Info("broker pod replaced and Ready", "namespace", ns, "pod", name)
	return nil
}

// podReady reports whether p's Ready condition is True.
func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ResizeCluster sets the broker StatefulSet's replicas through the scale
// subresource and waits until exactly that many brokers are Ready. Kafka does
// not move partitions by itself: replicas on removed brokers stay
// under-replicated, as on any real cluster that loses brokers.
func (t *Target) ResizeCluster(ctx context.Context, cluster controller.Cluster, brokers int) error {
	if brokers < 1 {
		return fmt.Errorf("resize %s: broker count must be at least 1, got %d", cluster, brokers)
	}
	c, ns, err := t.client(cluster)
	if err != nil {
		return fmt.Errorf("resize: %w", err)
	}
	name := t.cfg.BrokerStatefulSet
	sc, err := c.AppsV1().StatefulSets(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("resize %s: get scale of statefulset %s/%s: %w", cluster, ns, name, err)
	}
	from := sc.Spec.Replicas
	sc.Spec.Replicas = int32(brokers)
	if _, err := c.AppsV1().StatefulSets(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("resize %s: update scale of statefulset %s/%s to %d: %w", cluster, ns, name, brokers, err)
	}
	t.log.Info("broker statefulset scaled", "cluster", cluster, "from", from, "to", brokers)
	err = t.poll(ctx, fmt.Sprintf("wait for statefulset %s/%s to have %d Ready brokers", ns, name, brokers), func(ctx context.Context) (bool, error) {
		s, err := c.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		settled := s.Status.ObservedGeneration >= s.Generation
		return settled && s.Status.Replicas == int32(brokers) && s.Status.ReadyReplicas == int32(brokers), nil
	})
	if err != nil {
		return fmt.Errorf("resize %s: %w", cluster, err)
	}
	t.log.Info("broker statefulset settled", "cluster", cluster, "brokers", brokers)
	return nil
}

// Brokers returns the number of Ready brokers of cluster.
func (t *Target) Brokers(ctx context.Context, cluster controller.Cluster) (int, error) {
	c, ns, err := t.client(cluster)
	if err != nil {
		return 0, fmt.Errorf("brokers: %w", err)
	}
	s, err := c.AppsV1().StatefulSets(ns).Get(ctx, t.cfg.BrokerStatefulSet, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("brokers of %s: get statefulset %s/%s: %w", cluster, ns, t.cfg.BrokerStatefulSet, err)
	}
	return int(s.Status.ReadyReplicas), nil
}

// uidSet collects pod UIDs.
func uidSet(pods []corev1.Pod) map[types.UID]bool {
	m := make(map[types.UID]bool, len(pods))
	for _, p := range pods {
		m[p.UID] = true
	}
	return m
}
