package kubernetes

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

func advCfg(pod string) AdvertiseConfig {
	return AdvertiseConfig{Namespace: srcNS, Pod: pod, PollInterval: 5 * time.Millisecond, Timeout: 5 * time.Second, Logger: quietLogger()}
}

func TestAdvertiseInternalOnly(t *testing.T) {
	a, err := Advertise(context.Background(), fake.NewSimpleClientset(), advCfg("kafka-broker-0"))
	if err != nil {
		t.Fatal(err)
	}
	want := "advertised.listeners=INTERNAL://kafka-broker-0.kafka-broker.kmt-source.svc:9092,EXTERNAL://kafka-broker-0.kafka-broker.kmt-source.svc:9094\n"
	if got := a.Properties(); got != want {
		t.Fatalf("properties:\n got %q\nwant %q", got, want)
	}
}

func TestAdvertiseExistingLoadBalancer(t *testing.T) {
	cs := fake.NewSimpleClientset(lbService(srcNS, "kafka-broker-1-external", "", "203.0.113.5"))
	cfg := advCfg("kafka-broker-1")
	cfg.ExternalService = "{pod}-external"
	a, err := Advertise(context.Background(), cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.External != "203.0.113.5:9094" || a.Internal != "kafka-broker-1.kafka-broker.kmt-source.svc:9092" {
		t.Fatalf("advertised %+v", a)
	}
}

// template returns the per-broker Service of broker 0 as deploy/ ships it.
func template() *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kafka-broker-0-external", Namespace: srcNS,
			Labels:      map[string]string{ExternalServiceLabel: "true", PodNameLabel: "kafka-broker-0"},
			Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"},
		},
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeLoadBalancer,
			Selector:                 map[string]string{"app.kubernetes.io/name": "kafka-broker", PodNameLabel: "kafka-broker-0"},
			Ports:                    []corev1.ServicePort{{Name: "external", Port: 9094, TargetPort: intstr.FromInt32(9094), NodePort: 31000}},
			LoadBalancerSourceRanges: []string{"198.51.100.0/24"},
			ExternalTrafficPolicy:    corev1.ServiceExternalTrafficPolicyLocal,
			ClusterIP:                "10.0.0.7",
		},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "b0.elb.example"}}}},
	}
}

func TestAdvertiseCreatesMissingServiceFromTemplateAndWaitsForDNS(t *testing.T) {
	cs := fake.NewSimpleClientset(template())
	cfg := advCfg("kafka-broker-4")
	cfg.ExternalService = "{pod}-external"
	cfg.TemplateService = "kafka-broker-0-external"
	cfg.WaitDNS = true
	var lookups atomic.Int32
	cfg.Resolve = func(_ context.Context, host string) ([]string, error) {
		if host != "b4.elb.example" {
			t.Errorf("resolved %q", host)
		}
		if lookups.Add(1) < 3 {
			return nil, errors.New("no such host")
		}
		return []string{"203.0.113.44"}, nil
	}
	// The cloud provider: give the new Service an address once it exists.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			s, err := cs.CoreV1().Services(srcNS).Get(ctx, "kafka-broker-4-external", metav1.GetOptions{})
			if err == nil {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "b4.elb.example"}}
				if _, err := cs.CoreV1().Services(srcNS).UpdateStatus(ctx, s, metav1.UpdateOptions{}); err == nil {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	a, err := Advertise(ctx, cs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a.External != "b4.elb.example:9094" {
		t.Fatalf("external = %q", a.External)
	}
	if lookups.Load() < 3 {
		t.Fatalf("advertised before the name resolved (%d lookups)", lookups.Load())
	}
	s, err := cs.CoreV1().Services(srcNS).Get(ctx, "kafka-broker-4-external", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tpl := template()
	if s.Spec.Selector[PodNameLabel] != "kafka-broker-4" || s.Spec.Selector["app.kubernetes.io/name"] != "kafka-broker" {
		t.Errorf("selector = %v", s.Spec.Selector)
	}
	if s.Labels[PodNameLabel] != "kafka-broker-4" || s.Labels[ExternalServiceLabel] != "true" {
		t.Errorf("labels = %v", s.Labels)
	}
	if s.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"] != "nlb" {
		t.Errorf("annotations = %v", s.Annotations)
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer || s.Spec.ClusterIP != "" || s.Spec.Ports[0].NodePort != 0 ||
		s.Spec.Ports[0].Port != 9094 || s.Spec.LoadBalancerSourceRanges[0] != tpl.Spec.LoadBalancerSourceRanges[0] ||
		s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("spec = %+v", s.Spec)
	}
}

func TestAdvertiseErrors(t *testing.T) {
	if _, err := Advertise(context.Background(), fake.NewSimpleClientset(), AdvertiseConfig{}); err == nil {
		t.Fatal("no pod: no error")
	}
	cfg := advCfg("kafka-broker-0")
	cfg.ExternalService = "{pod}-external"
	cfg.Timeout = 50 * time.Millisecond
	_, err := Advertise(context.Background(), fake.NewSimpleClientset(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no load balancer address on service kmt-source/kafka-broker-0-external") {
		t.Fatalf("missing service: %v", err)
	}
	notLB := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kafka-broker-0-external", Namespace: srcNS}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	_, err = Advertise(context.Background(), fake.NewSimpleClientset(notLB), cfg)
	if err == nil || !strings.Contains(err.Error(), "is of type ClusterIP, not LoadBalancer") {
		t.Fatalf("ClusterIP service: %v", err)
	}
}
