package cli

import (
	"errors"
	"testing"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/kube"
)

// A kubeconfig context gcloud named after another GKE cluster than the
// target's is refused before anything is read: a laptop's current context
// left on production while deploying staging.
func TestCheckClusterPin(t *testing.T) {
	staging, err := targets.Get(targets.Staging)
	assert.NilError(t, err)
	prodContext := "gke_desivocalprod01_us-east1_desivocal-prod-us-e1-cluster"
	describe := func(context string) kube.KubeconfigTarget {
		k, err := kube.DescribeKubeconfig([]byte(`apiVersion: v1
kind: Config
current-context: `+context+`
contexts:
- name: `+context+`
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster: {server: "https://34.1.2.3"}
users:
- name: u
  user: {token: t}
`), kube.KubeconfigOptions{})
		assert.NilError(t, err)
		return k
	}
	err = checkClusterPin(describe(prodContext), staging)
	assert.Assert(t, errors.Is(err, ErrWrongCluster), "%v", err)
	assert.ErrorContains(t, err, "context "+prodContext+" (https://34.1.2.3) is GKE cluster desivocal-prod-us-e1-cluster in us-east1 of project desivocalprod01, but staging deploys to desivocal-staging-cluster in asia-south1-a")
	assert.ErrorContains(t, err, "pass --context gke_desivocalprod01_asia-south1-a_desivocal-staging-cluster")

	assert.NilError(t, checkClusterPin(describe("gke_desivocalprod01_asia-south1-a_desivocal-staging-cluster"), staging))
	assert.NilError(t, checkClusterPin(describe("kind-test"), staging), "a context gcloud did not name is left to the release's records")
	moved := staging.With(targets.Overrides{ClusterName: "desivocal-prod-us-e1-cluster", ClusterLocation: "us-east1"})
	assert.NilError(t, checkClusterPin(describe(prodContext), moved), "an override moves the target on purpose")
}
