package kube

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Getter is a genericclioptions.RESTClientGetter over a *rest.Config held in
// memory (a GKE token transport, a rewritten kubeconfig): what Helm's
// action.Configuration needs, without a kubeconfig file. Discovery is cached
// for the Getter's life and the REST mapper resolves kinds lazily, as in
// Flux's helm-controller.
type Getter struct {
	cfg       *rest.Config
	namespace string

	once      sync.Once
	discovery discovery.CachedDiscoveryInterface
	mapper    meta.RESTMapper
	err       error
}

var _ genericclioptions.RESTClientGetter = (*Getter)(nil)

// NewGetter returns a Getter for cfg whose default namespace is namespace.
// A cfg without rate limits gets the kubelet's (50 QPS, burst 100): a release
// touches many objects and client-go's default of 5 QPS throttles it.
func NewGetter(cfg *rest.Config, namespace string) *Getter {
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS, c.Burst = 50, 100
	}
	return &Getter{cfg: c, namespace: namespace}
}

// ToRESTConfig returns a copy of the config.
func (g *Getter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *Getter) init() {
	g.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
		if err != nil {
			g.err = err
			return
		}
		g.discovery = memory.NewMemCacheClient(dc)
		deferred := restmapper.NewDeferredDiscoveryRESTMapper(g.discovery)
		g.mapper = restmapper.NewShortcutExpander(deferred, g.discovery, nil)
	})
}

// ToDiscoveryClient returns the cached discovery client.
func (g *Getter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.init()
	return g.discovery, g.err
}

// ToRESTMapper returns the deferred, discovery-backed REST mapper.
func (g *Getter) ToRESTMapper() (meta.RESTMapper, error) {
	g.init()
	return g.mapper, g.err
}

// ToRawKubeConfigLoader returns a loader that reads no file: it yields the
// in-memory config and the Getter's namespace.
func (g *Getter) ToRawKubeConfigLoader() clientcmd.ClientConfig { return memoryLoader{g} }

type memoryLoader struct{ g *Getter }

func (l memoryLoader) RawConfig() (clientcmdapi.Config, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["in-memory"] = &clientcmdapi.Cluster{Server: l.g.cfg.Host}
	cfg.Contexts["in-memory"] = &clientcmdapi.Context{Cluster: "in-memory", Namespace: l.g.namespace}
	cfg.CurrentContext = "in-memory"
	return *cfg, nil
}

func (l memoryLoader) ClientConfig() (*rest.Config, error) { return l.g.ToRESTConfig() }

func (l memoryLoader) Namespace() (string, bool, error) {
	if l.g.namespace == "" {
		return "default", false, nil
	}
	return l.g.namespace, true, nil
}

// ConfigAccess exposes no file: nothing may persist this config.
func (l memoryLoader) ConfigAccess() clientcmd.ConfigAccess { return noFiles{} }

type noFiles struct{}

func (noFiles) GetLoadingPrecedence() []string { return nil }
func (noFiles) GetStartingConfig() (*clientcmdapi.Config, error) {
	return clientcmdapi.NewConfig(), nil
}
func (noFiles) GetDefaultFilename() string { return "" }
func (noFiles) IsExplicitFile() bool       { return false }
func (noFiles) GetExplicitFile() string    { return "" }
