package redact

import (
	"testing"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
)

func TestOf(t *testing.T) {
	r := Of(
		Loaded{Env: true, Data: map[string]string{"REDIS_URL": "redis://:hunter22@r:6379", "ENVIRONMENT": "production", "PORT": "8765"}},
		Loaded{Data: map[string]string{"creds.json": `{"type":"service_account","private_key":"-----BEGIN KEY-----\nabc\n","client_email":"me@p.iam"}`}},
	)
	assert.Equal(t, r.Text("connect redis://:hunter22@r:6379 as me@p.iam in production on 8765 with -----BEGIN KEY-----\nabc\n"),
		"connect *** as me@p.iam in production on 8765 with ***\n") // an account name is no credential
	assert.Equal(t, Redactor{}.Text("anything"), "anything")
	assert.Equal(t, Of().Text("anything"), "anything")
}

func TestReferences(t *testing.T) {
	spec := &corev1.PodSpec{
		InitContainers: []corev1.Container{{EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "init-env"}}}}}},
		Containers:     []corev1.Container{{Env: []corev1.EnvVar{{Name: "K", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "one-key"}, Key: "k"}}}}}},
		Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
			{Name: "both", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "one-key"}}}},
	}
	assert.DeepEqual(t, references(spec), map[string]bool{"init-env": true, "one-key": true, "creds": false})
}
