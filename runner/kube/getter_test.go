package kube

import (
	"testing"

	"gotest.tools/v3/assert"
	"k8s.io/client-go/rest"
)

func TestGetter(t *testing.T) {
	g := NewGetter(&rest.Config{Host: "https://127.0.0.1:6443", BearerToken: "t"}, "ci-ns")
	cfg, err := g.ToRESTConfig()
	assert.NilError(t, err)
	assert.Equal(t, cfg.QPS, float32(50), "client-go's default 5 QPS throttles a release")
	cfg.Host = "changed"
	again, _ := g.ToRESTConfig()
	assert.Equal(t, again.Host, "https://127.0.0.1:6443", "callers get copies")

	ns, overridden, err := g.ToRawKubeConfigLoader().Namespace()
	assert.NilError(t, err)
	assert.Equal(t, ns, "ci-ns")
	assert.Assert(t, overridden)
	raw, err := g.ToRawKubeConfigLoader().RawConfig()
	assert.NilError(t, err)
	assert.Equal(t, raw.Contexts[raw.CurrentContext].Namespace, "ci-ns")

	dc, err := g.ToDiscoveryClient()
	assert.NilError(t, err)
	dc2, _ := g.ToDiscoveryClient()
	assert.Assert(t, dc == dc2, "discovery is cached for the getter's life")
	_, err = g.ToRESTMapper()
	assert.NilError(t, err)
}
