package integration

import (
	"context"
	"testing"

	"gotest.tools/v3/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/testcluster"
)

// podOf renders the chart for tg with extra values and returns its
// Deployment's pod, as the ReplicaSet controller would create it.
func podOf(t *testing.T, tg targets.Target, extra map[string]any) *corev1.Pod {
	t.Helper()
	ch, err := chart.Load(chartDir)
	assert.NilError(t, err)
	computed := map[string]any{
		"image":   map[string]any{"digest": digest("p")},
		"secrets": map[string]any{"appEnv": "dv-pipecat-app-secrets-0123456789", "gcpCreds": "dv-pipecat-gcp-creds-0123456789"},
	}
	for k, v := range extra {
		computed[k] = v
	}
	vals, err := chart.Values(chartDir, tg.ValuesFiles, computed)
	assert.NilError(t, err)
	m, err := chart.Render(ch, vals, chart.RenderOptions{Release: tg.Release, Namespace: tg.Namespace})
	assert.NilError(t, err)
	docs := m.Find("Deployment")
	assert.Equal(t, len(docs), 1)
	var d appsv1.Deployment
	assert.NilError(t, yaml.UnmarshalStrict([]byte(docs[0].YAML), &d))
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: d.Name + "-", Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
}

// A release's namespace in the test cluster enforces the "restricted" Pod
// Security Standard (testcluster.Namespace): the API server's PodSecurity
// admission admits the pods the chart renders for every target, and refuses
// them when a values knob relaxes a setting the standard requires. The
// settings beyond it (read-only root filesystem, no token, /tmp) can be
// relaxed without a refusal. Every release test deploys there, so a chart
// that broke the standard would get no pods at all.
func TestPodSecurityRestrictedAdmitsTheChart(t *testing.T) {
	ns := cluster.Namespace(t)
	ctx := context.Background()
	create := func(p *corev1.Pod) error {
		_, err := cluster.Client().CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	for _, tg := range targets.All() {
		t.Run(string(tg.Name), func(t *testing.T) {
			assert.NilError(t, create(podOf(t, tg, nil)))
		})
	}

	stable, err := targets.Get(targets.Stable)
	assert.NilError(t, err)
	cases := []struct {
		name    string
		values  map[string]any
		refused string // what the refusal names; empty when admitted
	}{
		{"run as root", map[string]any{"podSecurityContext": map[string]any{"runAsNonRoot": false}}, "runAsNonRoot != true"},
		{"run as user 0", map[string]any{"podSecurityContext": map[string]any{"runAsUser": 0}}, "runAsUser=0"},
		{"privilege escalation", map[string]any{"securityContext": map[string]any{"allowPrivilegeEscalation": true}}, "allowPrivilegeEscalation != false"},
		{"capabilities kept", map[string]any{"securityContext": map[string]any{"capabilities": map[string]any{"drop": []any{}}}}, "unrestricted capabilities"},
		{"a capability added", map[string]any{"securityContext": map[string]any{"capabilities": map[string]any{"add": []any{"NET_ADMIN"}}}}, "unrestricted capabilities"},
		{"no seccomp profile", map[string]any{"podSecurityContext": map[string]any{"seccompProfile": map[string]any{"type": "Unconfined"}}}, "seccompProfile"},
		{"privileged", map[string]any{"securityContext": map[string]any{"privileged": true, "allowPrivilegeEscalation": true}}, "privileged (container"},
		{"writable root filesystem", map[string]any{"securityContext": map[string]any{"readOnlyRootFilesystem": false}}, ""},
		{"service account token", map[string]any{"automountServiceAccountToken": true}, ""},
		{"no /tmp volume", map[string]any{"tmp": map[string]any{"enabled": false}}, ""},
		{"a given non-root user", map[string]any{"podSecurityContext": map[string]any{"runAsUser": 10001}}, ""},
		{"NET_BIND_SERVICE back", map[string]any{"securityContext": map[string]any{"capabilities": map[string]any{"add": []any{"NET_BIND_SERVICE"}}}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := create(podOf(t, stable, tc.values))
			if tc.refused == "" {
				assert.NilError(t, err)
				return
			}
			assert.Assert(t, apierrors.IsForbidden(err), "admitted: %v", err)
			assert.ErrorContains(t, err, `violates PodSecurity "restricted:latest"`)
			assert.ErrorContains(t, err, tc.refused)
		})
	}

	// The same relaxed pod is admitted where nothing is enforced, as in
	// production's default namespace: the refusal above is the namespace's.
	privileged := cluster.NamespaceEnforcing(t, testcluster.Privileged)
	_, err = cluster.Client().CoreV1().Pods(privileged).Create(ctx, podOf(t, stable, cases[0].values), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	assert.NilError(t, err)
}
