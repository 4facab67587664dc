// Package deploy_test checks kmt's Kubernetes manifests without a cluster:
// every kustomization renders with kustomize's Go API, every rendered object
// decodes strictly into its Go type, the objects obey kmt's policies, and the
// k8s.mk targets run the expected kubectl/helm/kops commands.
package deploy_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The Prometheus Operator's PodMonitor (monitoring.coreos.com/v1), the
// fields kmt may use, written out so rendered PodMonitors decode strictly.
type podMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       podMonitorSpec    `json:"spec"`
}

type podMonitorSpec struct {
	JobLabel            string               `json:"jobLabel,omitempty"`
	PodTargetLabels     []string             `json:"podTargetLabels,omitempty"`
	PodMetricsEndpoints []podMetricsEndpoint `json:"podMetricsEndpoints"`
	Selector            metav1.LabelSelector `json:"selector"`
	NamespaceSelector   *namespaceSelector   `json:"namespaceSelector,omitempty"`
	SampleLimit         *uint64              `json:"sampleLimit,omitempty"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type podMetricsEndpoint struct {
	Port              *string             `json:"port,omitempty"`
	PortNumber        *int32              `json:"portNumber,omitempty"`
	TargetPort        *intstr.IntOrString `json:"targetPort,omitempty"`
	Path              string              `json:"path,omitempty"`
	Scheme            string              `json:"scheme,omitempty"`
	Interval          string              `json:"interval,omitempty"`
	ScrapeTimeout     string              `json:"scrapeTimeout,omitempty"`
	HonorLabels       bool                `json:"honorLabels,omitempty"`
	Relabelings       []relabelConfig     `json:"relabelings,omitempty"`
	MetricRelabelings []relabelConfig     `json:"metricRelabelings,omitempty"`
}

type relabelConfig struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    *string  `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

var (
	promDuration = regexp.MustCompile(`^(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$`)
	labelName    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	relabelActs  = []string{"", "replace", "keep", "drop", "hashmod", "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase", "keepequal", "dropequal"}
)

// object is one rendered object: its identity, raw JSON and decoded form.
type object struct {
	gvk       schema.GroupVersionKind
	name      string
	namespace string
	labels    map[string]string
	raw       []byte
	typed     any // *appsv1.Deployment, *podMonitor, ...
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s", o.gvk.Kind, o.namespace, o.name)
}

// render builds the kustomization in dir (relative to the test's working
// directory) as `kubectl apply -k` would: default load restrictions, no
// plugins.
func render(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range rm.Resources() {
		raw, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: marshal %s: %v", dir, r.CurId(), err)
		}
		gvk := schema.FromAPIVersionAndKind(r.GetApiVersion(), r.GetKind())
		o := object{gvk: gvk, name: r.GetName(), namespace: r.GetNamespace(), labels: r.GetLabels(), raw: raw}
		o.typed = decodeStrict(t, dir, o)
		out = append(out, o)
	}
	return out
}

// decodeStrict decodes o into its Go type, failing on unknown or duplicate
// fields: Kubernetes types from client-go's scheme, PodMonitor from the
// type above; any other kind fails.
func decodeStrict(t *testing.T, dir string, o object) any {
	t.Helper()
	var target any
	switch {
	case o.gvk == schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}:
		target = &podMonitor{}
	default:
		obj, err := scheme.Scheme.New(o.gvk)
		if err != nil {
			t.Errorf("%s: %s: no Go type for %s: %v", dir, o, o.gvk, err)
			return nil
		}
		target = obj
	}
	strictErrs, err := kjson.UnmarshalStrict(o.raw, target)
	if err != nil {
		t.Errorf("%s: %s does not decode: %v", dir, o, err)
		return nil
	}
	for _, e := range strictErrs {
		t.Errorf("%s: %s: %v", dir, o, e)
	}
	if pm, ok := target.(*podMonitor); ok {
		checkPodMonitorSchema(t, dir, o, pm)
	}
	return target
}

// checkPodMonitorSchema checks what the PodMonitor CRD's OpenAPI schema and
// Prometheus enforce beyond field names.
func checkPodMonitorSchema(t *testing.T, dir string, o object, pm *podMonitor) {
	t.Helper()
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		t.Errorf("%s: %s has no podMetricsEndpoints", dir, o)
	}
	if len(pm.Spec.Selector.MatchLabels) == 0 && len(pm.Spec.Selector.MatchExpressions) == 0 {
		t.Errorf("%s: %s selects every pod", dir, o)
	}
	for _, ep := range pm.Spec.PodMetricsEndpoints {
		if ep.Port == nil && ep.PortNumber == nil {
			t.Errorf("%s: %s endpoint without port", dir, o)
		}
		for _, d := range []string{ep.Interval, ep.ScrapeTimeout} {
			if d != "" && !promDuration.MatchString(d) {
				t.Errorf("%s: %s: %q is not a Prometheus duration", dir, o, d)
			}
		}
		for _, rc := range append(ep.Relabelings, ep.MetricRelabelings...) {
			for _, l := range rc.SourceLabels {
				if !labelName.MatchString(l) {
					t.Errorf("%s: %s: source label %q invalid", dir, o, l)
				}
			}
			if rc.TargetLabel != "" && !labelName.MatchString(rc.TargetLabel) {
				t.Errorf("%s: %s: target label %q invalid", dir, o, rc.TargetLabel)
			}
			if !contains(relabelActs, strings.ToLower(rc.Action)) {
				t.Errorf("%s: %s: relabel action %q invalid", dir, o, rc.Action)
			}
			if _, err := regexp.Compile(rc.Regex); err != nil {
				t.Errorf("%s: %s: regex %q: %v", dir, o, rc.Regex, err)
			}
		}
	}
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// byKind returns the objects of kind, sorted by namespace/name.
func byKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.gvk.Kind == kind {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// find returns the object kind namespace/name, failing the test when absent.
func find(t *testing.T, objs []object, kind, ns, name string) object {
	t.Helper()
	for _, o := range objs {
		if o.gvk.Kind == kind && o.namespace == ns && o.name == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s", kind, ns, name)
	return object{}
}

// podSpecs returns every pod template of the objects with its owner.
func podSpecs(objs []object) map[string]*corev1.PodTemplateSpec {
	out := map[string]*corev1.PodTemplateSpec{}
	for _, o := range objs {
		if tpl := podTemplate(o); tpl != nil {
			out[o.String()] = tpl
		}
	}
	return out
}
