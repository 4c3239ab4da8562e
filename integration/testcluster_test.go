package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// tcChartDir is the real chart; the tests install it with the staging values.
var tcChartDir = filepath.Join("..", "deploy", "chart")

const tcTestRepository = "example.test/ringg/dv-pipecat"

// tcHelmConfig is a Helm action configuration for namespace ns of the test
// cluster, logging to t.
func tcHelmConfig(t *testing.T, ns string) *action.Configuration {
	t.Helper()
	kubeconfig, cacheDir := cluster.KubeconfigPath(), t.TempDir()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	flags.Namespace = &ns
	flags.CacheDir = &cacheDir
	cfg := new(action.Configuration)
	err := cfg.Init(flags, ns, "secret", func(format string, v ...any) {
		t.Logf("helm: "+format, v...)
	})
	assert.NilError(t, err)
	return cfg
}

// tcStagingValues are values-stage.yaml with a test image and replica count.
func tcStagingValues(t *testing.T, tag string, replicas int) map[string]any {
	t.Helper()
	vals, err := chartutil.ReadValuesFile(filepath.Join(tcChartDir, "values-stage.yaml"))
	assert.NilError(t, err)
	image, _ := vals["image"].(map[string]any)
	if image == nil {
		image = map[string]any{}
	}
	image["repository"] = tcTestRepository
	image["tag"] = tag
	vals["image"] = image
	vals["replicaCount"] = replicas
	return vals
}

func tcLoadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(tcChartDir)
	assert.NilError(t, err)
	return ch
}

func tcInstall(t *testing.T, cfg *action.Configuration, ns, name string, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(cfg)
	in.ReleaseName, in.Namespace = name, ns
	in.Wait, in.Timeout = true, time.Minute
	start := time.Now()
	rel, err := in.RunWithContext(t.Context(), tcLoadChart(t), vals)
	assert.NilError(t, err)
	t.Logf("installed %s with wait in %s", name, time.Since(start).Round(time.Millisecond))
	return rel
}

// tcReadyPods waits up to timeout for exactly want pods in ns, all Ready.
func tcReadyPods(t *testing.T, ns string, want int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range list.Items {
			if tcPodReady(p) {
				ready++
			}
		}
		pods, last = list.Items, fmt.Sprintf("%d pods, %d ready", len(list.Items), ready)
		return len(list.Items) == want && ready == want, nil
	})
	assert.NilError(t, err, "want %d ready pods in %s; have %s", want, ns, last)
	return pods
}

func tcPodReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}

func tcDeploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := cluster.Client().AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Assert(t, is.Len(d.Spec.Template.Spec.Containers, 1))
	return d.Spec.Template.Spec.Containers[0].Image
}

func TestChartInstallThenAtomicUpgradeToNeverReadyRollsBack(t *testing.T) {
	ns := cluster.Namespace(t)
	cfg := tcHelmConfig(t, ns)
	const name = "dv-pipecat"

	rel := tcInstall(t, cfg, ns, name, tcStagingValues(t, "v1", 3))
	assert.Equal(t, rel.Info.Status, release.StatusDeployed)
	pods := tcReadyPods(t, ns, 3, 10*time.Second)
	for _, p := range pods {
		assert.Assert(t, p.Status.PodIP != "", "pod %s has no IP", p.Name)
		assert.Assert(t, strings.HasPrefix(p.Spec.NodeName, fakenode.NodePrefix), "pod %s on node %q", p.Name, p.Spec.NodeName)
	}
	assert.Equal(t, tcDeploymentImage(t, ns, name), tcTestRepository+":v1")

	up := action.NewUpgrade(cfg)
	up.Namespace, up.Atomic, up.Timeout, up.MaxHistory = ns, true, 8*time.Second, 10
	start := time.Now()
	_, err := up.RunWithContext(t.Context(), name, tcLoadChart(t), tcStagingValues(t, fakenode.TagNeverReady, 3))
	t.Logf("atomic upgrade failed and rolled back in %s", time.Since(start).Round(time.Millisecond))
	assert.ErrorContains(t, err, "has been rolled back due to atomic being set")

	history, err := action.NewHistory(cfg).Run(name)
	assert.NilError(t, err)
	var got []string
	for _, r := range history {
		got = append(got, fmt.Sprintf("%d %s", r.Version, r.Info.Status))
	}
	assert.DeepEqual(t, got, []string{"1 superseded", "2 failed", "3 deployed"})
	assert.Equal(t, tcDeploymentImage(t, ns, name), tcTestRepository+":v1")
	tcReadyPods(t, ns, 3, 15*time.Second)
}

func TestReleaseSurvivesAPIServerRestart(t *testing.T) {
	ns := cluster.Namespace(t)
	const name = "dv-pipecat"
	tcInstall(t, tcHelmConfig(t, ns), ns, name, tcStagingValues(t, "v1", 1))
	tcReadyPods(t, ns, 1, 10*time.Second)

	cluster.Restart(t)

	rel, err := action.NewGet(tcHelmConfig(t, ns)).Run(name)
	assert.NilError(t, err)
	assert.Equal(t, rel.Version, 1)
	assert.Equal(t, rel.Info.Status, release.StatusDeployed)
	assert.Equal(t, tcDeploymentImage(t, ns, name), tcTestRepository+":v1")
	tcReadyPods(t, ns, 1, 10*time.Second)
}
