// Package k8stest runs a real Kubernetes control plane for tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler (and kubectl),
// built from source by scripts/k8s-testbin.sh (make k8s-testbin), plus kwok, which
// plays the kubelet of a few fake nodes so that pods become Running and
// Ready without containers. Everything listens on 127.0.0.1 only, runs in
// its own process group killed when the test ends (and when the test
// binary dies), and is bounded by the test's own timeout.
//
// The tests run when KMT_K8S_TESTBIN names the folder of the binaries
// (make test-k8s sets it); without it they skip, saying how to run them.
// When it is set and a binary is missing, the test fails: CI never skips a
// real-API-server test silently.
package k8stest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// EnvTestbin names the folder of the control-plane binaries (the last line
// of make k8s-testbin). Tests using Start skip when it is unset.
const EnvTestbin = "KMT_K8S_TESTBIN"

// serviceIP is the first address of the service range, the API server's
// own ClusterIP.
const serviceIP = "10.96.0.1"

// Binaries a control plane needs, under DIR/bin.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

// Testbin returns the folder of the control-plane binaries, skipping the
// test when EnvTestbin is unset and failing it when a binary is missing.
func Testbin(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvTestbin)
	if dir == "" {
		t.Skipf("real Kubernetes API server tests: %s is not set; run make test-k8s (it builds the binaries once per machine)", EnvTestbin)
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, "bin", b)); err != nil {
			t.Fatalf("%s=%s: %v; run make k8s-testbin", EnvTestbin, dir, err)
		}
	}
	return dir
}

// Node is one fake node kwok runs pods on.
type Node struct {
	Name string
	Zone string
}

type options struct {
	nodes       []Node
	timeout     time.Duration
	deleteDelay time.Duration
}

// Option configures Start.
type Option func(*options)

// WithNodes sets the fake nodes. Default six nodes, two in each of zones
// zone-a, zone-b and zone-c, so that workloads spreading replicas across
// hosts and zones schedule.
func WithNodes(nodes ...Node) Option { return func(o *options) { o.nodes = nodes } }

// WithPodTermination makes a deleted pod stay (terminating) for d before
// kwok removes it, as a kubelet takes a pod's termination grace period to
// stop its containers. Default 0: deleted pods go at once.
func WithPodTermination(d time.Duration) Option { return func(o *options) { o.deleteDelay = d } }

// WithStartTimeout bounds the start of the control plane. Default 3m.
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// Cluster is a running control plane.
type Cluster struct {
	// Dir holds the certificates, the kubeconfig, etcd's data and each
	// component's log (NAME.log).
	Dir string
	// Kubeconfig is an admin kubeconfig file (group system:masters) whose
	// one context is named Context.
	Kubeconfig string
	Context    string
	// Config and Client act as the admin.
	Config *rest.Config
	Client k8s.Interface

	pki   *pki
	host  string
	procs []*proc
}

// Start runs a control plane for the test and stops it in t.Cleanup.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	bin := Testbin(t)
	o := options{timeout: 3 * time.Minute}
	for _, z := range []string{"a", "b", "c"} {
		for i := 1; i <= 2; i++ {
			o.nodes = append(o.nodes, Node{Name: fmt.Sprintf("kwok-%s%d", z, i), Zone: "zone-" + z})
		}
	}
	for _, f := range opts {
		f(&o)
	}
	dir, err := os.MkdirTemp("", "kmt-k8s-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, Context: "kmt-test"}
	t.Cleanup(func() {
		c.stop()
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("k8stest: control plane logs kept in %s", dir)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := c.start(ctx, t, bin, o); err != nil {
		t.Fatalf("k8stest: %v%s", err, c.logTails())
	}
	return c
}

func (c *Cluster) start(ctx context.Context, t testing.TB, bin string, o options) error {
	var err error
	if c.pki, err = newPKI(c.Dir); err != nil {
		return err
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	b := func(name string) string { return filepath.Join(bin, "bin", name) }

	if err := c.run("etcd", b("etcd"),
		"--name=default", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL, "--listen-metrics-urls=",
		"--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return err
	}
	if err := waitHTTP(ctx, http.DefaultClient, etcdURL+"/health", `"health":"true"`); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}

	if err := c.run("kube-apiserver", b("kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(c.Dir, "apiserver"),
		"--tls-cert-file="+c.pki.serverCert, "--tls-private-key-file="+c.pki.serverKey,
		"--client-ca-file="+c.pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+c.pki.saPub, "--service-account-signing-key-file="+c.pki.saKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--authorization-mode=Node,RBAC",
		"--endpoint-reconciler-type=none",
		"--allow-privileged=false",
		"--profiling=false"); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.Dir, "kubeconfig")
	if err := c.writeAdminKubeconfig(c.Kubeconfig); err != nil {
		return err
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return fmt.Errorf("admin kubeconfig: %w", err)
	}
	c.Config.QPS, c.Config.Burst = 200, 400
	if c.Client, err = k8s.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return fmt.Errorf("admin http client: %w", err)
	}
	if err := waitHTTP(ctx, hc, c.host+"/readyz", "ok"); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}

	if err := c.run("kube-controller-manager", b("kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0",
		"--service-account-private-key-file="+c.pki.saKey, "--root-ca-file="+c.pki.caCert,
		"--use-service-account-credentials=false"); err != nil {
		return err
	}
	if err := c.run("kube-scheduler", b("kube-scheduler"),
		"--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--bind-address=127.0.0.1", "--secure-port=0"); err != nil {
		return err
	}
	stages, err := kwokConfig(bin, filepath.Join(c.Dir, "kwok.yaml"), o.deleteDelay)
	if err != nil {
		return err
	}
	if err := c.run("kwok", b("kwok"),
		"--kubeconfig="+c.Kubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-label-selector=type=kwok",
		"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
		"--server-address="); err != nil {
		return err
	}
	for _, n := range o.nodes {
		if err := c.createNode(ctx, n); err != nil {
			return err
		}
	}
	// The default ServiceAccount of a namespace, which the controller
	// manager creates, is what shows it is running.
	if err := poll(ctx, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("kube-controller-manager did not create ServiceAccount default/default: %w", err)
	}
	if err := poll(ctx, func() (bool, error) {
		nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == len(o.nodes), nil
	}); err != nil {
		return fmt.Errorf("kwok did not make the %d nodes Ready: %w", len(o.nodes), err)
	}
	pctx, pcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); c.provisionVolumes(pctx) }()
	c.procs = append(c.procs, &proc{name: "volume provisioner", stop: func() { pcancel(); wg.Wait() }})
	t.Logf("k8stest: control plane at %s ready (%d fake nodes); kubeconfig %s", c.host, len(o.nodes), c.Kubeconfig)
	return nil
}

// Host returns the API server's URL, https://127.0.0.1:PORT.
func (c *Cluster) Host() string { return c.host }

// Dynamic returns a dynamic client acting as the admin.
func (c *Cluster) Dynamic() dynamic.Interface { return dynamic.NewForConfigOrDie(c.Config) }

// CAData returns the PEM of the CA the API server's certificate is signed by.
func (c *Cluster) CAData() []byte { return c.pki.caPEM }

func (c *Cluster) writeAdminKubeconfig(path string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Context] = &clientcmdapi.Cluster{Server: c.host, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.pki.adminPEM, ClientKeyData: c.pki.adminKeyPEM}
	cfg.Contexts[c.Context] = &clientcmdapi.Context{Cluster: c.Context, AuthInfo: "admin"}
	cfg.CurrentContext = c.Context
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// ServiceAccountKubeconfig writes a kubeconfig file acting as ServiceAccount
// ns/name, with a token from the TokenRequest API valid for an hour, and
// returns its path and client configuration. Its one context is named
// ctxName, with ns as its namespace.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, ns, name, ctxName string) (string, *rest.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exp := int64(3600)
	var tok string
	err := poll(ctx, func() (bool, error) {
		tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		tok = tr.Status.Token
		return true, nil
	})
	if err != nil {
		t.Fatalf("k8stest: token for serviceaccount %s/%s: %v", ns, name, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[ctxName] = &clientcmdapi.Cluster{Server: c.host, CertificateAuthorityData: c.pki.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok}
	cfg.Contexts[ctxName] = &clientcmdapi.Context{Cluster: ctxName, AuthInfo: name, Namespace: ns}
	cfg.CurrentContext = ctxName
	path := filepath.Join(t.TempDir(), "kubeconfig-"+ns+"-"+name)
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return path, rc
}

func (c *Cluster) createNode(ctx context.Context, n Node) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name,
			Labels: map[string]string{
				"type":                          "kwok",
				"kubernetes.io/hostname":        n.Name,
				"kubernetes.io/os":              "linux",
				"kubernetes.io/arch":            "amd64",
				"topology.kubernetes.io/zone":   n.Zone,
				"topology.kubernetes.io/region": "kmt-test",
			},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		},
		Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	return nil
}

// provisionVolumes plays a storage provisioner: every Pending
// PersistentVolumeClaim gets a PersistentVolume bound to it (hostPath, never
// used: kwok runs no containers), which the controller manager's volume
// binder completes.
func (c *Cluster) provisionVolumes(ctx context.Context) {
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pvcs, err := c.Client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, pvc := range pvcs.Items {
			if pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
				continue
			}
			size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
			class := ""
			if pvc.Spec.StorageClassName != nil {
				class = *pvc.Spec.StorageClassName
			}
			pv := &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(pvc.UID)},
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
					AccessModes:                   pvc.Spec.AccessModes,
					StorageClassName:              class,
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
					ClaimRef: &corev1.ObjectReference{
						Kind: "PersistentVolumeClaim", APIVersion: "v1",
						Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
					},
					PersistentVolumeSource: corev1.PersistentVolumeSource{
						HostPath: &corev1.HostPathVolumeSource{Path: "/kmt-test/" + string(pvc.UID)},
					},
				},
			}
			_, err := c.Client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
				continue
			}
		}
	}
}

// kwokConfig writes kwok's configuration: the stage files of the testbin
// folder, one YAML stream, the pod-delete stage delayed by deleteDelay.
func kwokConfig(bin, path string, deleteDelay time.Duration) (string, error) {
	files, err := filepath.Glob(filepath.Join(bin, "stages", "*.yaml"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("no kwok stage files in %s/stages (run make k8s-testbin)", bin)
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("kwok stages: %w", err)
		}
		objs, err := DecodeYAML(data)
		if err != nil {
			return "", fmt.Errorf("kwok stages: %s: %w", f, err)
		}
		for _, o := range objs {
			if o.GetKind() == "Stage" && o.GetName() == "pod-delete" && deleteDelay > 0 {
				if err := unstructured.SetNestedField(o.Object, deleteDelay.Milliseconds(), "spec", "delay", "durationMilliseconds"); err != nil {
					return "", fmt.Errorf("kwok stages: %w", err)
				}
			}
			y, err := yaml.Marshal(o.Object)
			if err != nil {
				return "", fmt.Errorf("kwok stages: %w", err)
			}
			b.WriteString("---\n")
			b.Write(y)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return "", fmt.Errorf("kwok config: %w", err)
	}
	return path, nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitHTTP polls url until it answers 200 with a body containing want.
func waitHTTP(ctx context.Context, hc *http.Client, url, want string) error {
	var last error
	err := poll(ctx, func() (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			return false, nil
		}
		defer resp.Body.Close()
		buf := make([]byte, 4096)
		n, _ := resp.Body.Read(buf)
		if resp.StatusCode == http.StatusOK && strings.Contains(string(buf[:n]), want) {
			return true, nil
		}
		last = fmt.Errorf("%s: %s: %.200s", url, resp.Status, buf[:n])
		return false, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return err
}

// poll calls f every 200ms until it reports true or an error, or ctx ends.
func poll(ctx context.Context, f func() (bool, error)) error {
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("timed out")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitWorkloads waits until every Deployment and StatefulSet in the
// namespaces has all its replicas Ready and of its current revision,
// failing the test after timeout with the namespaces' Warning events.
func (c *Cluster) WaitWorkloads(t testing.TB, timeout time.Duration, namespaces ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	err := poll(ctx, func() (bool, error) {
		for _, ns := range namespaces {
			deps, err := c.Client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, d := range deps.Items {
				want := int32(1)
				if d.Spec.Replicas != nil {
					want = *d.Spec.Replicas
				}
				s := d.Status
				if s.ObservedGeneration < d.Generation || s.Replicas != want || s.ReadyReplicas != want || s.UpdatedReplicas != want {
					last = fmt.Sprintf("deployment %s/%s: %d/%d ready, %d updated", ns, d.Name, s.ReadyReplicas, want, s.UpdatedReplicas)
					return false, nil
				}
			}
			sts, err := c.Client.AppsV1().StatefulSets(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, st := range sts.Items {
				want := int32(1)
				if st.Spec.Replicas != nil {
					want = *st.Spec.Replicas
				}
				s := st.Status
				if s.ObservedGeneration < st.Generation || s.Replicas != want || s.ReadyReplicas != want {
					last = fmt.Sprintf("statefulset %s/%s: %d/%d ready", ns, st.Name, s.ReadyReplicas, want)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("k8stest: workloads in %v not ready after %s: %s%s", namespaces, timeout, last, c.Events(namespaces...))
	}
}

// Events renders the Warning events of the namespaces, one per line, for
// failure messages.
func (c *Cluster) Events(namespaces ...string) string {
	var b strings.Builder
	for _, ns := range namespaces {
		ev, err := c.Client.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "type=Warning"})
		if err != nil {
			continue
		}
		for _, e := range ev.Items {
			fmt.Fprintf(&b, "\n  %s %s %s/%s: %s", ns, e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
		}
	}
	return b.String()
}
