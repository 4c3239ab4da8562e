package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
)

// opsTarget is the named target moved into the test's namespace.
func (e *relEnv) opsTarget(name targets.Name) targets.Target {
	e.t.Helper()
	tg, err := targets.Get(name)
	assert.NilError(e.t, err)
	return tg.With(e.overrides())
}

func (e *relEnv) podNames(t targets.Target) []string {
	e.t.Helper()
	pods, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: ops.Selector(t)})
	assert.NilError(e.t, err)
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	return out
}

func TestOpsHealthReportsEachPodAndFailsOnAnUnhealthyOne(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	_, err = e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)
	canary := e.opsTarget(targets.Canary)
	ctx := context.Background()

	rep, err := ops.Health(ctx, e.clients.Config, e.kube, canary, ops.HealthOptions{})
	assert.NilError(t, err)
	assert.Equal(t, len(rep.Pods), 2, "only the canary's pods, not stable's 60")
	for _, p := range rep.Pods {
		assert.Assert(t, strings.HasPrefix(p.Pod, "dv-pipecat-canary-"), p.Pod)
		assert.Equal(t, p.Status, 200)
		assert.Assert(t, p.Ready && p.Latency > 0 && p.Error == "", "%+v", p)
	}
	assert.Assert(t, strings.Contains(rep.String(), "2 pods, all healthy"), rep.String())

	// A pod the Deployment does not own but that carries the canary's
	// labels (a leftover) answers 503: it is named, the others pass.
	stray := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat-canary-stray", Labels: map[string]string{ops.LabelInstance: "dv-pipecat-canary", ops.LabelTrack: "canary"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dv-pipecat", Image: prodRepo + ":" + fakekubelet.TagUnhealthy,
			Ports: []corev1.ContainerPort{{ContainerPort: 8765}}}}},
	}
	testcluster.Restrict(&stray.Spec)
	_, err = e.kube.CoreV1().Pods(e.ns).Create(ctx, stray, metav1.CreateOptions{})
	assert.NilError(t, err)
	waitFor(t, 20*time.Second, func() bool {
		p, err := e.kube.CoreV1().Pods(e.ns).Get(ctx, stray.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	rep, err = ops.Health(ctx, e.clients.Config, e.kube, canary, ops.HealthOptions{})
	assert.Assert(t, errors.Is(err, ops.ErrUnhealthy), "%v", err)
	assert.ErrorContains(t, err, "1 of 3 pods of canary in "+e.ns+" failed :8765/pc/v1/healthcheck: dv-pipecat-canary-stray; read their logs")
	assert.DeepEqual(t, rep.Unhealthy(), []string{"dv-pipecat-canary-stray"})
	bad := rep.Pods[len(rep.Pods)-1]
	assert.Equal(t, bad.Status, 503)
	assert.Equal(t, bad.Body, `{"status":"unhealthy"}`)

	// Nothing listens on another port: the kubelet's reason is reported.
	rep, err = ops.Health(ctx, e.clients.Config, e.kube, canary, ops.HealthOptions{Port: 9000, Timeout: 5 * time.Second})
	assert.Assert(t, errors.Is(err, ops.ErrUnhealthy), "%v", err)
	assert.Equal(t, len(rep.Unhealthy()), 3)
	assert.Assert(t, strings.Contains(rep.Pods[0].Error, "connection refused"), rep.Pods[0].Error)
}

func TestOpsHealthWithoutPodsFails(t *testing.T) {
	e := newRelEnv(t)
	_, err := ops.Health(context.Background(), e.clients.Config, e.kube, e.opsTarget(targets.Canary), ops.HealthOptions{})
	assert.Assert(t, errors.Is(err, ops.ErrNoPods), "%v", err)
	assert.ErrorContains(t, err, "canary has no pods in "+e.ns)
}

func TestOpsLogsTellCanaryFromStable(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	_, err = e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)
	canary := e.opsTarget(targets.Canary)
	ctx := context.Background()
	names := e.podNames(canary)
	assert.Equal(t, len(names), 2)

	rep, err := ops.Logs(ctx, e.kube, canary, ops.LogOptions{})
	assert.NilError(t, err)
	text := rep.String()
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	assert.Equal(t, len(lines), 8, text) // four lines from each canary pod
	for _, l := range lines {
		pod, _, ok := strings.Cut(l, " | ")
		assert.Assert(t, ok, l)
		assert.Assert(t, strings.HasPrefix(pod, "dv-pipecat-canary-"), l)
	}
	assert.Assert(t, strings.Contains(text, "INFO starting dv-pipecat ("+prodRepo+"@"+digest("a")+") in pod dv-pipecat-canary-"), text)
	assert.Assert(t, rep.Pods[0].Pod < rep.Pods[1].Pod, "sorted by pod")

	// --since keeps the last minute: the two recent health checks.
	rep, err = ops.Logs(ctx, e.kube, canary, ops.LogOptions{Since: time.Minute, Pod: names[0]})
	assert.NilError(t, err)
	assert.Equal(t, rep.String(), names[0]+" | INFO GET /pc/v1/healthcheck 200\n"+names[0]+" | INFO GET /pc/v1/healthcheck 200\n")

	// A stable pod is not the canary's.
	stablePod := e.podNames(e.opsTarget(targets.Stable))[0]
	_, err = ops.Logs(ctx, e.kube, canary, ops.LogOptions{Pod: stablePod})
	assert.Assert(t, errors.Is(err, ops.ErrNoPods), "%v", err)
	assert.ErrorContains(t, err, "pod "+stablePod+" is not one of canary's pods")
}

func TestOpsLogsAreBounded(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.failing(e.canaryPlan(digest("a"), nil), fakekubelet.TagChatty), nil, release.Options{})
	assert.NilError(t, err)
	rep, err := ops.Logs(context.Background(), e.kube, e.opsTarget(targets.Canary), ops.LogOptions{LimitBytes: 8 << 10})
	assert.NilError(t, err)
	var raw int
	for _, p := range rep.Pods {
		assert.Assert(t, p.Cut, "pod %s: chatty output is cut", p.Pod)
		assert.Equal(t, p.Lines[len(p.Lines)-1], "INFO GET /pc/v1/healthcheck 200", "the most recent lines are kept")
		assert.Assert(t, strings.HasPrefix(p.Lines[0], "DEBUG chatty line "), "whole lines only: %q", p.Lines[0])
		for _, l := range p.Lines {
			raw += len(l) + 1
		}
	}
	assert.Assert(t, raw <= 8<<10, "%d bytes of logs", raw)
	assert.Assert(t, strings.Contains(rep.String(), "were cut to bound the output; narrow with --since or --pod"))
}

func TestOpsScaleIsTemporaryAndRefusedBeyondLimits(t *testing.T) {
	e := newRelEnv(t)
	plan := e.canaryPlan(digest("a"), nil)
	_, err := e.deploy(plan, nil, release.Options{})
	assert.NilError(t, err)
	canary := e.opsTarget(targets.Canary)
	ctx := context.Background()

	res, err := ops.Scale(ctx, e.kube, canary, 4, ops.ScaleOptions{Wait: 30 * time.Second})
	assert.NilError(t, err)
	assert.DeepEqual(t, res, ops.ScaleResult{Target: "canary", Namespace: e.ns, Deployment: "dv-pipecat-canary", From: 2, To: 4, ChartReplicas: 2, Ready: 4})
	assert.Assert(t, strings.Contains(res.String(), "temporary: the next deploy/promote restores 2 replicas from the chart"), res.String())
	assert.Equal(t, *e.deployment("dv-pipecat-canary").Spec.Replicas, int32(4))

	// Beyond the canary's cap: refused, nothing changes.
	_, err = ops.Scale(ctx, e.kube, canary, 6, ops.ScaleOptions{})
	assert.Assert(t, errors.Is(err, ops.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "canary allows at most 5 replicas by hand")
	assert.Equal(t, *e.deployment("dv-pipecat-canary").Spec.Replicas, int32(4))

	// The next deploy restores the chart's count, as the output said.
	_, err = e.deploy(plan, nil, release.Options{})
	assert.NilError(t, err)
	assert.Equal(t, *e.deployment("dv-pipecat-canary").Spec.Replicas, int32(2))

	// While an autoscaler manages stable, a manual scale would be undone.
	_, err = e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "dv-pipecat"},
			MinReplicas:    new(int32(5)), MaxReplicas: 100,
		},
	}
	_, err = e.kube.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Create(ctx, hpa, metav1.CreateOptions{})
	assert.NilError(t, err)
	_, err = ops.Scale(ctx, e.kube, e.opsTarget(targets.Stable), 80, ops.ScaleOptions{})
	assert.Assert(t, errors.Is(err, ops.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "HorizontalPodAutoscaler dv-pipecat manages its replicas (5 to 100)")
	assert.Equal(t, *e.deployment("dv-pipecat").Spec.Replicas, int32(60))
}

// An app that logs a value of its Secrets has it hidden in what logs prints,
// while what is no secret (a plain word, a port) stays readable.
func TestOpsLogsHideTheValuesOfTheSecretsThePodsRead(t *testing.T) {
	e := newRelEnv(t)
	// The fake kubelet's chatbot logs its image; plant it as a secret value.
	planted := prodRepo + "@" + digest("a")
	b, err := secrets.Build([]byte(`{"LEAKED_TOKEN": "`+planted+`", "ENVIRONMENT": "production", "PORT": "8765"}`), credsJSON, secrets.DefaultNames(), e.ns)
	assert.NilError(t, err)
	n := b.Names()
	_, err = e.deploy(e.canaryPlan(digest("a"), &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}), &b, release.Options{})
	assert.NilError(t, err)
	rep, err := ops.Logs(context.Background(), e.kube, e.opsTarget(targets.Canary), ops.LogOptions{})
	assert.NilError(t, err)
	text := rep.String()
	assert.Assert(t, !strings.Contains(text, planted), "the planted value is printed:\n%s", text)
	assert.Assert(t, strings.Contains(text, "INFO starting dv-pipecat (***) in pod dv-pipecat-canary-"), text)
	assert.Assert(t, strings.Contains(text, "INFO Uvicorn running on http://0.0.0.0:8765"), "a port is no secret:\n%s", text)
}
