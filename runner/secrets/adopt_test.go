package secrets

import (
	"context"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// kubectlSecret is a Secret as `kubectl create secret generic` made it.
func kubectlSecret(name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Type: corev1.SecretTypeOpaque, Data: data}
}

func TestAdoptNamesCopiesAsBuildWould(t *testing.T) {
	const marker = "ADOPTMARKER"
	creds := []byte(`{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": "` + marker + `"}`)
	c := fake.NewClientset(
		// --from-literal for each key of {"OPENAI_API_KEY": "...", "PORT": 8765}
		kubectlSecret(DefaultAppEnv, map[string][]byte{"OPENAI_API_KEY": []byte(marker), "PORT": []byte("8765")}),
		kubectlSecret(DefaultGCPCreds, map[string][]byte{"creds.json": creds, "stray": []byte("x")}),
	)
	b, err := Adopt(context.Background(), c, "default", DefaultNames(), DefaultNames())
	assert.NilError(t, err)
	built, err := Build([]byte(`{"OPENAI_API_KEY": "`+marker+`", "PORT": 8765}`), creds, DefaultNames(), "default")
	assert.NilError(t, err)
	// Equal content, equal names: adopting and then deploying the same JSON
	// keeps the pods as they are.
	assert.Equal(t, b.Names(), built.Names())
	assert.Assert(t, strings.HasPrefix(b.Names().AppEnv, DefaultAppEnv+"-"))
	sums := b.Summaries()
	assert.DeepEqual(t, sums[1].Keys, []string{"creds.json"}) // only the key the chart mounts
	for _, text := range []string{b.String(), b.GoString()} {
		assert.Assert(t, !strings.Contains(text, marker))
	}
}

func TestAdoptRefusals(t *testing.T) {
	tests := []struct {
		name string
		objs []runtime.Object
		from Names
		want string
	}{
		{"missing", nil, DefaultNames(), "secret dv-pipecat-app-secrets is not in default: the live release reads it"},
		{"creds without creds.json", []runtime.Object{kubectlSecret(DefaultGCPCreds, map[string][]byte{"key.json": []byte("{}")})},
			Names{GCPCreds: DefaultGCPCreds}, "has no key creds.json, which the chart mounts at /app/creds.json"},
		{"not opaque", []runtime.Object{&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: DefaultAppEnv, Namespace: "default"}, Type: corev1.SecretTypeDockerConfigJson}},
			Names{AppEnv: DefaultAppEnv}, "is of type kubernetes.io/dockerconfigjson, not Opaque"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Adopt(context.Background(), fake.NewClientset(tc.objs...), "default", tc.from, DefaultNames())
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
