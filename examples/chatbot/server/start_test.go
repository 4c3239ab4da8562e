package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

// The stand-in fails the ways a real app does, each by a switch; Start says
// so in its own log line and exit code.
func TestStartFailureSwitches(t *testing.T) {
	cases := []struct {
		name     string
		env      map[string]string
		code     int
		lastLine map[string]any
		health   int
	}{
		{name: "healthy", env: map[string]string{}, code: 0, lastLine: map[string]any{"level": "INFO", "msg": "starting chatbot stand-in"}, health: http.StatusOK},
		{name: "a required key missing from the secrets", env: map[string]string{"REQUIRED_ENV": "REDIS_URL", "LOGGER_NAME": "pipecat-canary"}, code: 1,
			lastLine: map[string]any{"level": "ERROR", "msg": "invalid configuration", "logger": "pipecat-canary",
				"error": "read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"}},
		{name: "a crash at start", env: map[string]string{"CRASH_AT_START": "3"}, code: 3,
			lastLine: map[string]any{"level": "ERROR", "msg": "crashing at start, as CRASH_AT_START asks", "exit_code": float64(3)}},
		{name: "a health endpoint that answers 503", env: map[string]string{"HEALTH_STATUS": "503"}, code: 0,
			lastLine: map[string]any{"level": "INFO", "msg": "starting chatbot stand-in"}, health: http.StatusServiceUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s, _, code := server.Start(func(k string) string { return tc.env[k] }, &out, time.Now)
			assert.Equal(t, code, tc.code, out.String())
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			var last map[string]any
			assert.NilError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
			for k, v := range tc.lastLine {
				assert.DeepEqual(t, last[k], v)
			}
			if tc.code != 0 {
				assert.Assert(t, s == nil)
				return
			}
			for _, path := range []string{"/pc/v1/healthcheck", "/pc/v1/ready"} {
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				assert.Equal(t, rec.Code, tc.health, path)
			}
		})
	}
}
