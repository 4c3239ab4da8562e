package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	hrelease "helm.sh/helm/v3/pkg/release"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/internal/lockedbuffer"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/release"
)

// Environment of the child process TestReleaseDeployKilledThenRerun kills.
const (
	childKubeconfig = "RINGG_RELEASE_CHILD_KUBECONFIG"
	childNamespace  = "RINGG_RELEASE_CHILD_NAMESPACE"
	childChart      = "RINGG_RELEASE_CHILD_CHART"
	childHolder     = "killed child deploy"
)

// TestReleaseDeployKilledThenRerun kills (SIGKILL) a deploy while it watches
// its rollout: the release is left pending-upgrade and the lock held. The
// next deploy is refused while the dead holder's lock lasts, then recovers
// the pending record and deploys.
func TestReleaseDeployKilledThenRerun(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)

	cmd := exec.Command(os.Args[0], "-test.run=^TestReleaseKilledDeployChild$", "-test.short", "-test.v")
	cmd.Env = append(os.Environ(), childKubeconfig+"="+cluster.KubeconfigPath(), childNamespace+"="+e.ns, childChart+"="+taggableChart(t))
	out := &lockedbuffer.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	assert.NilError(t, cmd.Start())
	waitFor(t, 60*time.Second, func() bool {
		h := e.history("dv-pipecat-canary")
		// Helm stores the new revision as pending-upgrade before it finishes;
		// the runner's own description says the upgrade is done and the
		// rollout is being watched, which is where this test kills.
		return len(h) == 2 && h[1] != nil && h[1].Info.Status == hrelease.StatusPendingUpgrade &&
			h[1].Info.Description == "waiting for the rollout"
	})
	assert.NilError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	if s := out.String(); s != "" {
		t.Logf("killed child's output:\n%s", s)
	}

	_, err = e.deploy(e.canaryPlan(digest("c"), nil), nil, release.Options{})
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "%v", err)
	assert.ErrorContains(t, err, `held by "`+childHolder+`"`)

	res, err := untilUnlockedWithin(t, 40*time.Second, func() (*release.Result, error) {
		return e.deploy(e.canaryPlan(digest("c"), nil), nil, release.Options{})
	})
	assert.NilError(t, err)
	assert.Equal(t, res.Recovered, "revision 2 of release dv-pipecat-canary was left pending-upgrade by an interrupted run: marked interrupted")
	assert.Equal(t, res.Revision, 3)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:deployed/proven"})
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("c"))
}

// TestReleaseKilledDeployChild is the process TestReleaseDeployKilledThenRerun
// kills: a deploy of never-ready pods with a short-lived lock.
func TestReleaseKilledDeployChild(t *testing.T) {
	kc := os.Getenv(childKubeconfig)
	if kc == "" {
		t.Skip("run by TestReleaseDeployKilledThenRerun")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	assert.NilError(t, err)
	k, err := kubernetes.NewForConfig(cfg)
	assert.NilError(t, err)
	ns := os.Getenv(childNamespace)
	p, err := pipeline.NewDeploy(pipeline.DeployInput{Branch: "dv-main", Overrides: targets.Overrides{Namespace: ns}, ChartDir: os.Getenv(childChart),
		Image: digest("b"), Holder: childHolder, Timeout: 5 * time.Minute})
	assert.NilError(t, err)
	p.Image.Repository += ":never-ready"
	d := release.Deploy{Clients: release.Clients{Config: cfg, Kube: k}, Plan: p, Options: release.Options{LockTTL: 8 * time.Second}}
	_, err = d.Run(context.Background())
	t.Fatalf("the deploy should have been killed, it returned %v", err)
}
