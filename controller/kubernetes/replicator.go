package kubernetes

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ScaleReplicator sets the replicator Deployment's replicas through the
// scale subresource and waits until exactly that many workers are Ready.
func (t *Target) ScaleReplicator(ctx context.Context, workers int) error {
	if workers < 0 {
		return fmt.Errorf("scale replicator: worker count must not be negative, got %d", workers)
	}
	ns, name := t.cfg.DestinationNamespace, t.cfg.ReplicatorDeployment
	d := t.dst.AppsV1().Deployments(ns)
	sc, err := d.GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("scale replicator: get scale of deployment %s/%s: %w", ns, name, err)
	}
	from := sc.Spec.Replicas
	sc.Spec.Replicas = int32(workers)
	if _, err := d.UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("scale replicator: update scale of deployment %s/%s to %d: %w", ns, name, workers, err)
	}
	t.log.Info("replicator scaled", "deployment", name, "from", from, "to", workers)
	if err := t.waitDeployment(ctx, t.dst, ns, name, int32(workers)); err != nil {
		return fmt.Errorf("scale replicator: %w", err)
	}
	t.log.Info("replicator settled", "workers", workers)
	return nil
}

// waitDeployment waits until deployment ns/name has exactly want pods, all
// Ready and of its current template.
func (t *Target) waitDeployment(ctx context.Context, c Client, ns, name string, want int32) error {
	return t.poll(ctx, fmt.Sprintf("wait for deployment %s/%s to have %d Ready pods", ns, name, want), func(ctx context.Context) (bool, error) {
		dep, err := c.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return deploymentSettled(dep, want), nil
	})
}

func deploymentSettled(d *appsv1.Deployment, want int32) bool {
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.Replicas == want &&
		s.UpdatedReplicas == want && s.ReadyReplicas == want && s.AvailableReplicas == want
}

// Replicators returns the number of Ready replicator workers.
func (t *Target) Replicators(ctx context.Context) (int, error) {
	ns, name := t.cfg.DestinationNamespace, t.cfg.ReplicatorDeployment
	dep, err := t.dst.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("replicators: get deployment %s/%s: %w", ns, name, err)
	}
	return int(dep.Status.ReadyReplicas), nil
}

// KillReplicator deletes every replicator pod with a grace period of 0 (no
// clean shutdown, no offset commit) and waits until the Deployment has the
// same number of Ready workers again, all of them new pods. A pod that
// vanished between the list and its delete (a rollout, an eviction, a
// previous kill's leftovers finishing) is already gone, which is what the
// kill wants: its NotFound is not an error.
func (t *Target) KillReplicator(ctx context.Context) error {
	ns, name := t.cfg.DestinationNamespace, t.cfg.ReplicatorDeployment
	sel, err := t.replicatorSelector(ctx)
	if err != nil {
		return fmt.Errorf("kill replicator: %w", err)
	}
	pods := t.dst.CoreV1().Pods(ns)
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("kill replicator: list pods %s in %s: %w", sel, ns, err)
	}
	dep, err := t.dst.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("kill replicator: get deployment %s/%s: %w", ns, name, err)
	}
	want := int32(1)
	if dep.Spec.Replicas != nil {
		want = *dep.Spec.Replicas
	}
	old := uidSet(list.Items)
	zero := int64(0)
	for _, p := range list.Items {
		err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if apierrors.IsNotFound(err) {
			t.log.Info("replicator pod already gone", "pod", p.Name)
			continue
		}
		if err != nil {
			return fmt.Errorf("kill replicator: delete pod %s/%s: %w", ns, p.Name, err)
		}
	}
	t.log.Info("replicator pods killed", "pods", podNames(list.Items))
	err = t.poll(ctx, fmt.Sprintf("wait for %d new Ready replicator pods in %s", want, ns), func(ctx context.Context) (bool, error) {
		l, err := pods.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return false, err
		}
		var fresh int32
		for i := range l.Items {
			p := &l.Items[i]
			if old[p.UID] {
				return false, nil // an old pod is still there
			}
			if p.DeletionTimestamp == nil && podReady(p) {
				fresh++
			}
		}
		return fresh == want, nil
	})
	if err != nil {
		return fmt.Errorf("kill replicator: %w", err)
	}
	t.log.Info("replicator workers replaced", "workers", want)
	return nil
}

// replicatorSelector returns the replicator Deployment's pod selector.
func (t *Target) replicatorSelector(ctx context.Context) (labels.Selector, error) {
	ns, name := t.cfg.DestinationNamespace, t.cfg.ReplicatorDeployment
	dep, err := t.dst.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get deployment %s/%s: %w", ns, name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return nil, fmt.Errorf("deployment %s/%s selector: %w", ns, name, err)
	}
	return sel, nil
}

// replicatorLabels returns the replicator Deployment's matchLabels, which
// select its pods in a NetworkChaos.
func (t *Target) replicatorLabels(ctx context.Context) (map[string]string, error) {
	ns, name := t.cfg.DestinationNamespace, t.cfg.ReplicatorDeployment
	dep, err := t.dst.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get deployment %s/%s: %w", ns, name, err)
	}
	if dep.Spec.Selector == nil || len(dep.Spec.Selector.MatchLabels) == 0 {
		return nil, fmt.Errorf("deployment %s/%s has no matchLabels selector", ns, name)
	}
	return dep.Spec.Selector.MatchLabels, nil
}

// podNames lists pod names, for logs.
func podNames(pods []corev1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = p.Name
	}
	return out
}
