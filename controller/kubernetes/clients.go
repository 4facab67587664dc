package kubernetes

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig returns the client configuration for a cluster: from the
// kubeconfig file and context when given (an empty context is the file's
// current one), else the in-cluster service account, else the default
// kubeconfig loading rules ($KUBECONFIG, ~/.kube/config).
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		where := kubeconfig
		if where == "" {
			where = "the default kubeconfig"
		}
		if context != "" {
			where += " context " + context
		}
		return nil, fmt.Errorf("kubernetes client configuration from %s: %w", where, err)
	}
	return cfg, nil
}

// Client is the part of a Kubernetes clientset the controller uses: the
// core/v1 (pods, services) and apps/v1 (StatefulSets, Deployments) API
// groups. A full clientset (k8s.io/client-go/kubernetes, or its fake)
// satisfies it; Clients builds one from just those two typed group clients,
// so kmt does not compile the whole typed clientset.
type Client interface {
	CoreV1() corev1client.CoreV1Interface
	AppsV1() appsv1client.AppsV1Interface
}

// groupClients is a Client made of the two typed group clients.
type groupClients struct {
	core *corev1client.CoreV1Client
	apps *appsv1client.AppsV1Client
}

// CoreV1 returns the core/v1 client.
func (g *groupClients) CoreV1() corev1client.CoreV1Interface { return g.core }

// AppsV1 returns the apps/v1 client.
func (g *groupClients) AppsV1() appsv1client.AppsV1Interface { return g.apps }

// NewClient builds the Client of one cluster from its configuration.
func NewClient(cfg *rest.Config) (Client, error) {
	// The typed group clients share one HTTP client, as a clientset's do.
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes HTTP client for %s: %w", cfg.Host, err)
	}
	core, err := corev1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes core/v1 client for %s: %w", cfg.Host, err)
	}
	apps, err := appsv1client.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes apps/v1 client for %s: %w", cfg.Host, err)
	}
	return &groupClients{core: core, apps: apps}, nil
}

// Clients builds a typed and a dynamic client for one cluster.
func Clients(cfg *rest.Config) (Client, dynamic.Interface, error) {
	cs, err := NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes dynamic client for %s: %w", cfg.Host, err)
	}
	return cs, dyn, nil
}
