package scrub

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestAppEnvValues(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"secrets and settings", `{"OPENAI_API_KEY":"sk-planted-1","REDIS_URL":"redis://:pw@10.0.0.3:6379/0","ENVIRONMENT":"production","PORT":8765,"DEBUG":true,"LOG_FORMAT":"json-lines"}`,
			[]string{"redis://:pw@10.0.0.3:6379/0", "sk-planted-1"}},
		{"a digit makes a value a candidate", `{"ALIAS":"planted-echo-4x","REGION":"asia-south1"}`, []string{"planted-echo-4x", "asia-south1"}},
		{"a key that names a secret is scrubbed whatever its value", `{"ADMIN_PASSWORD":"hunterhunter","API_TOKEN":"12345678","WORKERS":"12345678"}`,
			[]string{"hunterhunter", "12345678"}},
		{"nested values keep their key", `{"nested":{"SERVICE_KEY":["deep-value"]}}`, []string{"deep-value"}},
		{"short values are left", `{"A":"on","B":12,"C":"Ab1-"}`, []string{"Ab1-"}},
		{"escaped spelling too", `{"X":"-----BEGIN\nKEY-----"}`, []string{`-----BEGIN\nKEY-----`, "-----BEGIN\nKEY-----"}},
		{"repeats once", `{"a":"Same-Value","b":"Same-Value"}`, []string{"Same-Value"}},
		{"one length in byte order", `{"z":"Value-bbb","a":"Value-ccc","m":"Value-aaa"}`, []string{"Value-aaa", "Value-bbb", "Value-ccc"}},
		{"not JSON: the whole document", "not json at all", []string{"not json at all"}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, AppEnvValues(tc.doc), tc.want)
		})
	}
}

func TestCredentialValues(t *testing.T) {
	key := `{"type":"service_account","project_id":"desivocalprod01","private_key_id":"0123456789abcdef","private_key":"-----BEGIN PRIVATE KEY-----\nplanted\n-----END PRIVATE KEY-----\n",` +
		`"client_email":"svc@desivocalprod01.iam.gserviceaccount.com","client_id":"1234567890","token_uri":"https://oauth2.googleapis.com/token"}`
	got := CredentialValues(key)
	assert.DeepEqual(t, got, []string{`-----BEGIN PRIVATE KEY-----\nplanted\n-----END PRIVATE KEY-----\n`, "-----BEGIN PRIVATE KEY-----\nplanted\n-----END PRIVATE KEY-----"})
	user := `{"type":"authorized_user","client_id":"id.apps.googleusercontent.com","client_secret":"planted-client-secret","refresh_token":"1//planted-refresh","quota_project_id":"desivocalprod01"}`
	assert.DeepEqual(t, CredentialValues(user), []string{"planted-client-secret", "1//planted-refresh"})
	ext := `{"type":"external_account","audience":"//iam.googleapis.com/projects/1/x","token_url":"https://sts.googleapis.com/v1/token","credential_source":{"headers":{"Metadata-Flavor":"Google"},"access_token":"planted-access"}}`
	assert.DeepEqual(t, CredentialValues(ext), []string{"planted-access"})
}

func TestValuesOfASecretsData(t *testing.T) {
	assert.DeepEqual(t, Values(map[string]string{"OPENAI_API_KEY": "sk-planted-2", "ENVIRONMENT": "production", "PORT": "8765"}), []string{"sk-planted-2"})
}

func TestKubeconfigValues(t *testing.T) {
	doc := `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EtREFUQQ==
    server: https://127.0.0.1:6443
  name: test
users:
- name: admin
  user:
    client-certificate-data: Q0VSVC1EQVRB
    client-key-data: "S0VZLURBVEE="
- name: bot
  user:
    token: planted-token-value
`
	assert.DeepEqual(t, KubeconfigValues(doc), []string{"planted-token-value", "Q0VSVC1EQVRB", "S0VZLURBVEE="})
}
