package k8stest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// NetworkChaosGVR is Chaos Mesh's NetworkChaos resource.
var NetworkChaosGVR = schema.GroupVersionResource{Group: "chaos-mesh.org", Version: "v1alpha1", Resource: "networkchaos"}

// ChaosMesh stands in for Chaos Mesh's controller, which needs real nodes
// and a container runtime to inject anything: it marks every NetworkChaos
// AllInjected (the condition the kubernetes target waits for) and records
// each one's spec as the API server stored it (validated by the real CRD).
// Deleted objects go at once (no finalizer).
type ChaosMesh struct {
	mu   sync.Mutex
	seen map[string]map[string]any // namespace/name -> spec
}

// StartChaosMesh runs the stand-in until the test ends.
func (c *Cluster) StartChaosMesh(t testing.TB) *ChaosMesh {
	t.Helper()
	cm := &ChaosMesh{seen: map[string]map[string]any{}}
	dyn := dynamic.NewForConfigOrDie(c.Config)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			list, err := dyn.Resource(NetworkChaosGVR).List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range list.Items {
					if err := cm.inject(ctx, dyn, &list.Items[i]); err != nil && ctx.Err() == nil {
						t.Logf("k8stest: chaos mesh stand-in: %v", err)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return cm
}

func (cm *ChaosMesh) inject(ctx context.Context, dyn dynamic.Interface, u *unstructured.Unstructured) error {
	key := u.GetNamespace() + "/" + u.GetName()
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	cm.mu.Lock()
	cm.seen[key] = spec
	cm.mu.Unlock()
	if u.GetDeletionTimestamp() != nil {
		return nil
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "AllInjected" && m["status"] == "True" {
			return nil
		}
	}
	_ = unstructured.SetNestedSlice(u.Object, []any{
		map[string]any{"type": "Selected", "status": "True"},
		map[string]any{"type": "AllInjected", "status": "True"},
		map[string]any{"type": "AllRecovered", "status": "False"},
		map[string]any{"type": "Paused", "status": "False"},
	}, "status", "conditions")
	// Chaos Mesh's schema requires status.experiment; the stand-in records
	// the fault as running on every selected pod.
	_ = unstructured.SetNestedField(u.Object, map[string]any{"desiredPhase": "Run"}, "status", "experiment")
	res := dyn.Resource(NetworkChaosGVR).Namespace(u.GetNamespace())
	if _, err := res.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		if _, err2 := res.Update(ctx, u, metav1.UpdateOptions{}); err2 != nil { // no status subresource
			return fmt.Errorf("mark networkchaos %s injected: %v; %v", key, err, err2)
		}
	}
	return nil
}

// Seen returns the spec of every NetworkChaos the stand-in has seen, by
// namespace/name, including those deleted since.
func (cm *ChaosMesh) Seen() map[string]map[string]any {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	out := make(map[string]map[string]any, len(cm.seen))
	for k, v := range cm.seen {
		out[k] = v
	}
	return out
}
