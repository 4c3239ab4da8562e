package secrets

import (
	"context"
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// These tests use the fake clientset for decisions only (what to prune, how
// content is compared). Server-side apply, immutability and resourceVersions
// are tested against a real API server in the root module's integration
// tests.

func managedSecret(name string, kind Kind) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels(kind)}}
}

func TestPruneDecisions(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	fresh := managedSecret("dv-pipecat-app-secrets-gggggggggg", AppEnv) // old name, but created minutes ago
	fresh.CreationTimestamp = metav1.NewTime(t0.Add(-59 * time.Minute))
	objs := []runtime.Object{
		fresh,
		managedSecret("dv-pipecat-app-secrets-aaaaaaaaaa", AppEnv), // kept: current
		managedSecret("dv-pipecat-app-secrets-bbbbbbbbbb", AppEnv), // old, unused
		managedSecret("dv-pipecat-gcp-creds-cccccccccc", GCPCreds), // old, but a pod mounts it
		managedSecret("dv-pipecat-gcp-creds-dddddddddd", GCPCreds), // old, but a Deployment template reads it
		managedSecret("dv-pipecat-app-secrets-eeeeeeeeee", AppEnv), // old, unused
		// Unmanaged: today's fixed-name Secrets and anything else.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat-app-secrets", Namespace: "default"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: "default", Labels: map[string]string{LabelManagedBy: "helm"}}},
		// Another namespace is never looked at.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat-app-secrets-ffffffffff", Namespace: "staging", Labels: labels(AppEnv)}},
		&corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "stable-1", Namespace: "default"},
			Spec: corev1.PodSpec{Volumes: []corev1.Volume{{
				Name:         "creds",
				VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "dv-pipecat-gcp-creds-cccccccccc"}},
			}}},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "dv-pipecat", Namespace: "default"},
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app",
				Env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "dv-pipecat-gcp-creds-dddddddddd"}, Key: "creds.json",
				}}}},
			}}}}},
		},
	}
	c := fake.NewClientset(objs...)

	keep := map[string]bool{"dv-pipecat-app-secrets-aaaaaaaaaa": true}
	deleted, err := PruneWith(ctx, c, PruneOptions{Namespace: "default", Keep: keep, MinAge: DefaultPruneMinAge, Clock: func() time.Time { return t0 }})
	assert.NilError(t, err)
	assert.DeepEqual(t, deleted, []string{"dv-pipecat-app-secrets-bbbbbbbbbb", "dv-pipecat-app-secrets-eeeeeeeeee"})

	list, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	var left []string
	for _, s := range list.Items {
		left = append(left, s.Namespace+"/"+s.Name)
	}
	assert.Assert(t, is.Len(left, 7))
	for _, want := range []string{
		"default/dv-pipecat-app-secrets-gggggggggg",
		"default/dv-pipecat-app-secrets-aaaaaaaaaa", "default/dv-pipecat-gcp-creds-cccccccccc", "default/dv-pipecat-gcp-creds-dddddddddd",
		"default/dv-pipecat-app-secrets", "default/other", "staging/dv-pipecat-app-secrets-ffffffffff",
	} {
		assert.Assert(t, is.Contains(left, want))
	}

	t.Run("without grace the fresh one goes too", func(t *testing.T) {
		deleted, err := Prune(ctx, c, "default", keep)
		assert.NilError(t, err)
		assert.DeepEqual(t, deleted, []string{"dv-pipecat-app-secrets-gggggggggg"})
	})

	t.Run("an empty keep set is refused", func(t *testing.T) {
		_, err := Prune(ctx, c, "default", nil)
		assert.ErrorContains(t, err, "refusing to prune with nothing to keep")
	})
}

func TestDescribeAndApplyDetectTampering(t *testing.T) {
	ctx := context.Background()
	b, err := Build(readTestdata(t, "valid-app-env.json"), nil, DefaultNames(), "default")
	assert.NilError(t, err)
	name := b.Names().AppEnv

	tampered := managedSecret(name, AppEnv)
	tampered.Type = corev1.SecretTypeOpaque
	tampered.Data = map[string][]byte{"OPENAI_API_KEY": []byte(marker + "-replaced")}
	c := fake.NewClientset(tampered)

	st, err := Describe(ctx, c, b)
	assert.NilError(t, err)
	assert.Equal(t, len(st), 1)
	assert.Equal(t, st[0].State, StateConflict)
	assert.Equal(t, st[0].Name, name)

	_, err = Apply(ctx, c, b, time.Now())
	assert.Assert(t, errors.Is(err, ErrConflict))
	assert.Assert(t, is.Contains(err.Error(), "kubectl -n default delete secret "+name))
	assertNoLeak(t, err.Error())

	t.Run("absent secret is new", func(t *testing.T) {
		st, err := Describe(ctx, fake.NewClientset(), b)
		assert.NilError(t, err)
		assert.Equal(t, st[0].State, StateNew)
	})
}
