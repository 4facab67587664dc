package deploy_test

import (
	"strconv"
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

func container(t *testing.T, tpl *corev1.PodTemplateSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, tpl.Spec.InitContainers...), tpl.Spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// checkKafka checks one region's Kafka cluster in namespace ns.
func checkKafka(t *testing.T, objs []object, ns string, controllers int32, strictSpread bool) {
	t.Helper()
	for _, name := range []string{"kafka-controller", "kafka-broker"} {
		o := find(t, objs, "StatefulSet", ns, name)
		s := o.typed.(*appsv1.StatefulSet)
		if name == "kafka-controller" && *s.Spec.Replicas != controllers {
			t.Errorf("%s: %d replicas, want %d", o, *s.Spec.Replicas, controllers)
		}
		k := container(t, &s.Spec.Template, "kafka")
		if !strings.HasPrefix(k.Image, "apache/kafka:4.") {
			t.Errorf("%s: image %s, want the official apache/kafka 4.x", o, k.Image)
		}
		if e := env(k, "CONTROLLER_REPLICAS"); e == nil || e.Value != itoa(controllers) {
			t.Errorf("%s: CONTROLLER_REPLICAS %+v does not match %d controllers", o, e, controllers)
		}
		if len(s.Spec.VolumeClaimTemplates) != 1 || s.Spec.VolumeClaimTemplates[0].Name != "data" {
			t.Errorf("%s: want one data volume claim template", o)
		}
		aff := s.Spec.Template.Spec.Affinity
		if aff == nil || aff.PodAntiAffinity == nil {
			t.Fatalf("%s: no pod anti-affinity", o)
		}
		zone := false
		for _, p := range aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			zone = zone || p.PodAffinityTerm.TopologyKey == "topology.kubernetes.io/zone"
		}
		host := false
		for _, r := range aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			host = host || r.TopologyKey == "kubernetes.io/hostname"
		}
		if !zone || host != strictSpread {
			t.Errorf("%s: zone spread %v, one per node %v (want %v)", o, zone, host, strictSpread)
		}
		pdb := find(t, objs, "PodDisruptionBudget", ns, name).typed.(*policyv1.PodDisruptionBudget)
		sel, _ := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if !sel.Matches(labels.Set(s.Spec.Template.Labels)) || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
			t.Errorf("%s: disruption budget %+v", o, pdb.Spec)
		}
		if name == "kafka-broker" {
			port := ""
			for _, p := range k.Ports {
				if p.ContainerPort == 9092 {
					port = p.Name
				}
			}
			if k.ReadinessProbe == nil || k.ReadinessProbe.TCPSocket == nil || k.ReadinessProbe.TCPSocket.Port.String() != port || port == "" {
				t.Errorf("%s: readiness must check the broker port 9092, got %+v", o, k.ReadinessProbe)
			}
			adv := container(t, &s.Spec.Template, "advertise")
			if adv.Args[0] != "k8s" || adv.Args[1] != "advertise" {
				t.Errorf("%s: advertise init container args %v", o, adv.Args)
			}
			for _, f := range []struct{ env, path string }{{"KMT_POD", "metadata.name"}, {"KMT_NAMESPACE", "metadata.namespace"}} {
				if e := env(adv, f.env); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != f.path {
					t.Errorf("%s: %s must come from the downward API %s", o, f.env, f.path)
				}
			}
		}
	}
	cm := find(t, objs, "ConfigMap", ns, clusterIDName(t, objs, ns)).typed.(*corev1.ConfigMap)
	if len(cm.Data["cluster.id"]) != 22 {
		t.Errorf("%s: cluster.id %q is not a 22-character Kafka cluster id", ns, cm.Data["cluster.id"])
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// clusterIDName returns the generated name of ConfigMap kafka-cluster in ns.
func clusterIDName(t *testing.T, objs []object, ns string) string {
	t.Helper()
	for _, o := range byKind(objs, "ConfigMap") {
		if o.namespace == ns && strings.HasPrefix(o.name, "kafka-cluster-") {
			return o.name
		}
	}
	t.Fatalf("no kafka-cluster ConfigMap in %s", ns)
	return ""
}

func externalServices(objs []object) []*corev1.Service {
	var out []*corev1.Service
	for _, o := range byKind(objs, "Service") {
		if s := o.typed.(*corev1.Service); s.Labels["kmt.dev/broker-external"] == "true" {
			out = append(out, s)
		}
	}
	return out
}

func TestSourceOverlay(t *testing.T) {
	objs := render(t, "overlays/source")
	checkKafka(t, objs, "kmt-source", 3, true)
	lbs := externalServices(objs)
	if len(lbs) != 3 {
		t.Fatalf("%d per-broker LoadBalancer Services, want 3", len(lbs))
	}
	for i, s := range lbs {
		pod := "kafka-broker-" + itoa(int32(i))
		if s.Name != pod+"-external" || s.Spec.Type != corev1.ServiceTypeLoadBalancer ||
			s.Spec.Selector["statefulset.kubernetes.io/pod-name"] != pod || s.Spec.Ports[0].Port != 9094 ||
			len(s.Spec.LoadBalancerSourceRanges) == 0 {
			t.Errorf("per-broker service %d: %+v", i, s)
		}
	}
	sts := find(t, objs, "StatefulSet", "kmt-source", "kafka-broker").typed.(*appsv1.StatefulSet)
	adv := container(t, &sts.Spec.Template, "advertise")
	if e := env(adv, "KMT_EXTERNAL_SERVICE"); e == nil || e.Value != "{pod}-external" {
		t.Errorf("advertise does not use the per-broker service: %+v", e)
	}
	if e := env(adv, "KMT_TEMPLATE_SERVICE"); e == nil || e.Value != lbs[0].Name {
		t.Errorf("advertise template service %+v, want %s", e, lbs[0].Name)
	}
	// The controller in the other cluster acts here with this token.
	sec := find(t, objs, "Secret", "kmt-source", "kmt-controller-token").typed.(*corev1.Secret)
	if sec.Type != corev1.SecretTypeServiceAccountToken || sec.Annotations[corev1.ServiceAccountNameKey] != "kmt-controller" {
		t.Errorf("controller token secret %+v", sec)
	}
	checkFleet(t, objs, "kmt-source", "kmt-producer", "produce", "9100")
	if len(byKind(objs, "Deployment")) != 2 { // producer, exporter
		t.Errorf("source deployments: %v", byKind(objs, "Deployment"))
	}
}

func TestDestinationOverlay(t *testing.T) {
	objs := render(t, "overlays/destination")
	checkKafka(t, objs, "kmt-destination", 3, true)
	if n := len(externalServices(objs)); n != 0 {
		t.Errorf("destination exposes %d brokers", n)
	}
	checkMirrorMaker2(t, objs, "kmt-destination")
	checkFleet(t, objs, "kmt-destination", "kmt-consumer", "consume", "9101")
}

func TestSingleClusterOverlay(t *testing.T) {
	objs := render(t, "overlays/single-cluster")
	checkKafka(t, objs, "kmt-source", 1, false)
	checkKafka(t, objs, "kmt-destination", 1, false)
	for _, o := range byKind(objs, "Service") {
		if o.typed.(*corev1.Service).Spec.Type == corev1.ServiceTypeLoadBalancer {
			t.Errorf("%s: no load balancers in one cluster", o)
		}
	}
	wan := find(t, objs, "ConfigMap", "kmt-destination", "kmt-wan").typed.(*corev1.ConfigMap)
	if got := wan.Data["source.bootstrap.servers"]; got != "kafka-broker-bootstrap.kmt-source.svc:9092" {
		t.Errorf("replicator reaches the source at %q", got)
	}
	rb := find(t, objs, "RoleBinding", "kmt-source", "kmt-controller").typed.(*rbacv1.RoleBinding)
	found := false
	for _, s := range rb.Subjects {
		found = found || (s.Namespace == "kmt-destination" && s.Name == "kmt-controller")
	}
	if !found {
		t.Errorf("the controller Job's account is not bound in kmt-source: %+v", rb.Subjects)
	}
	checkMirrorMaker2(t, objs, "kmt-destination")
	checkFleet(t, objs, "kmt-source", "kmt-producer", "produce", "9100")
	checkFleet(t, objs, "kmt-destination", "kmt-consumer", "consume", "9101")
	// Both regions are told apart in the metrics by the pod label the
	// PodMonitors turn into the region label (source or destination) the
	// dashboards filter on.
	for ns, region := range map[string]string{"kmt-source": "source", "kmt-destination": "destination"} {
		for o, tpl := range podSpecs(objs) {
			if strings.Contains(o, " "+ns+"/") && tpl.Labels["kmt.dev/region"] != region {
				t.Errorf("%s: pods not labelled kmt.dev/region=%s", o, region)
			}
		}
	}
}

func checkMirrorMaker2(t *testing.T, objs []object, ns string) {
	t.Helper()
	d := find(t, objs, "Deployment", ns, "mirrormaker2").typed.(*appsv1.Deployment)
	c := container(t, &d.Spec.Template, "mirrormaker2")
	if !strings.HasPrefix(c.Image, "apache/kafka:4.") {
		t.Errorf("mirrormaker2 image %s, want the brokers' apache/kafka", c.Image)
	}
	var cm *corev1.ConfigMap
	for _, o := range byKind(objs, "ConfigMap") {
		if o.namespace == ns && strings.HasPrefix(o.name, "mirrormaker2-config-") {
			cm = o.typed.(*corev1.ConfigMap)
		}
	}
	if cm == nil {
		t.Fatal("no mirrormaker2-config ConfigMap")
	}
	if !strings.Contains(cm.Data["start.sh"], "exec /opt/kafka/bin/connect-mirror-maker.sh") {
		t.Error("mirrormaker2 does not run connect-mirror-maker.sh (dedicated mode)")
	}
	props := map[string]string{}
	for _, l := range strings.Split(cm.Data["mm2.properties"], "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			props[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	for k, v := range map[string]string{
		"replication.policy.class":            "org.apache.kafka.connect.mirror.IdentityReplicationPolicy",
		"header.converter":                    "org.apache.kafka.connect.converters.ByteArrayConverter",
		"key.converter":                       "org.apache.kafka.connect.converters.ByteArrayConverter",
		"value.converter":                     "org.apache.kafka.connect.converters.ByteArrayConverter",
		"source->destination.enabled":         "true",
		"destination->source.enabled":         "false",
		"dedicated.mode.enable.internal.rest": "true",
		"destination.bootstrap.servers":       "kafka-broker-bootstrap:9092",
	} {
		if props[k] != v {
			t.Errorf("mm2.properties %s = %q, want %q", k, props[k], v)
		}
	}
	if e := env(c, "SOURCE_BOOTSTRAP"); e == nil || e.ValueFrom.ConfigMapKeyRef.Name != "kmt-wan" {
		t.Errorf("mirrormaker2 source bootstrap %+v, want ConfigMap kmt-wan", e)
	}
}

func checkFleet(t *testing.T, objs []object, ns, name, cmd, port string) {
	t.Helper()
	d := find(t, objs, "Deployment", ns, name).typed.(*appsv1.Deployment)
	c := container(t, &d.Spec.Template, "kmt")
	want := []string{cmd, "--bootstrap-servers=kafka-broker-bootstrap:9092", "--metrics-addr=:" + port}
	if strings.Join(c.Args, " ") != strings.Join(want, " ") {
		t.Errorf("%s args %v, want %v", name, c.Args, want)
	}
	if e := env(c, "KMT_ID"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("%s: --id must come from the pod name (downward API), got %+v", name, e)
	}
	if e := env(c, "KMT_TOPICS"); e == nil || e.Value != "kmt-0,kmt-1" {
		t.Errorf("%s: KMT_TOPICS %+v", name, e)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/kmtproject/kmt:") {
		t.Errorf("%s image %s", name, c.Image)
	}
	pm := find(t, objs, "PodMonitor", ns, name).typed.(*podMonitor)
	if len(pm.Spec.PodMetricsEndpoints) != 1 || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" {
		t.Errorf("%s PodMonitor endpoints %+v", name, pm.Spec.PodMetricsEndpoints)
	}
}

func TestControllerJob(t *testing.T) {
	for _, tc := range []struct {
		dir        string
		kubeconfig bool
	}{{"chaos/two-clusters", true}, {"chaos/single-cluster", false}} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := render(t, tc.dir)
			j := find(t, objs, "Job", "kmt-destination", "kmt-controller").typed.(*batchv1.Job)
			if *j.Spec.BackoffLimit != 0 || j.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Error("a failed scenario must not be retried")
			}
			if j.Spec.Template.Spec.ServiceAccountName != "kmt-controller" {
				t.Errorf("service account %q", j.Spec.Template.Spec.ServiceAccountName)
			}
			c := container(t, &j.Spec.Template, "kmt")
			args := strings.Join(c.Args, " ")
			for _, want := range []string{"controller run", "--scenario=/scenarios/$(KMT_SCENARIO_NAME).yaml", "--target=kubernetes", "--prometheus-url=http://kube-prometheus-stack-prometheus.monitoring.svc:9090"} {
				if !strings.Contains(args, want) {
					t.Errorf("args %q lack %q", args, want)
				}
			}
			if e := env(c, "KMT_SCENARIO_NAME"); e == nil || e.ValueFrom.ConfigMapKeyRef.Name != "kmt-chaos" {
				t.Errorf("scenario name %+v", e)
			}
			kc := env(c, "KMT_K8S_SOURCE_KUBECONFIG")
			if (kc != nil) != tc.kubeconfig {
				t.Errorf("source kubeconfig env %+v, want set=%v", kc, tc.kubeconfig)
			}
			cm := find(t, objs, "ConfigMap", "kmt-destination", "kmt-chaos").typed.(*corev1.ConfigMap)
			if cm.Data["scenario"] == "" {
				t.Error("no default scenario")
			}
		})
	}
}
