package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodNameLabel is the label the StatefulSet controller puts on each of its
// pods; a per-broker Service selects its one pod with it.
const PodNameLabel = "statefulset.kubernetes.io/pod-name"

// AdvertiseConfig says which broker pod to advertise and how. Zero fields
// take the defaults documented on each field.
type AdvertiseConfig struct {
	// Namespace and Pod identify the broker pod (from the downward API).
	// Required.
	Namespace string
	Pod       string
	// HeadlessService governs the broker StatefulSet; the internal address
	// is <pod>.<service>.<namespace>.svc. Default "kafka-broker".
	HeadlessService string
	// InternalListener and InternalPort name the in-cluster listener.
	// Defaults "INTERNAL" and 9092.
	InternalListener string
	InternalPort     int
	// ExternalListener and ExternalPort name the listener the other region
	// uses. Defaults "EXTERNAL" and 9094.
	ExternalListener string
	ExternalPort     int
	// ExternalService is the pod's own LoadBalancer Service; "{pod}" in it
	// is replaced by the pod name. Empty: no load balancer, the external
	// listener advertises the internal host name (one cluster).
	ExternalService string
	// TemplateService, when set and ExternalService does not exist, is an
	// existing Service copied (annotations, ports, source ranges, traffic
	// policy) into ExternalService selecting this pod, so brokers added by
	// a resize get their load balancer too. Empty: wait for ExternalService
	// to be created by someone else.
	TemplateService string
	// WaitDNS, when the load balancer has a host name, waits until it
	// resolves, so clients in the other region are not handed a name that
	// does not exist yet. Default false.
	WaitDNS bool
	// Resolve looks a host name up. Default net.DefaultResolver.LookupHost.
	Resolve func(ctx context.Context, host string) ([]string, error)
	// PollInterval between reads of the Service. Default 5s.
	PollInterval time.Duration
	// Timeout bounds the whole wait. Default 15m.
	Timeout time.Duration
	// Logger receives progress messages. Default slog.Default().
	Logger *slog.Logger
}

// Advertised holds a broker's listener addresses, host:port.
type Advertised struct {
	InternalListener string
	Internal         string
	ExternalListener string
	External         string
}

// Properties renders the broker's advertised.listeners line, ending in a
// newline, ready to be appended to server.properties.
func (a Advertised) Properties() string {
	return fmt.Sprintf("advertised.listeners=%s://%s,%s://%s\n", a.InternalListener, a.Internal, a.ExternalListener, a.External)
}

// Advertise computes the addresses broker cfg.Pod must advertise. With an
// ExternalService it waits (creating the Service from TemplateService when
// asked) until the Service has a load balancer address.
func Advertise(ctx context.Context, c Client, cfg AdvertiseConfig) (Advertised, error) {
	if cfg.Namespace == "" || cfg.Pod == "" {
		return Advertised{}, errors.New("advertise: namespace and pod name are required")
	}
	if cfg.HeadlessService == "" {
		cfg.HeadlessService = "kafka-broker"
	}
	if cfg.InternalListener == "" {
		cfg.InternalListener = "INTERNAL"
	}
	if cfg.InternalPort == 0 {
		cfg.InternalPort = 9092
	}
	if cfg.ExternalListener == "" {
		cfg.ExternalListener = "EXTERNAL"
	}
	if cfg.ExternalPort == 0 {
		cfg.ExternalPort = 9094
	}
	if cfg.Resolve == nil {
		cfg.Resolve = net.DefaultResolver.LookupHost
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host := fmt.Sprintf("%s.%s.%s.svc", cfg.Pod, cfg.HeadlessService, cfg.Namespace)
	a := Advertised{
		InternalListener: cfg.InternalListener,
		Internal:         net.JoinHostPort(host, strconv.Itoa(cfg.InternalPort)),
		ExternalListener: cfg.ExternalListener,
		External:         net.JoinHostPort(host, strconv.Itoa(cfg.ExternalPort)),
	}
	if cfg.ExternalService == "" {
		return a, nil
	}
	name := strings.ReplaceAll(cfg.ExternalService, "{pod}", cfg.Pod)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	for {
		addr, err := externalAddress(ctx, c, cfg, name)
		switch {
		case err != nil:
			return Advertised{}, fmt.Errorf("advertise %s/%s: %w", cfg.Namespace, cfg.Pod, err)
		case addr != "":
			a.External = net.JoinHostPort(addr, strconv.Itoa(cfg.ExternalPort))
			cfg.Logger.Info("advertise: external address found", "service", name, "address", a.External)
			return a, nil
		}
		select {
		case <-ctx.Done():
			return Advertised{}, fmt.Errorf("advertise %s/%s: no load balancer address on service %s/%s: %w", cfg.Namespace, cfg.Pod, cfg.Namespace, name, ctx.Err())
		case <-time.After(cfg.PollInterval):
		}
	}
}

// externalAddress returns the load balancer address of Service name, ""
// while there is none yet (or its host name does not resolve yet, with
// WaitDNS), creating the Service from the template when it is missing.
func externalAddress(ctx context.Context, c Client, cfg AdvertiseConfig, name string) (string, error) {
	svcs := c.CoreV1().Services(cfg.Namespace)
	svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if cfg.TemplateService == "" {
			cfg.Logger.Info("advertise: waiting for service", "service", name)
			return "", nil
		}
		if err := createFromTemplate(ctx, c, cfg, name); err != nil {
			return "", err
		}
		return "", nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return "", nil // the caller reports the timeout
		}
		return "", fmt.Errorf("get service %s: %w", name, err)
	}
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return "", fmt.Errorf("service %s is of type %s, not LoadBalancer", name, svc.Spec.Type)
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP, nil
		}
		if in.Hostname != "" {
			if cfg.WaitDNS {
				if _, err := cfg.Resolve(ctx, in.Hostname); err != nil {
					cfg.Logger.Info("advertise: waiting for the load balancer name to resolve", "host", in.Hostname, "err", err)
					return "", nil
				}
			}
			return in.Hostname, nil
		}
	}
	cfg.Logger.Info("advertise: waiting for a load balancer address", "service", name)
	return "", nil
}

// createFromTemplate creates Service name as a copy of cfg.TemplateService
// that selects cfg.Pod.
func createFromTemplate(ctx context.Context, c Client, cfg AdvertiseConfig, name string) error {
	svcs := c.CoreV1().Services(cfg.Namespace)
	tpl, err := svcs.Get(ctx, cfg.TemplateService, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get template service %s: %w", cfg.TemplateService, err)
	}
	labels := map[string]string{}
	for k, v := range tpl.Labels {
		labels[k] = v
	}
	labels[PodNameLabel] = cfg.Pod
	selector := map[string]string{}
	for k, v := range tpl.Spec.Selector {
		selector[k] = v
	}
	selector[PodNameLabel] = cfg.Pod
	ports := make([]corev1.ServicePort, len(tpl.Spec.Ports))
	for i, p := range tpl.Spec.Ports {
		p.NodePort = 0
		ports[i] = p
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: labels, Annotations: tpl.Annotations},
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeLoadBalancer,
			Ports:                    ports,
			Selector:                 selector,
			LoadBalancerSourceRanges: tpl.Spec.LoadBalancerSourceRanges,
			ExternalTrafficPolicy:    tpl.Spec.ExternalTrafficPolicy,
			LoadBalancerClass:        tpl.Spec.LoadBalancerClass,
			PublishNotReadyAddresses: tpl.Spec.PublishNotReadyAddresses,
		},
	}
	_, err = svcs.Create(ctx, svc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create service %s from template %s: %w", name, cfg.TemplateService, err)
	}
	cfg.Logger.Info("advertise: service created from template", "service", name, "template", cfg.TemplateService)
	return nil
}
