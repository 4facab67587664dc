package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kmtproject/kmt/internal/k8stest"
)

// applyOverlay renders a kustomization and applies every object
// server-side, failing on any rejection and on any warning.
func applyOverlay(ctx context.Context, t *testing.T, a *k8stest.Applier, dir string) []object {
	t.Helper()
	objs := render(t, dir)
	before := len(a.Warnings())
	// Namespaces first, as kubectl apply orders them.
	sort.SliceStable(objs, func(i, j int) bool { return objs[i].gvk.Kind == "Namespace" && objs[j].gvk.Kind != "Namespace" })
	for _, o := range objs {
		var u unstructured.Unstructured
		if err := json.Unmarshal(o.raw, &u.Object); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		if _, err := a.Apply(ctx, &u); err != nil {
			t.Errorf("%s: %s rejected: %v", dir, o, err)
		}
	}
	if w := a.Warnings()[before:]; len(w) > 0 {
		t.Errorf("%s: the API server warned:\n  %s", dir, strings.Join(w, "\n  "))
	}
	return objs
}

// waitWorkloads waits until every Deployment and StatefulSet of objs has
// all its replicas Ready (kwok runs them), and fails on a pod the API
// server refused (FailedCreate events, e.g. Pod Security).
func waitWorkloads(ctx context.Context, t *testing.T, cs k8s.Interface, objs []object) {
	t.Helper()
	for _, o := range objs {
		var ready func() (bool, string, error)
		switch o.gvk.Kind {
		case "Deployment":
			ready = func() (bool, string, error) {
				d, err := cs.AppsV1().Deployments(o.namespace).Get(ctx, o.name, metav1.GetOptions{})
				if err != nil {
					return false, "", err
				}
				want := ptrOr(d.Spec.Replicas, 1)
				return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == want && d.Status.UpdatedReplicas == want,
					fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, want), nil
			}
		case "StatefulSet":
			ready = func() (bool, string, error) {
				s, err := cs.AppsV1().StatefulSets(o.namespace).Get(ctx, o.name, metav1.GetOptions{})
				if err != nil {
					return false, "", err
				}
				want := ptrOr(s.Spec.Replicas, 1)
				return s.Status.ObservedGeneration >= s.Generation && s.Status.ReadyReplicas == want,
					fmt.Sprintf("%d/%d ready", s.Status.ReadyReplicas, want), nil
			}
		default:
			continue
		}
		var last string
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			ok, s, err := ready()
			last = s
			return ok, err
		})
		if err != nil {
			t.Errorf("%s not ready (%s): %v%s", o, last, err, events(ctx, cs, o.namespace))
		}
	}
	for _, ns := range kmtNamespaces {
		ev, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ev.Items {
			t.Errorf("%s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
	}
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// events renders ns's Warning events, for a failure message.
func events(ctx context.Context, cs k8s.Interface, ns string) string {
	ev, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "type=Warning"})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ev.Items {
		fmt.Fprintf(&b, "\n  %s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
	}
	return b.String()
}

// TestOverlaysOnARealAPIServer applies every kustomization of deploy/ to a
// real API server, server-side, with the CRDs they use installed from
// their projects and both namespaces enforcing the restricted Pod Security
// Standard: nothing is rejected, nothing is warned about, and every
// workload's pods are admitted and become Ready (kwok plays the kubelet).
// The two-cluster overlays (source, destination, chaos/two-clusters) and
// the single-cluster ones each get their own control plane.
func TestOverlaysOnARealAPIServer(t *testing.T) {
	for _, group := range [][]string{
		{"overlays/source", "overlays/destination", "chaos/two-clusters"},
		{"overlays/single-cluster", "chaos/single-cluster"},
	} {
		// One control plane per topology: a cluster does not switch from
		// one to the other in place (a StatefulSet's volume claims are
		// immutable), nor is it meant to.
		t.Run(group[0], func(t *testing.T) {
			c := k8stest.Start(t)
			c.InstallCRDs(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			a := c.Applier(t)
			var objs []object
			for _, dir := range group {
				objs = append(objs, applyOverlay(ctx, t, a, dir)...)
			}
			waitWorkloads(ctx, t, c.Client, objs)
			for _, ns := range kmtNamespaces {
				n, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if n.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
					t.Errorf("namespace %s labels %v: want Pod Security restricted enforced", ns, n.Labels)
				}
			}
			// The controller Job's pod was admitted under restricted too.
			pods, err := c.Client.CoreV1().Pods("kmt-destination").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kmt-controller"})
			if err != nil || len(pods.Items) == 0 {
				t.Errorf("controller Job pod: %v, %d pods%s", err, len(pods.Items), events(ctx, c.Client, "kmt-destination"))
			}
		})
	}
}

// access is one request the controller makes (or must not be able to).
type access struct {
	ns, verb, group, resource, sub, name string
}

func (a access) String() string {
	r := a.resource
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += " " + a.name
	}
	ns := a.ns
	if ns == "" {
		ns = "(cluster)"
	}
	return fmt.Sprintf("%s %s in %s", a.verb, r, ns)
}

// controllerNeeds is every API request controller/kubernetes makes in a
// namespace holding Kafka, the replicator or the fleet (both regions): the
// calls of brokers.go, replicator.go, topics.go and network.go.
func controllerNeeds(ns string) []access {
	out := []access{
		{ns, "get", "", "pods", "", ""},
		{ns, "list", "", "pods", "", ""},
		{ns, "delete", "", "pods", "", ""},
		{ns, "list", "", "services", "", ""},
		{ns, "get", "apps", "statefulsets", "", "kafka-broker"},
		{ns, "get", "apps", "statefulsets", "scale", "kafka-broker"},
		{ns, "update", "apps", "statefulsets", "scale", "kafka-broker"},
		{ns, "get", "apps", "deployments", "", "mirrormaker2"},
		{ns, "get", "apps", "deployments", "scale", "mirrormaker2"},
		{ns, "update", "apps", "deployments", "scale", "mirrormaker2"},
		{ns, "get", "apps", "deployments", "", "kmt-producer"},
		{ns, "patch", "apps", "deployments", "", "kmt-producer"},
		{ns, "get", "apps", "deployments", "", "kmt-consumer"},
		{ns, "patch", "apps", "deployments", "", "kmt-consumer"},
		{ns, "create", "chaos-mesh.org", "networkchaos", "", ""},
		{ns, "get", "chaos-mesh.org", "networkchaos", "", ""},
		{ns, "delete", "chaos-mesh.org", "networkchaos", "", ""},
	}
	return out
}

// controllerMustNot is a sample of what the controller must not be able to
// do: anything cluster-wide, reading secrets, creating or changing
// workloads beyond scaling, exec, RBAC, impersonation.
func controllerMustNot(ns string) []access {
	return []access{
		{"", "list", "", "pods", "", ""},
		{"", "list", "", "namespaces", "", ""},
		{"", "get", "", "nodes", "", ""},
		{"", "list", "chaos-mesh.org", "networkchaos", "", ""},
		{"", "create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""},
		{"", "impersonate", "", "serviceaccounts", "", ""},
		{ns, "get", "", "secrets", "", ""},
		{ns, "list", "", "secrets", "", ""},
		{ns, "create", "", "pods", "", ""},
		{ns, "create", "", "pods", "exec", ""},
		{ns, "create", "", "pods", "eviction", ""},
		{ns, "update", "", "pods", "", ""},
		{ns, "deletecollection", "", "pods", "", ""},
		{ns, "update", "", "configmaps", "", ""},
		{ns, "create", "", "serviceaccounts", "token", "kmt-controller"},
		{ns, "patch", "apps", "deployments", "", "mirrormaker2"},
		{ns, "update", "apps", "deployments", "", "kmt-producer"},
		{ns, "delete", "apps", "deployments", "", "kmt-producer"},
		{ns, "create", "apps", "deployments", "", ""},
		{ns, "patch", "apps", "statefulsets", "", "kafka-broker"},
		{ns, "delete", "apps", "statefulsets", "", "kafka-broker"},
		{ns, "create", "", "services", "", ""},
		{ns, "update", "chaos-mesh.org", "networkchaos", "", ""},
		{ns, "create", "chaos-mesh.org", "podchaos", "", ""},
		{ns, "create", "rbac.authorization.k8s.io", "rolebindings", "", ""},
		{ns, "bind", "rbac.authorization.k8s.io", "roles", "", ""},
		{ns, "escalate", "rbac.authorization.k8s.io", "roles", "", ""},
	}
}

// TestControllerRBACOnARealAPIServer checks the controller's permissions
// as the API server's authorizer sees them, for its real ServiceAccounts:
// with SubjectAccessReviews, everything controller/kubernetes calls is
// allowed and a sample of everything else is denied; with a
// SelfSubjectRulesReview made as the ServiceAccount, the rules it holds in
// each namespace are exactly those it needs (nothing else), and it holds
// none in namespaces other than kmt's.
func TestControllerRBACOnARealAPIServer(t *testing.T) {
	c := k8stest.Start(t)
	c.InstallCRDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := c.Applier(t)
	// Single cluster: the controller (kmt-destination's ServiceAccount)
	// acts on both namespaces. Two clusters: each region's own
	// ServiceAccount acts on its namespace (the source's through its token).
	applyOverlay(ctx, t, a, "overlays/single-cluster")
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	type subject struct {
		sa  string   // ServiceAccount namespace
		nss []string // namespaces it acts on
	}
	// The source's own kmt-controller ServiceAccount is what the
	// controller uses across two clusters (its token): bound in kmt-source
	// only.
	for _, s := range []subject{
		{"kmt-destination", []string{"kmt-destination", "kmt-source"}},
		{"kmt-source", []string{"kmt-source"}},
	} {
		user := "system:serviceaccount:" + s.sa + ":kmt-controller"
		check := func(ac access) bool {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + s.sa, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: ac.ns, Verb: ac.verb, Group: ac.group, Resource: ac.resource, Subresource: ac.sub, Name: ac.name,
				},
			}}
			r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("%s: %v", ac, err)
			}
			return r.Status.Allowed
		}
		for _, ns := range s.nss {
			for _, ac := range controllerNeeds(ns) {
				if !check(ac) {
					t.Errorf("%s: denied %s, which the controller needs", user, ac)
				}
			}
			for _, ac := range controllerMustNot(ns) {
				if check(ac) {
					t.Errorf("%s: allowed %s", user, ac)
				}
			}
		}
		others := []string{"elsewhere"}
		for _, ns := range kmtNamespaces {
			if !slices.Contains(s.nss, ns) {
				others = append(others, ns)
			}
		}
		for _, ns := range others {
			for _, ac := range controllerNeeds(ns) {
				if check(ac) {
					t.Errorf("%s: allowed %s outside its namespaces", user, ac)
				}
			}
		}

		// Exactly these rules, as the ServiceAccount itself sees them, on
		// top of what any ServiceAccount holds (the baseline: a
		// ServiceAccount without bindings).
		_, saCfg := c.ServiceAccountKubeconfig(t, s.sa, "kmt-controller", "sa-"+s.sa)
		sacs := k8s.NewForConfigOrDie(saCfg)
		_, baseCfg := c.ServiceAccountKubeconfig(t, "elsewhere", "default", "base")
		basecs := k8s.NewForConfigOrDie(baseCfg)
		for _, ns := range append(slices.Clone(s.nss), others...) {
			base := rulesOf(ctx, t, basecs, ns)
			got := slices.DeleteFunc(rulesOf(ctx, t, sacs, ns), func(r string) bool { return slices.Contains(base, r) })
			var want []string
			if slices.Contains(s.nss, ns) {
				want = wantControllerRules
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s in %s holds rules\n  %s\nwant exactly\n  %s", user, ns, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
		}
	}
}

// wantControllerRules are the controller Role's rules flattened to one
// "verb group/resource[ name]" per line, sorted.
var wantControllerRules = func() []string {
	var out []string
	for _, r := range wantRoles["kmt-controller"] {
		out = append(out, flatten(r.Verbs, r.APIGroups, r.Resources, r.ResourceNames)...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}()

func flatten(verbs, groups, resources, names []string) []string {
	var out []string
	if len(names) == 0 {
		names = []string{""}
	}
	for _, v := range verbs {
		for _, g := range groups {
			for _, r := range resources {
				for _, n := range names {
					s := v + " " + g + "/" + r
					if n != "" {
						s += " " + n
					}
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// rulesOf returns the resource rules cs's user holds in ns, flattened and
// sorted, without reviewing its own access (system:basic-user's grant to
// every authenticated user).
func rulesOf(ctx context.Context, t *testing.T, cs k8s.Interface, ns string) []string {
	t.Helper()
	r, err := cs.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("selfsubjectrulesreview in %s: %v", ns, err)
	}
	if r.Status.Incomplete {
		t.Errorf("selfsubjectrulesreview in %s incomplete: %s", ns, r.Status.EvaluationError)
	}
	var out []string
	for _, rr := range r.Status.ResourceRules {
		for _, s := range flatten(rr.Verbs, rr.APIGroups, rr.Resources, rr.ResourceNames) {
			if strings.HasPrefix(s, "create authorization.k8s.io/selfsubject") || strings.HasPrefix(s, "create authentication.k8s.io/selfsubjectreviews") {
				continue
			}
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// helmStub stands in for helm, whose charts need the internet: it says so
// and does nothing. (Container images need nothing: kwok runs no
// containers.)
const helmStub = `#!/bin/sh
echo "helm (stubbed in the real-API-server tests: charts need the internet): helm $*"
`

// realMake runs make TARGET in sb against the real API server, kubeconfig
// KUBECONFIG, with a real kubectl and the helm stub on PATH.
func realMake(t *testing.T, sb *sandbox, kubeconfig string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", append([]string{"--no-print-directory", "IMAGE=registry.example/kmt:test", "K8S_TIMEOUT=3m"}, args...)...)
	cmd.Dir = sb.dir
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SOURCE_CONTEXT", "DEST_CONTEXT", "KOPS_STATE_STORE", "IMAGE", "VERSION", "SCENARIO", "KUBECONFIG":
			continue
		case "PATH":
			e = "PATH=" + sb.bin + string(os.PathListSeparator) + strings.TrimPrefix(e, "PATH=")
		}
		cmd.Env = append(cmd.Env, e)
	}
	cmd.Env = append(cmd.Env, "KUBECONFIG="+kubeconfig)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v after %s\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Second), out)
	}
	t.Logf("make %s: %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
	return string(out)
}

// fleetPods returns the UIDs of every pod of the kmt fleet (producers and
// consumers), terminating ones included.
func fleetPods(ctx context.Context, t *testing.T, cs k8s.Interface) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range kmtNamespaces {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name in (kmt-producer,kmt-consumer)"})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range l.Items {
			out[string(p.UID)] = ns + "/" + p.Name
		}
	}
	return out
}

// TestMakeTargetsRealAPIServer runs k8s.mk's targets with the real kubectl
// against a real API server, both regions in one cluster
// (SOURCE_CONTEXT=DEST_CONTEXT) and then as two contexts: make k8s-all
// brings Kafka, MirrorMaker 2 and the fleet up (helm stubbed; the test
// makes what the charts would have: the PodMonitor CRD, the monitoring
// namespace and Grafana's Secret), make k8s-delete-tests returns only once
// the fleet's pods are gone (foreground cascade), and make
// k8s-redeploy-tests replaces every fleet pod with a new Ready one.
func TestMakeTargetsRealAPIServer(t *testing.T) {
	// Deleted pods take 3 s to go, as containers take their grace period
	// on a real node: a target returning before they are gone is caught.
	c := k8stest.Start(t, k8stest.WithPodTermination(3*time.Second))
	c.InstallCRDs(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client.CoreV1().Secrets("monitoring").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-prometheus-stack-grafana"},
		Data:       map[string][]byte{"admin-password": []byte("s3cret")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sb := newSandbox(t)
	// kubectl of the API server's own release, built with it.
	if err := os.Remove(filepath.Join(sb.bin, "kubectl")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(k8stest.Testbin(t), "bin", "kubectl"), filepath.Join(sb.bin, "kubectl")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sb.bin, "helm"), []byte(helmStub))
	if err := os.Chmod(filepath.Join(sb.bin, "helm"), 0o755); err != nil {
		t.Fatal(err)
	}
	one := []string{"SOURCE_CONTEXT=" + c.Context, "DEST_CONTEXT=" + c.Context}

	out := realMake(t, sb, c.Kubeconfig, append([]string{"k8s-all"}, one...)...)
	// kubectl get --raw /readyz prints "ok" without a newline: the target
	// adds it, so the next line does not start glued to it.
	if !regexp.MustCompile(`(?m)^ok$`).MatchString(out) || strings.Contains(out, "ok==") {
		t.Errorf("k8s-all: the readiness output is not a line of its own:\n%s", out)
	}
	for _, want := range []string{"helm (stubbed", "== ready", "password s3cret"} {
		if !strings.Contains(out, want) {
			t.Errorf("k8s-all output lacks %q:\n%s", want, out)
		}
	}
	c.WaitWorkloads(t, 2*time.Minute, kmtNamespaces...)
	first := fleetPods(ctx, t, c.Client)
	if len(first) == 0 {
		t.Fatal("k8s-all started no fleet pods")
	}

	realMake(t, sb, c.Kubeconfig, append([]string{"k8s-delete-tests"}, one...)...)
	if left := fleetPods(ctx, t, c.Client); len(left) != 0 {
		t.Errorf("k8s-delete-tests returned with fleet pods still there: %v", left)
	}
	for _, ns := range kmtNamespaces {
		if _, err := c.Client.AppsV1().StatefulSets(ns).Get(ctx, "kafka-broker", metav1.GetOptions{}); err != nil {
			t.Errorf("k8s-delete-tests removed Kafka: %v", err)
		}
	}

	realMake(t, sb, c.Kubeconfig, append([]string{"k8s-redeploy-tests"}, one...)...)
	second := fleetPods(ctx, t, c.Client)
	if len(second) != len(first) {
		t.Errorf("after k8s-redeploy-tests %d fleet pods, want %d: %v", len(second), len(first), second)
	}
	for uid, name := range second {
		if _, old := first[uid]; old {
			t.Errorf("k8s-redeploy-tests kept pod %s", name)
		}
	}
	c.WaitWorkloads(t, 2*time.Minute, kmtNamespaces...)

	// Two contexts on the one server: the two-cluster recipes (each region
	// through its own context) redeploy and delete the fleet the same way.
	two := filepath.Join(t.TempDir(), "kubeconfig")
	kc, err := os.ReadFile(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"src", "dst"} {
		cfg.Contexts[name] = cfg.Contexts[c.Context].DeepCopy()
	}
	if err := clientcmd.WriteToFile(*cfg, two); err != nil {
		t.Fatal(err)
	}
	both := []string{"SOURCE_CONTEXT=src", "DEST_CONTEXT=dst"}
	realMake(t, sb, two, append([]string{"k8s-redeploy-tests"}, both...)...)
	third := fleetPods(ctx, t, c.Client)
	for uid, name := range third {
		if _, old := second[uid]; old {
			t.Errorf("k8s-redeploy-tests (two contexts) kept pod %s", name)
		}
	}
	realMake(t, sb, two, append([]string{"k8s-delete-tests"}, both...)...)
	if left := fleetPods(ctx, t, c.Client); len(left) != 0 {
		t.Errorf("k8s-delete-tests (two contexts) returned with fleet pods still there: %v", left)
	}
}
