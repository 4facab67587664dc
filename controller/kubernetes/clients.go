package kubernetes

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	k8s "k8s.io/client-go/kubernetes"
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

// Clients builds a typed and a dynamic client for one cluster.
func Clients(cfg *rest.Config) (k8s.Interface, dynamic.Interface, error) {
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes clientset for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes dynamic client for %s: %w", cfg.Host, err)
	}
	return cs, dyn, nil
}
