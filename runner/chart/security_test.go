package chart_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"

	"github.com/ringg/ringg-ci/ci/targets"
)

// Every target's pods run as the "restricted" Pod Security Standard asks
// (integration's TestPodSecurityRestrictedAdmitsTheChart has the API server
// check it), with a read-only root filesystem, a writable /tmp and no
// service account token.
func TestPodSecurityDefaults(t *testing.T) {
	for _, tg := range targets.All() {
		t.Run(string(tg.Name), func(t *testing.T) {
			pod := deployment(t, mustRender(t, tg, pipelineValues(nil))).Spec.Template.Spec
			assert.DeepEqual(t, pod.SecurityContext, &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			})
			assert.DeepEqual(t, pod.AutomountServiceAccountToken, new(false))
			c := pod.Containers[0]
			assert.DeepEqual(t, c.SecurityContext, &corev1.SecurityContext{
				AllowPrivilegeEscalation: new(false),
				ReadOnlyRootFilesystem:   new(true),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			})
			assert.Check(t, is.Contains(c.VolumeMounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"}))
			assert.Check(t, is.Contains(pod.Volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}))
		})
	}
}

// Each setting has a knob for an image that needs it relaxed; a knob changes
// only its own field.
func TestPodSecurityKnobs(t *testing.T) {
	stable := target(t, targets.Stable)
	render := func(t *testing.T, extra map[string]any) corev1.PodSpec {
		t.Helper()
		return deployment(t, mustRender(t, stable, pipelineValues(extra))).Spec.Template.Spec
	}
	t.Run("run as a given user", func(t *testing.T) {
		pod := render(t, map[string]any{"podSecurityContext": map[string]any{"runAsUser": 10001, "runAsGroup": 10001}})
		assert.DeepEqual(t, pod.SecurityContext, &corev1.PodSecurityContext{
			RunAsNonRoot: new(true), RunAsUser: new(int64(10001)), RunAsGroup: new(int64(10001)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		})
	})
	t.Run("run as root", func(t *testing.T) {
		pod := render(t, map[string]any{"podSecurityContext": map[string]any{"runAsNonRoot": false}})
		assert.DeepEqual(t, pod.SecurityContext.RunAsNonRoot, new(false))
		assert.Equal(t, pod.SecurityContext.SeccompProfile.Type, corev1.SeccompProfileTypeRuntimeDefault)
	})
	t.Run("writable root filesystem", func(t *testing.T) {
		c := render(t, map[string]any{"securityContext": map[string]any{"readOnlyRootFilesystem": false}}).Containers[0]
		assert.DeepEqual(t, c.SecurityContext.ReadOnlyRootFilesystem, new(false))
		assert.DeepEqual(t, c.SecurityContext.AllowPrivilegeEscalation, new(false))
		assert.DeepEqual(t, c.SecurityContext.Capabilities.Drop, []corev1.Capability{"ALL"})
	})
	t.Run("a capability back", func(t *testing.T) {
		c := render(t, map[string]any{"securityContext": map[string]any{"capabilities": map[string]any{"add": []any{"NET_BIND_SERVICE"}}}}).Containers[0]
		assert.DeepEqual(t, c.SecurityContext.Capabilities, &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}})
	})
	t.Run("privilege escalation", func(t *testing.T) {
		c := render(t, map[string]any{"securityContext": map[string]any{"allowPrivilegeEscalation": true}}).Containers[0]
		assert.DeepEqual(t, c.SecurityContext.AllowPrivilegeEscalation, new(true))
	})
	t.Run("another seccomp profile", func(t *testing.T) {
		pod := render(t, map[string]any{"podSecurityContext": map[string]any{"seccompProfile": map[string]any{"type": "Unconfined"}}})
		assert.Equal(t, pod.SecurityContext.SeccompProfile.Type, corev1.SeccompProfileTypeUnconfined)
	})
	t.Run("service account token", func(t *testing.T) {
		pod := render(t, map[string]any{"automountServiceAccountToken": true})
		assert.DeepEqual(t, pod.AutomountServiceAccountToken, new(true))
	})
	t.Run("no /tmp volume", func(t *testing.T) {
		pod := render(t, map[string]any{"tmp": map[string]any{"enabled": false}})
		for _, v := range pod.Volumes {
			assert.Check(t, v.Name != "tmp")
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			assert.Check(t, m.MountPath != "/tmp")
		}
	})
	t.Run("a size limit on /tmp", func(t *testing.T) {
		pod := render(t, map[string]any{"tmp": map[string]any{"sizeLimit": "512Mi"}})
		for _, v := range pod.Volumes {
			if v.Name == "tmp" {
				assert.Equal(t, v.EmptyDir.SizeLimit.String(), "512Mi")
				return
			}
		}
		t.Fatal("no tmp volume")
	})
}
