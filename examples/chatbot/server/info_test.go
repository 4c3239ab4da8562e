package server_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// secretEnv holds recognisable values that must never be reported or logged.
var secretEnv = map[string]string{
	"OPENAI_API_KEY":      "TEST-SECRET-openai-sk-4f1c",
	"REDIS_URL":           "redis://:TEST-SECRET-redis-pass@redis:6379/0",
	"CALLING_BACKEND_URL": "https://TEST-SECRET-backend.example",
	"ENVIRONMENT":         "TEST-SECRET-environment",
}

func TestInfoReportsPresenceNeverValues(t *testing.T) {
	cases := []struct {
		name   string
		creds  string
		status string
	}{
		{"valid-service-account", "testdata/creds/valid-service-account.json", server.CredsOK},
		{"valid-external-account", "testdata/creds/valid-external-account.json", server.CredsOK},
		{"valid-authorized-user", "testdata/creds/valid-authorized-user.json", server.CredsOK},
		{"invalid-truncated-json", "testdata/creds/invalid-truncated-json.json", server.CredsInvalidJSON},
		{"invalid-not-an-object", "testdata/creds/invalid-not-an-object.json", server.CredsInvalidJSON},
		{"invalid-unknown-type", "testdata/creds/invalid-unknown-type.json", server.CredsUnknownType},
		{"missing", "testdata/creds/missing.json", server.CredsMissing},
		{"unreadable-directory", "testdata/creds", server.CredsUnreadable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, harnessOptions{env: secretEnv, creds: tc.creds})
			for _, path := range []string{"/info", "/pc/v1/info"} {
				code, body := h.get(t, path)
				assert.Equal(t, code, 200)
				assertNoSecret(t, body)

				var info server.Info
				assert.NilError(t, json.Unmarshal([]byte(body), &info))
				assert.Equal(t, info.Creds.Status, tc.status)
				assert.DeepEqual(t, info.Env, map[string]string{
					"OPENAI_API_KEY": "set", "REDIS_URL": "set", "CALLING_BACKEND_URL": "set",
					"ENVIRONMENT": "set", "ADMIN_API_KEY": "missing",
				})

				var indented bytes.Buffer
				assert.NilError(t, json.Indent(&indented, []byte(body), "", "  "))
				golden.Assert(t, indented.String(), "info/"+tc.name+".golden")
			}
			assertNoSecret(t, h.logs.String())
		})
	}
}

// assertNoSecret fails if text holds any secret env value or any marker from the credentials test files,
// without printing the text.
func assertNoSecret(t *testing.T, text string) {
	t.Helper()
	for name, v := range secretEnv {
		assert.Assert(t, !strings.Contains(text, v), "the value of %s leaked", name)
	}
	assert.Assert(t, !strings.Contains(text, "TEST-SECRET"), "a secret value leaked")
	assert.Assert(t, !strings.Contains(text, "MARKER"), "credentials file content leaked")
}
