package server_test

import (
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
)

func TestConfigFromEnv(t *testing.T) {
	defaults := server.Config{
		Addr:            ":8765",
		DrainDeadline:   240 * time.Second,
		DrainMarkerPath: "/tmp/DRaining",
		CredsPath:       "/app/creds.json",
		LoggerName:      "pipecat",
		ExpectedEnv:     server.DefaultExpectedEnv(),
	}
	cases := []struct {
		name    string
		env     map[string]string
		want    func(*server.Config)
		wantErr []string
	}{
		{name: "defaults", want: func(*server.Config) {}},
		{
			name: "overrides",
			env: map[string]string{
				"HOST": "127.0.0.1", "PORT": "9000", "DRAIN_DEADLINE_SECONDS": "30", "DRAIN_MARKER_PATH": "/run/draining",
				"CREDS_PATH": "/secrets/creds.json", "GOOGLE_APPLICATION_CREDENTIALS": "/ignored.json",
				"LOGGER_NAME": "pipecat-canary", "EXPECTED_ENV": " DEEPGRAM_API_KEY, ,OPENAI_API_KEY",
			},
			want: func(c *server.Config) {
				c.Addr = "127.0.0.1:9000"
				c.DrainDeadline = 30 * time.Second
				c.DrainMarkerPath = "/run/draining"
				c.CredsPath = "/secrets/creds.json"
				c.LoggerName = "pipecat-canary"
				c.ExpectedEnv = append(server.DefaultExpectedEnv(), "DEEPGRAM_API_KEY")
			},
		},
		{
			name: "google application credentials",
			env:  map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/var/creds.json"},
			want: func(c *server.Config) { c.CredsPath = "/var/creds.json" },
		},
		{
			name: "calls closed early",
			env:  map[string]string{"CLOSE_CALLS_AFTER_SECONDS": "1.5"},
			want: func(c *server.Config) { c.CloseCallsAfter = 1500 * time.Millisecond },
		},
		{
			name:    "invalid values reported together",
			env:     map[string]string{"PORT": "http", "DRAIN_DEADLINE_SECONDS": "-1", "CLOSE_CALLS_AFTER_SECONDS": "soon"},
			wantErr: []string{`read PORT "http": not a port number`, `read DRAIN_DEADLINE_SECONDS "-1": not a positive`, `read CLOSE_CALLS_AFTER_SECONDS "soon": not a positive number`},
		},
		{
			name: "failure switches",
			env:  map[string]string{"REQUIRED_ENV": "REDIS_URL, OPENAI_API_KEY", "REDIS_URL": "redis://r", "OPENAI_API_KEY": "sk", "HEALTH_STATUS": "503", "CRASH_AT_START": "3"},
			want: func(c *server.Config) {
				c.RequiredEnv = []string{"REDIS_URL", "OPENAI_API_KEY"}
				c.HealthStatus = 503
				c.CrashAtStart = 3
			},
		},
		{
			name:    "a required setting missing",
			env:     map[string]string{"REQUIRED_ENV": "REDIS_URL,OPENAI_API_KEY", "OPENAI_API_KEY": "sk", "REDIS_URL": " "},
			wantErr: []string{"required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"},
		},
		{
			name:    "switches out of range",
			env:     map[string]string{"HEALTH_STATUS": "ok", "CRASH_AT_START": "0"},
			wantErr: []string{`read HEALTH_STATUS "ok": not an HTTP status`, `read CRASH_AT_START "0": not an exit code`},
		},
		{
			name:    "deadline past the grace period",
			env:     map[string]string{"DRAIN_DEADLINE_SECONDS": "300"},
			wantErr: []string{"outlive the 270 s termination grace period; lower it"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := server.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if len(tc.wantErr) > 0 {
				for _, want := range tc.wantErr {
					assert.ErrorContains(t, err, want)
				}
				return
			}
			assert.NilError(t, err)
			want := defaults
			want.ExpectedEnv = server.DefaultExpectedEnv()
			tc.want(&want)
			assert.DeepEqual(t, got, want)
		})
	}
}
