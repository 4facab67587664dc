package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kmtproject/kmt/controller"
)

// NetworkChaosGVR is Chaos Mesh's NetworkChaos resource.
var NetworkChaosGVR = schema.GroupVersionResource{Group: "chaos-mesh.org", Version: "v1alpha1", Resource: "networkchaos"}

// Labels put on every NetworkChaos the target creates.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "kmt-controller"
	RunLabel       = "kmt.dev/run"
)

// wanTarget is what a WAN fault is aimed at, seen from the replicator: the
// source brokers' external addresses (two clusters) or the source broker
// pods themselves (one cluster).
type wanTarget struct {
	external []string
	podNS    string
	podLabel map[string]string
}

// Network degrades the replicator's link to the source brokers with Chaos
// Mesh NetworkChaos resources in the destination namespace, each selecting
// the replicator pods: Cut becomes a partition; Latency, Jitter and LossPct
// one netem fault (action delay, loss or netem); Bandwidth a tbf fault on the
// source → replicator direction, which Chaos Mesh can shape only when the
// source broker pods are in the same cluster. It returns once Chaos Mesh
// reports every fault injected; undo deletes them and waits until Chaos Mesh
// has recovered them. ResetPct and Stall have no Chaos Mesh equivalent and
// are ignored with a warning.
func (t *Target) Network(ctx context.Context, spec controller.NetworkSpec) (func(context.Context) error, error) {
	if spec.ResetPct > 0 {
		t.log.Warn("network: reset_pct has no Chaos Mesh equivalent on the kubernetes target; ignored", "reset_pct", spec.ResetPct)
	}
	if spec.Stall > 0 {
		t.log.Warn("network: stall is the local target's rendering of loss; ignored on kubernetes (use loss_pct)", "stall", spec.Stall)
	}
	if spec.LossPct < 0 || spec.LossPct > 100 {
		return nil, fmt.Errorf("network: loss_pct %g is not within 0..100", spec.LossPct)
	}
	if spec.Latency < 0 || spec.Jitter < 0 || spec.Bandwidth < 0 {
		return nil, errors.New("network: latency, jitter and bandwidth must not be negative")
	}
	sel, err := t.replicatorLabels(ctx)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	wan, err := t.wanTarget(ctx)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	specs, err := chaosSpecs(spec, wan)
	if err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if len(specs) == 0 {
		return nil, errors.New("network: the spec degrades nothing (no latency, jitter, loss, bandwidth or cut)")
	}
	var created []string
	undo := func(ctx context.Context) error {
		var errs []error
		for _, n := range created {
			if err := t.removeChaos(ctx, n); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, s := range specs {
		name, err := t.createChaos(ctx, sel, s)
		if name != "" {
			created = append(created, name)
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("network: %w", err), undo(context.WithoutCancel(ctx)))
		}
	}
	return undo, nil
}

// chaosSpecs turns a NetworkSpec into NetworkChaos specs (without selector
// and duration), one per Chaos Mesh action needed.
func chaosSpecs(spec controller.NetworkSpec, wan wanTarget) ([]map[string]any, error) {
	aim := func(m map[string]any, direction string) map[string]any {
		m["direction"] = direction
		if len(wan.external) > 0 {
			m["externalTargets"] = toAnySlice(wan.external)
		} else {
			m["target"] = map[string]any{
				"mode": "all",
				"selector": map[string]any{
					"namespaces":     []any{wan.podNS},
					"labelSelectors": toAnyMap(wan.podLabel),
				},
			}
		}
		return m
	}
	if spec.Cut {
		return []map[string]any{aim(map[string]any{"action": "partition"}, "to")}, nil
	}
	var out []map[string]any
	delay := spec.Latency > 0 || spec.Jitter > 0
	loss := spec.LossPct > 0
	if delay || loss {
		m := map[string]any{}
		switch {
		case delay && loss:
			m["action"] = "netem"
		case delay:
			m["action"] = "delay"
		default:
			m["action"] = "loss"
		}
		if delay {
			m["delay"] = map[string]any{
				"latency":     durationString(spec.Latency),
				"jitter":      durationString(spec.Jitter),
				"correlation": "0",
			}
		}
		if loss {
			m["loss"] = map[string]any{
				"loss":        strconv.FormatFloat(spec.LossPct, 'f', -1, 64),
				"correlation": "0",
			}
		}
		out = append(out, aim(m, "to"))
	}
	if spec.Bandwidth > 0 {
		if len(wan.external) > 0 {
			return nil, errors.New("bandwidth: the data flows from the source brokers to the replicator, and Chaos Mesh shapes only the egress of pods it selects; " +
				"with the source brokers in another cluster that direction cannot be shaped from the destination (run bandwidth scenarios on the single-cluster overlay, or cap the source brokers' egress there)")
		}
		// direction "from": shape the packets the target (source broker
		// pods) send to the selected replicator pods.
		out = append(out, aim(map[string]any{
			"action": "bandwidth",
			"bandwidth": map[string]any{
				"rate":   strconv.FormatInt(spec.Bandwidth, 10) + "bps",
				"limit":  min(max(spec.Bandwidth, 100_000), math.MaxUint32),   // one second of queue
				"buffer": min(max(spec.Bandwidth/50, 10_000), math.MaxUint32), // 20 ms burst, above any MTU
			},
		}, "from"))
	}
	return out, nil
}

// durationString renders d for Chaos Mesh, which parses Go durations.
func durationString(d time.Duration) string {
	if d == 0 {
		return "0ms"
	}
	return d.String()
}

// wanTarget finds what the replicator reaches the source through.
func (t *Target) wanTarget(ctx context.Context) (wanTarget, error) {
	if len(t.cfg.SourceAddresses) > 0 {
		return wanTarget{external: t.cfg.SourceAddresses}, nil
	}
	ns := t.cfg.SourceNamespace
	svcs, err := t.src.CoreV1().Services(ns).List(ctx, metav1.ListOptions{LabelSelector: ExternalServiceLabel + "=true"})
	if err != nil {
		return wanTarget{}, fmt.Errorf("list external broker services in %s: %w", ns, err)
	}
	if len(svcs.Items) == 0 {
		sts, err := t.src.AppsV1().StatefulSets(ns).Get(ctx, t.cfg.BrokerStatefulSet, metav1.GetOptions{})
		if err != nil {
			return wanTarget{}, fmt.Errorf("get statefulset %s/%s: %w", ns, t.cfg.BrokerStatefulSet, err)
		}
		if sts.Spec.Selector == nil || len(sts.Spec.Selector.MatchLabels) == 0 {
			return wanTarget{}, fmt.Errorf("statefulset %s/%s has no matchLabels selector", ns, t.cfg.BrokerStatefulSet)
		}
		return wanTarget{podNS: ns, podLabel: sts.Spec.Selector.MatchLabels}, nil
	}
	var addrs []string
	for _, s := range svcs.Items {
		got := false
		for _, in := range s.Status.LoadBalancer.Ingress {
			switch {
			case in.Hostname != "":
				addrs, got = append(addrs, in.Hostname), true
			case in.IP != "":
				addrs, got = append(addrs, in.IP), true
			}
		}
		if !got {
			return wanTarget{}, fmt.Errorf("service %s/%s has no load balancer address yet", ns, s.Name)
		}
	}
	sort.Strings(addrs)
	return wanTarget{external: addrs}, nil
}

// createChaos creates one NetworkChaos selecting the replicator pods and
// waits until Chaos Mesh reports it injected. It returns the name whenever
// the object was created, so the caller can remove it on error.
func (t *Target) createChaos(ctx context.Context, selector map[string]string, spec map[string]any) (string, error) {
	t.mu.Lock()
	t.seq++
	name := fmt.Sprintf("kmt-wan-%s-%s-%d", spec["action"], t.run, t.seq)
	t.mu.Unlock()
	ns := t.cfg.DestinationNamespace
	spec["mode"] = "all"
	spec["selector"] = map[string]any{
		"namespaces":     []any{ns},
		"labelSelectors": toAnyMap(selector),
	}
	spec["duration"] = t.cfg.FaultTTL.String()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": NetworkChaosGVR.GroupVersion().String(),
		"kind":       "NetworkChaos",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels":    map[string]any{ManagedByLabel: ManagedByValue, RunLabel: t.run},
		},
		"spec": spec,
	}}
	res := t.dyn.Resource(NetworkChaosGVR).Namespace(ns)
	if _, err := res.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create networkchaos %s/%s: %w", ns, name, err)
	}
	t.mu.Lock()
	t.faults[name] = true
	t.mu.Unlock()
	t.log.Info("fault created", "networkchaos", name, "action", spec["action"])
	err := t.poll(ctx, fmt.Sprintf("wait for networkchaos %s/%s to be injected", ns, name), func(ctx context.Context) (bool, error) {
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return conditionTrue(u, "AllInjected"), nil
	})
	if err != nil {
		return name, err
	}
	t.log.Info("fault injected", "networkchaos", name)
	return name, nil
}

// removeChaos deletes NetworkChaos name and waits until it is gone, which
// with Chaos Mesh's finalizer means the fault has been recovered.
func (t *Target) removeChaos(ctx context.Context, name string) error {
	ns := t.cfg.DestinationNamespace
	res := t.dyn.Resource(NetworkChaosGVR).Namespace(ns)
	err := res.Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete networkchaos %s/%s: %w", ns, name, err)
	}
	err = t.poll(ctx, fmt.Sprintf("wait for networkchaos %s/%s to be recovered and gone", ns, name), func(ctx context.Context) (bool, error) {
		_, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.faults, name)
	t.mu.Unlock()
	t.log.Info("fault removed", "networkchaos", name)
	return nil
}

// conditionTrue reports whether u's status has condition typ with status
// "True".
func conditionTrue(u *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ {
			return m["status"] == "True"
		}
	}
	return false
}

func toAnySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
