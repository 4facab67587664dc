package deploy_test

import (
	"reflect"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// kustomization is one directory `kubectl apply -k` takes.
type kustomization struct {
	dir string
	// external lists Kind/name objects the pods reference that come from
	// elsewhere (make k8s-all, make k8s-chaos, another kustomization).
	external []string
	// layered: k8s.mk applies it layer by layer (kmt.dev/layer).
	layered bool
}

var kustomizations = []kustomization{
	{dir: "overlays/source", layered: true},
	{dir: "overlays/destination", external: []string{"ConfigMap/kmt-wan"}, layered: true},
	{dir: "overlays/single-cluster", layered: true},
	{dir: "chaos/two-clusters", external: []string{"ConfigMap/kmt-scenarios", "ConfigMap/kmt-wan", "Secret/kmt-source-kubeconfig", "ServiceAccount/kmt-controller"}},
	{dir: "chaos/single-cluster", external: []string{"ConfigMap/kmt-scenarios", "ConfigMap/kmt-wan", "ServiceAccount/kmt-controller"}},
}

var kmtNamespaces = []string{"kmt-source", "kmt-destination"}

func TestEveryKustomizationRendersAndDecodesStrictly(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			objs := render(t, k.dir)
			if len(objs) == 0 {
				t.Fatal("renders no objects")
			}
			for _, o := range objs {
				if o.typed == nil {
					continue // reported by decodeStrict
				}
				if o.gvk.Kind != "Namespace" && !contains(kmtNamespaces, o.namespace) {
					t.Errorf("%s is not in a kmt namespace", o)
				}
			}
		})
	}
}

func TestPolicies(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			objs := render(t, k.dir)
			checkPods(t, objs)
			checkRBAC(t, objs)
			checkReferences(t, objs, k.external)
			checkSelectors(t, objs)
			checkRegionLabels(t, objs)
			if k.layered {
				checkLayers(t, objs)
			}
		})
	}
}

// podTemplate returns o's pod template, nil when o has none.
func podTemplate(o object) *corev1.PodTemplateSpec {
	switch v := o.typed.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template
	case *appsv1.StatefulSet:
		return &v.Spec.Template
	case *appsv1.DaemonSet:
		return &v.Spec.Template
	case *batchv1.Job:
		return &v.Spec.Template
	case *batchv1.CronJob:
		return &v.Spec.JobTemplate.Spec.Template
	}
	return nil
}

// longRunning reports whether o's pods are meant to run until stopped.
func longRunning(o object) bool {
	switch o.gvk.Kind {
	case "Deployment", "StatefulSet", "DaemonSet":
		return true
	}
	return false
}

// checkPods: images pinned, resources set, probes on long-running
// containers, non-root, read-only root filesystem, no privilege.
func checkPods(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		tpl := podTemplate(o)
		if tpl == nil {
			continue
		}
		ps := tpl.Spec
		podNonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			t.Errorf("%s uses host namespaces", o)
		}
		type ctr struct {
			c    corev1.Container
			init bool
		}
		var all []ctr
		for _, c := range ps.InitContainers {
			all = append(all, ctr{c, true})
		}
		for _, c := range ps.Containers {
			all = append(all, ctr{c, false})
		}
		for _, x := range all {
			c := x.c
			where := o.String() + " container " + c.Name
			if !pinned(c.Image) {
				t.Errorf("%s: image %q is not pinned to a version tag or digest", where, c.Image)
			}
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
				t.Errorf("%s: want cpu and memory requests and a memory limit, got %+v", where, r)
			} else if r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
				t.Errorf("%s: memory limit below request", where)
			}
			if !x.init && longRunning(o) && (c.ReadinessProbe == nil || c.LivenessProbe == nil) {
				t.Errorf("%s: long-running container needs readiness and liveness probes", where)
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			nonRoot := podNonRoot || (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot)
			if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
				nonRoot = false
			}
			if !nonRoot {
				t.Errorf("%s: not runAsNonRoot", where)
			}
			for _, uid := range []*int64{sc.RunAsUser, podUser(ps)} {
				if uid != nil && *uid == 0 {
					t.Errorf("%s: runs as uid 0", where)
				}
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", where)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", where)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: root filesystem must be read-only", where)
			}
			if sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: must drop ALL capabilities and add none, got %+v", where, sc.Capabilities)
			}
		}
	}
}

func podUser(ps corev1.PodSpec) *int64 {
	if ps.SecurityContext == nil {
		return nil
	}
	return ps.SecurityContext.RunAsUser
}

// pinned reports whether image names a version: a digest, or a tag other
// than latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	if i < 0 {
		return false
	}
	tag := last[i+1:]
	return tag != "" && tag != "latest"
}

// The only permissions kmt's manifests grant, by Role name.
var wantRoles = map[string][]rbacv1.PolicyRule{
	"kmt-controller": {
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}},
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets", "deployments"}, Verbs: []string{"get"}},
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets/scale", "deployments/scale"}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"kmt-producer", "kmt-consumer"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"chaos-mesh.org"}, Resources: []string{"networkchaos"}, Verbs: []string{"create", "get", "delete"}},
	},
	"kafka-broker-advertise": {
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create"}},
	},
}

// checkRBAC: namespaced Roles only, no wildcards, exactly the permissions
// above, bindings to service accounts of kmt's namespaces.
func checkRBAC(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		switch v := o.typed.(type) {
		case *rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding:
			t.Errorf("%s: cluster-wide RBAC is not allowed", o)
		case *rbacv1.Role:
			for _, r := range v.Rules {
				for _, s := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames} {
					if contains(s, "*") {
						t.Errorf("%s: wildcard in rule %+v", o, r)
					}
				}
				if len(r.NonResourceURLs) > 0 {
					t.Errorf("%s: non-resource URLs in a Role", o)
				}
			}
			want, ok := wantRoles[v.Name]
			if !ok {
				t.Errorf("%s: unexpected Role", o)
			} else if !reflect.DeepEqual(v.Rules, want) {
				t.Errorf("%s rules:\n got %+v\nwant %+v", o, v.Rules, want)
			}
		case *rbacv1.RoleBinding:
			if v.RoleRef.Kind != "Role" || v.RoleRef.APIGroup != rbacv1.GroupName {
				t.Errorf("%s: binds %+v, want a Role", o, v.RoleRef)
			}
			find(t, objs, "Role", o.namespace, v.RoleRef.Name)
			for _, s := range v.Subjects {
				if s.Kind != rbacv1.ServiceAccountKind || !contains(kmtNamespaces, s.Namespace) {
					t.Errorf("%s: subject %+v is not a service account of a kmt namespace", o, s)
				}
			}
		}
	}
}

// checkReferences: every ConfigMap, Secret and ServiceAccount a pod uses
// exists in its namespace (or is listed as provided from elsewhere), and
// every ConfigMap key it reads is there.
func checkReferences(t *testing.T, objs []object, external []string) {
	t.Helper()
	have := func(kind, ns, name string) object {
		for _, o := range objs {
			if o.gvk.Kind == kind && o.namespace == ns && o.name == name {
				return o
			}
		}
		return object{}
	}
	check := func(o object, kind, name, key string, optional bool) {
		if contains(external, kind+"/"+name) || optional {
			return
		}
		ref := have(kind, o.namespace, name)
		if ref.typed == nil {
			t.Errorf("%s references %s %s/%s, which is not rendered", o, kind, o.namespace, name)
			return
		}
		if cm, ok := ref.typed.(*corev1.ConfigMap); ok && key != "" {
			if _, ok := cm.Data[key]; !ok {
				t.Errorf("%s reads key %q of ConfigMap %s, which has no such key", o, key, name)
			}
		}
	}
	opt := func(b *bool) bool { return b != nil && *b }
	for _, o := range objs {
		tpl := podTemplate(o)
		if tpl == nil {
			continue
		}
		ps := tpl.Spec
		if ps.ServiceAccountName != "" {
			check(o, "ServiceAccount", ps.ServiceAccountName, "", false)
		}
		for _, v := range ps.Volumes {
			if v.ConfigMap != nil {
				check(o, "ConfigMap", v.ConfigMap.Name, "", opt(v.ConfigMap.Optional))
			}
			if v.Secret != nil {
				check(o, "Secret", v.Secret.SecretName, "", opt(v.Secret.Optional))
			}
		}
		for _, c := range append(append([]corev1.Container{}, ps.InitContainers...), ps.Containers...) {
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					check(o, "ConfigMap", e.ConfigMapRef.Name, "", opt(e.ConfigMapRef.Optional))
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					r := e.ValueFrom.ConfigMapKeyRef
					check(o, "ConfigMap", r.Name, r.Key, opt(r.Optional))
				}
			}
			mounts := map[string]bool{}
			for _, v := range ps.Volumes {
				mounts[v.Name] = true
			}
			for _, m := range c.VolumeMounts {
				if !mounts[m.Name] && !claimTemplate(o, m.Name) {
					t.Errorf("%s container %s mounts unknown volume %q", o, c.Name, m.Name)
				}
			}
		}
	}
}

func claimTemplate(o object, name string) bool {
	if s, ok := o.typed.(*appsv1.StatefulSet); ok {
		for _, c := range s.Spec.VolumeClaimTemplates {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// checkSelectors: Services, PodDisruptionBudgets and PodMonitors select pods
// that exist in their namespace, and PodMonitors name a container port.
func checkSelectors(t *testing.T, objs []object) {
	t.Helper()
	type pod struct {
		ns     string
		labels labels.Set
		tpl    *corev1.PodTemplateSpec
	}
	var pods []pod
	for _, o := range objs {
		if tpl := podTemplate(o); tpl != nil {
			pods = append(pods, pod{o.namespace, labels.Set(tpl.Labels), tpl})
			if d, ok := o.typed.(*appsv1.Deployment); ok {
				checkOwnSelector(t, o, d.Spec.Selector, tpl)
			}
			if s, ok := o.typed.(*appsv1.StatefulSet); ok {
				checkOwnSelector(t, o, s.Spec.Selector, tpl)
			}
		}
	}
	matching := func(ns string, sel labels.Selector) []pod {
		var out []pod
		for _, p := range pods {
			if p.ns == ns && sel.Matches(p.labels) {
				out = append(out, p)
			}
		}
		return out
	}
	for _, o := range objs {
		switch v := o.typed.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				t.Errorf("%s has no selector", o)
				continue
			}
			sel := labels.SelectorFromSet(v.Spec.Selector)
			// A per-broker Service selects one pod of the StatefulSet by
			// the label its controller adds.
			delete(v.Spec.Selector, "statefulset.kubernetes.io/pod-name")
			if len(matching(o.namespace, labels.SelectorFromSet(v.Spec.Selector))) == 0 {
				t.Errorf("%s selector %s matches no pod template", o, sel)
			}
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || len(matching(o.namespace, sel)) == 0 {
				t.Errorf("%s selects no pods (%v)", o, err)
			}
		case *podMonitor:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			if err != nil {
				t.Errorf("%s: %v", o, err)
				continue
			}
			ps := matching(o.namespace, sel)
			if len(ps) == 0 {
				t.Errorf("%s selects no pods", o)
			}
			for _, ep := range v.Spec.PodMetricsEndpoints {
				for _, p := range ps {
					if ep.Port != nil && !hasPort(p.tpl, *ep.Port) {
						t.Errorf("%s: port %q not on the selected pods", o, *ep.Port)
					}
				}
			}
		}
	}
}

func checkOwnSelector(t *testing.T, o object, sel *metav1.LabelSelector, tpl *corev1.PodTemplateSpec) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || !s.Matches(labels.Set(tpl.Labels)) {
		t.Errorf("%s: selector %v does not match its own pod template (%v)", o, sel, err)
	}
}

func hasPort(tpl *corev1.PodTemplateSpec, name string) bool {
	for _, c := range tpl.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return true
			}
		}
	}
	return false
}

// checkLayers: k8s.mk applies kafka, then replicator, then fleet by label;
// an object in none of them would never be applied.
func checkLayers(t *testing.T, objs []object) {
	t.Helper()
	for _, o := range objs {
		if l := o.labels["kmt.dev/layer"]; !contains([]string{"kafka", "replicator", "fleet"}, l) {
			t.Errorf("%s: kmt.dev/layer is %q, want kafka, replicator or fleet", o, l)
		}
	}
}

// checkRegionLabels: every pod says which region it belongs to, and every
// PodMonitor turns that into the region label (source or destination) that
// the dashboards and alerts filter on.
func checkRegionLabels(t *testing.T, objs []object) {
	t.Helper()
	want := map[string]string{"kmt-source": "source", "kmt-destination": "destination"}
	for _, o := range objs {
		if tpl := podTemplate(o); tpl != nil && tpl.Labels["kmt.dev/region"] != want[o.namespace] {
			t.Errorf("%s: pod label kmt.dev/region=%q, want %q", o, tpl.Labels["kmt.dev/region"], want[o.namespace])
		}
		pm, ok := o.typed.(*podMonitor)
		if !ok {
			continue
		}
		for _, ep := range pm.Spec.PodMetricsEndpoints {
			found := false
			for _, r := range ep.Relabelings {
				found = found || (r.TargetLabel == "region" && reflect.DeepEqual(r.SourceLabels, []string{"__meta_kubernetes_pod_label_kmt_dev_region"}))
			}
			if !found {
				t.Errorf("%s: endpoint does not set the region label from the pod's kmt.dev/region", o)
			}
		}
	}
}
