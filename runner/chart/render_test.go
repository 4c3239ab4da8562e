package chart_test

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
)

// chartDir is the chart the pipeline deploys, relative to this package. It is
// outside the ci module, so `go test` does not see its changes when deciding
// to reuse a cached result: run these tests with -count=1 after editing the
// chart.
var chartDir = filepath.Join("..", "..", "deploy", "chart")

const (
	testDigest   = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testAppEnv   = "dv-pipecat-app-secrets-0123456789"
	testGCPCreds = "dv-pipecat-gcp-creds-0123456789"
)

// pipelineValues are the values the pipeline computes for a deploy, with
// extra merged on top.
func pipelineValues(extra map[string]any) map[string]any {
	v := map[string]any{
		"image":   map[string]any{"digest": testDigest},
		"secrets": map[string]any{"appEnv": testAppEnv, "gcpCreds": testGCPCreds},
	}
	maps.Copy(v, extra)
	return v
}

func target(t *testing.T, name targets.Name) targets.Target {
	t.Helper()
	tg, err := targets.Get(name)
	assert.NilError(t, err)
	return tg
}

func render(t *testing.T, tg targets.Target, computed map[string]any) (chart.Manifests, error) {
	t.Helper()
	ch, err := chart.Load(chartDir)
	assert.NilError(t, err)
	vals, err := chart.Values(chartDir, tg.ValuesFiles, computed)
	assert.NilError(t, err)
	return chart.Render(ch, vals, chart.RenderOptions{Release: tg.Release, Namespace: tg.Namespace})
}

func mustRender(t *testing.T, tg targets.Target, computed map[string]any) chart.Manifests {
	t.Helper()
	m, err := render(t, tg, computed)
	assert.NilError(t, err)
	return m
}

// decode parses the only document of kind in m into out, rejecting fields the
// API type does not have.
func decode(t *testing.T, m chart.Manifests, kind string, out any) {
	t.Helper()
	docs := m.Find(kind)
	assert.Assert(t, is.Len(docs, 1), "want one %s, got kinds %v", kind, m.Kinds())
	assert.NilError(t, yaml.UnmarshalStrict([]byte(docs[0].YAML), out), "decode %s", kind)
}

func deployment(t *testing.T, m chart.Manifests) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	decode(t, m, "Deployment", &d)
	return d
}

func TestRenderGolden(t *testing.T) {
	for _, tg := range targets.All() {
		t.Run(string(tg.Name), func(t *testing.T) {
			m := mustRender(t, tg, pipelineValues(nil))
			golden.Assert(t, m.Text, "render-"+string(tg.Name)+".golden.yaml")
		})
	}
}

func TestRenderTargets(t *testing.T) {
	type want struct {
		kinds        []string
		replicas     int32
		track        string
		logger       string
		pullPolicy   corev1.PullPolicy
		repository   string
		limits       corev1.ResourceList
		requests     corev1.ResourceList
		arm64        bool
		host, path   string
		pdbMaxUnavai string
	}
	rl := func(cpu, mem string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	prodRepo := "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
	cases := map[targets.Name]want{
		targets.Staging: {
			kinds: []string{"Deployment", "Ingress", "Service"}, replicas: 1, track: "stable", logger: "pipecat",
			pullPolicy: corev1.PullAlways,
			repository: "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-stage/dv-pipecat",
			limits:     rl("1", "1.5Gi"), requests: rl("500m", "1Gi"),
			host: "stage-api2.desivocal.com", path: "/pc",
		},
		targets.Canary: {
			kinds: []string{"Deployment"}, replicas: 2, track: "canary", logger: "pipecat-canary",
			pullPolicy: corev1.PullIfNotPresent, repository: prodRepo,
			limits: rl("1", "3Gi"), requests: rl("1", "2.5Gi"), arm64: true,
		},
		targets.Stable: {
			kinds: []string{"Deployment", "Ingress", "PodDisruptionBudget", "Service"}, replicas: 60, track: "stable", logger: "pipecat",
			pullPolicy: corev1.PullIfNotPresent, repository: prodRepo,
			limits: rl("1", "3Gi"), requests: rl("1", "2.5Gi"), arm64: true,
			host: "use1-api.ringg.ai", path: "/pc/*", pdbMaxUnavai: "25%",
		},
	}
	for _, tg := range targets.All() {
		t.Run(string(tg.Name), func(t *testing.T) {
			w, ok := cases[tg.Name]
			assert.Assert(t, ok, "no expectations for target %s: add them", tg.Name)
			m := mustRender(t, tg, pipelineValues(nil))
			assert.DeepEqual(t, m.Kinds(), w.kinds)

			d := deployment(t, m)
			assert.Equal(t, d.Name, tg.Release)
			assert.Equal(t, *d.Spec.Replicas, w.replicas)
			assert.DeepEqual(t, d.Spec.Selector.MatchLabels, map[string]string{
				"app.kubernetes.io/name":     "dv-pipecat",
				"app.kubernetes.io/instance": tg.Release,
			})
			assert.Equal(t, d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType)
			assert.Equal(t, *d.Spec.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("25%"))
			assert.Equal(t, *d.Spec.Strategy.RollingUpdate.MaxSurge, intstr.FromInt32(1))

			pod := d.Spec.Template
			assert.Equal(t, pod.Labels["version"], w.track)
			assert.Equal(t, pod.Labels["version"], tg.Track)
			assert.Assert(t, labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(pod.Labels)))
			assert.Equal(t, *pod.Spec.TerminationGracePeriodSeconds, int64(270))

			assert.Assert(t, is.Len(pod.Spec.Containers, 1))
			c := pod.Spec.Containers[0]
			assert.Equal(t, c.Image, w.repository+"@"+testDigest)
			assert.Equal(t, c.ImagePullPolicy, w.pullPolicy)
			assert.DeepEqual(t, c.Ports, []corev1.ContainerPort{{Name: "http", ContainerPort: 8765, Protocol: corev1.ProtocolTCP}})
			assert.DeepEqual(t, c.Env, []corev1.EnvVar{{Name: "LOGGER_NAME", Value: w.logger}})
			assert.DeepEqual(t, c.EnvFrom, []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: testAppEnv}}}})
			assert.DeepEqual(t, c.VolumeMounts, []corev1.VolumeMount{
				{Name: "secret-volume-gcp-creds", MountPath: "/app/creds.json", SubPath: "creds.json", ReadOnly: true},
				{Name: "tmp", MountPath: "/tmp"}, // TestPodSecurityDefaults
			})
			assert.Assert(t, is.Len(pod.Spec.Volumes, 2))
			assert.Equal(t, pod.Spec.Volumes[0].Name, "secret-volume-gcp-creds")
			assert.Equal(t, pod.Spec.Volumes[0].Secret.SecretName, testGCPCreds)

			probe := func(p *corev1.Probe, delay, period int32) {
				t.Helper()
				assert.Assert(t, p != nil && p.HTTPGet != nil)
				assert.Equal(t, p.HTTPGet.Path, "/pc/v1/healthcheck")
				assert.Equal(t, p.HTTPGet.Port, intstr.FromInt32(8765))
				assert.Equal(t, p.InitialDelaySeconds, delay)
				assert.Equal(t, p.PeriodSeconds, period)
			}
			probe(c.ReadinessProbe, 60, 30)
			probe(c.LivenessProbe, 90, 60)

			assert.Assert(t, c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil)
			cmd := c.Lifecycle.PreStop.Exec.Command
			assert.Assert(t, is.Len(cmd, 3))
			assert.DeepEqual(t, cmd[:2], []string{"python", "-c"})
			assert.Assert(t, is.Contains(cmd[2], `base = "http://127.0.0.1:8765"`))
			assert.Assert(t, is.Contains(cmd[2], `start, status = "/pc/v1/drain/start", "/pc/v1/healthcheck"`))
			assert.Assert(t, is.Contains(cmd[2], "limit, poll = 240, 2\n"))
			assert.Assert(t, is.Contains(cmd[2], `"active_calls"`))

			assertQuantities(t, "limits", c.Resources.Limits, w.limits)
			assertQuantities(t, "requests", c.Resources.Requests, w.requests)

			if w.arm64 {
				assert.DeepEqual(t, pod.Spec.NodeSelector, map[string]string{"kubernetes.io/arch": "arm64"})
				assert.DeepEqual(t, pod.Spec.Tolerations, []corev1.Toleration{{
					Key: "kubernetes.io/arch", Operator: corev1.TolerationOpEqual, Value: "arm64", Effect: corev1.TaintEffectNoSchedule}})
			} else {
				assert.Assert(t, is.Len(pod.Spec.NodeSelector, 0))
				assert.Assert(t, is.Len(pod.Spec.Tolerations, 0))
			}

			if w.host != "" {
				var ing networkingv1.Ingress
				decode(t, m, "Ingress", &ing)
				assert.Assert(t, is.Len(ing.Spec.Rules, 1))
				r := ing.Spec.Rules[0]
				assert.Equal(t, r.Host, w.host)
				assert.Assert(t, is.Len(r.HTTP.Paths, 1))
				assert.Equal(t, r.HTTP.Paths[0].Path, w.path)
				assert.Equal(t, r.HTTP.Paths[0].Backend.Service.Name, tg.Release)
				assert.Equal(t, r.HTTP.Paths[0].Backend.Service.Port.Name, "http")
			}
			if w.pdbMaxUnavai != "" {
				var pdb policyv1.PodDisruptionBudget
				decode(t, m, "PodDisruptionBudget", &pdb)
				assert.Equal(t, *pdb.Spec.MaxUnavailable, intstr.FromString(w.pdbMaxUnavai))
				assert.DeepEqual(t, pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
			}
		})
	}
}

func assertQuantities(t *testing.T, what string, got, want corev1.ResourceList) {
	t.Helper()
	assert.Equal(t, len(got), len(want), "%s: got %v", what, got)
	for name, q := range want {
		g, ok := got[name]
		assert.Assert(t, ok, "%s: no %s", what, name)
		assert.Assert(t, g.Cmp(q) == 0, "%s %s: got %s, want %s", what, name, g.String(), q.String())
	}
}

// The canary inherits the production values; whatever they turn on, it must
// own nothing but its Deployment and keep its own replica count.
func TestCanaryRendersOnlyItsDeployment(t *testing.T) {
	forced := pipelineValues(map[string]any{
		"autoscaling":         map[string]any{"enabled": true},
		"ingress":             map[string]any{"enabled": true},
		"service":             map[string]any{"create": true},
		"podDisruptionBudget": map[string]any{"enabled": true},
	})
	m := mustRender(t, target(t, targets.Canary), forced)
	assert.DeepEqual(t, m.Kinds(), []string{"Deployment"})
	d := deployment(t, m)
	assert.Assert(t, d.Spec.Replicas != nil, "canary must keep a fixed replica count")
	assert.Equal(t, *d.Spec.Replicas, int32(2))
}

// The stable Service selects by app name only, so it reaches the canary's
// pods; each Deployment selects only its own release's pods.
func TestServiceSelectsCanaryPods(t *testing.T) {
	stable := mustRender(t, target(t, targets.Stable), pipelineValues(nil))
	canary := mustRender(t, target(t, targets.Canary), pipelineValues(nil))

	var svc corev1.Service
	decode(t, stable, "Service", &svc)
	assert.Equal(t, svc.Name, "dv-pipecat")
	assert.DeepEqual(t, svc.Spec.Selector, map[string]string{"app.kubernetes.io/name": "dv-pipecat"})
	assert.Equal(t, svc.Spec.Ports[0].Port, int32(80))
	// Numeric, as the live Service the old chart rendered: it reaches every
	// pod listening there, whatever its port is called.
	assert.Equal(t, svc.Spec.Ports[0].TargetPort, intstr.FromInt32(8765))

	sd, cd := deployment(t, stable), deployment(t, canary)
	for _, d := range []appsv1.Deployment{sd, cd} {
		assert.Equal(t, d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort, int32(8765), d.Name)
	}
	svcSel := labels.SelectorFromSet(svc.Spec.Selector)
	assert.Assert(t, svcSel.Matches(labels.Set(sd.Spec.Template.Labels)), "service must select stable pods")
	assert.Assert(t, svcSel.Matches(labels.Set(cd.Spec.Template.Labels)), "service must select canary pods")
	assert.Assert(t, !labels.SelectorFromSet(sd.Spec.Selector.MatchLabels).Matches(labels.Set(cd.Spec.Template.Labels)),
		"stable Deployment must not adopt canary pods")
	assert.Assert(t, !labels.SelectorFromSet(cd.Spec.Selector.MatchLabels).Matches(labels.Set(sd.Spec.Template.Labels)),
		"canary Deployment must not adopt stable pods")
}

// service.targetPort is a number (what the live Service of the old chart
// targets, kept by values-prod.yaml and values-stage.yaml) or a port name.
func TestServiceTargetPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  any
		want intstr.IntOrString
	}{
		{"kept from the live Service", nil, intstr.FromInt32(8765)},
		{"a port name", "http", intstr.FromString("http")},
		{"another number", 9000, intstr.FromInt32(9000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]any{}
			if tc.set != nil {
				extra["service"] = map[string]any{"targetPort": tc.set}
			}
			var svc corev1.Service
			decode(t, mustRender(t, target(t, targets.Stable), pipelineValues(extra)), "Service", &svc)
			assert.DeepEqual(t, svc.Spec.Ports[0].TargetPort, tc.want)
		})
	}
	_, err := render(t, target(t, targets.Stable), pipelineValues(map[string]any{"service": map[string]any{"targetPort": "HTTP_port"}}))
	assert.ErrorContains(t, err, "/service/targetPort")
}

func TestHPAWhenEnabledOnStable(t *testing.T) {
	m := mustRender(t, target(t, targets.Stable), pipelineValues(map[string]any{
		"autoscaling": map[string]any{"enabled": true},
	}))
	var hpa autoscalingv2.HorizontalPodAutoscaler
	decode(t, m, "HorizontalPodAutoscaler", &hpa)
	assert.Equal(t, hpa.Spec.ScaleTargetRef, autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "dv-pipecat"})
	assert.Equal(t, *hpa.Spec.MinReplicas, int32(5))
	assert.Equal(t, hpa.Spec.MaxReplicas, int32(100))
	assert.Assert(t, is.Len(hpa.Spec.Metrics, 1))
	assert.Equal(t, hpa.Spec.Metrics[0].Resource.Name, corev1.ResourceCPU)
	assert.Equal(t, *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization, int32(75))
	assert.Assert(t, deployment(t, m).Spec.Replicas == nil, "the HPA owns the replica count")
}

func TestImage(t *testing.T) {
	repo := "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
	cases := []struct {
		name  string
		image map[string]any
		want  string
	}{
		{name: "digest", image: map[string]any{"digest": testDigest}, want: repo + "@" + testDigest},
		{name: "digest wins over tag", image: map[string]any{"digest": testDigest, "tag": "abc123"}, want: repo + "@" + testDigest},
		{name: "tag", image: map[string]any{"tag": "3f9a1c2"}, want: repo + ":3f9a1c2"},
		{name: "neither uses appVersion", image: map[string]any{}, want: repo + ":1.0.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustRender(t, target(t, targets.Stable), map[string]any{"image": tc.image})
			assert.Equal(t, deployment(t, m).Spec.Template.Spec.Containers[0].Image, tc.want)
		})
	}
}

func TestPodLabelsAndAnnotations(t *testing.T) {
	m := mustRender(t, target(t, targets.Canary), pipelineValues(map[string]any{
		"podLabels":      map[string]any{"team": "voice"},
		"podAnnotations": map[string]any{"ringg.ai/commit": "3f9a1c2"},
		"commonLabels":   map[string]any{"ringg.ai/owner": "platform", "app.kubernetes.io/name": "other"},
	}))
	d := deployment(t, m)
	assert.DeepEqual(t, d.Spec.Template.Labels, map[string]string{
		"app.kubernetes.io/name": "dv-pipecat", "app.kubernetes.io/instance": "dv-pipecat-canary", "version": "canary", "team": "voice",
	})
	assert.DeepEqual(t, d.Spec.Template.Annotations, map[string]string{"ringg.ai/commit": "3f9a1c2"})
	assert.Equal(t, d.Labels["ringg.ai/owner"], "platform")
	assert.Equal(t, d.Labels["app.kubernetes.io/name"], "dv-pipecat", "commonLabels must not replace the app name")
}

// Bad values fail the render with an error naming the value at fault.
func TestRenderRejectsBadValues(t *testing.T) {
	cases := []struct {
		name     string
		target   targets.Name
		computed map[string]any
		want     []string
	}{
		{
			name:     "typo at top level",
			computed: map[string]any{"replicaCont": 3},
			want:     []string{"replicaCont", "additional properties"},
		},
		{
			name:     "typo in nested key",
			computed: map[string]any{"image": map[string]any{"digets": testDigest}},
			want:     []string{"/image", "digets"},
		},
		{
			name:     "wrong type",
			computed: map[string]any{"replicaCount": "60"},
			want:     []string{"/replicaCount", "string"},
		},
		{
			name:     "digest not sha256",
			computed: map[string]any{"image": map[string]any{"digest": "sha512:abcd"}},
			want:     []string{"/image/digest", "sha512:abcd"},
		},
		{
			name:     "digest too short",
			computed: map[string]any{"image": map[string]any{"digest": "sha256:abcd"}},
			want:     []string{"/image/digest"},
		},
		{
			name:     "unknown track",
			computed: map[string]any{"releaseTrack": "canry"},
			want:     []string{"/releaseTrack", "must be one of 'stable', 'canary'"},
		},
		{
			name:     "drain deadline beyond grace period",
			computed: map[string]any{"drain": map[string]any{"deadlineSeconds": 260}},
			want:     []string{"drain.deadlineSeconds (260)", "drain.shutdownSeconds (20)", "terminationGracePeriodSeconds (270)", "raise terminationGracePeriodSeconds to at least 280"},
		},
		{
			name:     "grace period shorter than drain",
			target:   targets.Canary,
			computed: map[string]any{"terminationGracePeriodSeconds": 120},
			want:     []string{"drain.deadlineSeconds (240)", "terminationGracePeriodSeconds (120)"},
		},
		{
			name:     "typo in a security setting",
			computed: map[string]any{"securityContext": map[string]any{"readOnlyRootFileSystem": false}},
			want:     []string{"/securityContext", "readOnlyRootFileSystem"},
		},
		{
			name:     "security setting of the wrong type",
			computed: map[string]any{"podSecurityContext": map[string]any{"runAsNonRoot": "yes"}},
			want:     []string{"/podSecurityContext/runAsNonRoot", "string"},
		},
		{
			name:     "unknown seccomp profile type",
			computed: map[string]any{"podSecurityContext": map[string]any{"seccompProfile": map[string]any{"type": "Default"}}},
			want:     []string{"/podSecurityContext/seccompProfile/type"},
		},
		{
			name:     "tmp size that is no quantity",
			computed: map[string]any{"tmp": map[string]any{"sizeLimit": "1 GB"}},
			want:     []string{"/tmp/sizeLimit"},
		},
		{
			name:     "pod label replaces the track",
			computed: map[string]any{"podLabels": map[string]any{"version": "canary"}},
			want:     []string{"podLabels.version"},
		},
		{
			name:     "pod label replaces a selector label",
			computed: map[string]any{"podLabels": map[string]any{"app.kubernetes.io/instance": "x"}},
			want:     []string{"podLabels.app.kubernetes.io/instance"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := cmpOr(tc.target, targets.Stable)
			tg := target(t, name)
			_, err := render(t, tg, pipelineValues(tc.computed))
			assert.Assert(t, err != nil, "render must fail")
			assert.Assert(t, is.Contains(err.Error(), "render chart dv-pipecat for release "+tg.Release+" in default: "))
			for _, w := range tc.want {
				assert.Assert(t, is.Contains(err.Error(), w))
			}
		})
	}
}

func cmpOr(a, b targets.Name) targets.Name {
	if a != "" {
		return a
	}
	return b
}

// The drain check holds at the boundary: deadline + shutdown == grace renders.
func TestDrainFitsGracePeriodExactly(t *testing.T) {
	_, err := render(t, target(t, targets.Stable), pipelineValues(map[string]any{
		"drain": map[string]any{"deadlineSeconds": 250},
	}))
	assert.NilError(t, err)
	m, err := render(t, target(t, targets.Stable), pipelineValues(map[string]any{
		"drain": map[string]any{"enabled": false, "deadlineSeconds": 1000},
	}))
	assert.NilError(t, err, "a disabled drain has no deadline to fit")
	assert.Assert(t, deployment(t, m).Spec.Template.Spec.Containers[0].Lifecycle == nil)
}

func TestRenderOptions(t *testing.T) {
	ch, err := chart.Load(chartDir)
	assert.NilError(t, err)
	vals, err := chart.Values(chartDir, []string{"values-stage.yaml"}, pipelineValues(nil))
	assert.NilError(t, err)

	t.Run("old kubernetes is refused by the chart", func(t *testing.T) {
		_, err := chart.Render(ch, vals, chart.RenderOptions{Release: "dv-pipecat", KubeVersion: "v1.26.0"})
		assert.ErrorContains(t, err, "render chart dv-pipecat for release dv-pipecat in default: ")
		assert.ErrorContains(t, err, ">=1.27.0-0")
	})
	t.Run("bad kube version", func(t *testing.T) {
		_, err := chart.Render(ch, vals, chart.RenderOptions{Release: "dv-pipecat", KubeVersion: "one"})
		assert.ErrorContains(t, err, `kube version "one"`)
	})
	t.Run("no release", func(t *testing.T) {
		_, err := chart.Render(ch, vals, chart.RenderOptions{})
		assert.ErrorContains(t, err, "no release name")
	})
	t.Run("namespace and notes", func(t *testing.T) {
		m, err := chart.Render(ch, vals, chart.RenderOptions{Release: "dv-pipecat", Namespace: "voice"})
		assert.NilError(t, err)
		assert.Assert(t, is.Contains(m.Notes, "kubectl -n voice get pods"))
		assert.Assert(t, is.Contains(m.Notes, "https://stage-api2.desivocal.com/pc"))
		assert.Assert(t, strings.HasPrefix(m.Text, "---\n# Source: dv-pipecat/templates/"))
		for _, d := range m.Docs {
			assert.Assert(t, strings.HasPrefix(d.Source, "dv-pipecat/templates/"), "doc %s/%s source %q", d.Kind, d.Name, d.Source)
		}
	})
}

func TestLoadMissingChart(t *testing.T) {
	_, err := chart.Load(filepath.Join(t.TempDir(), "nochart"))
	assert.ErrorContains(t, err, "load chart ")
	assert.ErrorContains(t, err, "Chart.yaml")
}
