package scrub

import (
	"testing"

	"gotest.tools/v3/assert"
)

func TestJSONValues(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"strings numbers and nesting", `{"OPENAI_API_KEY":"sk-planted-1","PORT":8765,"FLAG":true,"N":null,"nested":{"a":["deep-value"]}}`,
			[]string{"sk-planted-1", "deep-value", "8765"}},
		{"short values are left", `{"A":"on","B":12,"C":"abcd"}`, []string{"abcd"}},
		{"escaped spelling too", `{"private_key":"-----BEGIN\nKEY-----"}`,
			[]string{`-----BEGIN\nKEY-----`, "-----BEGIN\nKEY-----"}},
		{"repeats once", `{"a":"same-value","b":"same-value"}`, []string{"same-value"}},
		{"one length in byte order", `{"z":"value-bbb","a":"value-ccc","m":"value-aaa"}`, []string{"value-aaa", "value-bbb", "value-ccc"}},
		{"not JSON: the whole document", "not json at all", []string{"not json at all"}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, JSONValues(tc.doc), tc.want)
		})
	}
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
