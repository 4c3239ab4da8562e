package podrun

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/pipeline"
)

func TestDecide(t *testing.T) {
	readiness := &pipeline.Probe{Path: "/pc/v1/healthcheck", Port: 8765, InitialDelaySeconds: 60, PeriodSeconds: 30}
	liveness := &pipeline.Probe{Path: "/pc/v1/healthcheck", Port: 8765, InitialDelaySeconds: 90, PeriodSeconds: 60, FailureThreshold: 2}
	fail503 := "HTTP probe failed with statuscode: 503"
	tests := []struct {
		name   string
		events []event
		want   *Verdict
	}{
		{"exits before it is ready", []event{{at: time.Second, exit: 1}},
			&Verdict{State: Crashed, ExitCode: 1, After: time.Second}},
		{"passes its readiness probe", []event{{at: 60 * time.Second, probe: "readiness", ok: true}},
			&Verdict{State: Ready, Probe: "readiness probe GET :8765/pc/v1/healthcheck after 60s, every 30s passed", After: 60 * time.Second}},
		{"fails its readiness probe three times", []event{
			{at: 60 * time.Second, probe: "readiness", answer: fail503},
			{at: 90 * time.Second, probe: "readiness", answer: fail503},
			{at: 120 * time.Second, probe: "readiness", answer: fail503}},
			&Verdict{State: NotReady, After: 120 * time.Second, Probe: "readiness probe GET :8765/pc/v1/healthcheck after 60s, every 30s failed 3 times: " + fail503}},
		{"two failures are no verdict yet", []event{
			{at: 60 * time.Second, probe: "readiness", answer: fail503},
			{at: 90 * time.Second, probe: "readiness", answer: fail503}}, nil},
		{"killed by its liveness probe", []event{
			{at: 90 * time.Second, probe: "liveness", answer: fail503},
			{at: 150 * time.Second, probe: "liveness", answer: fail503}},
			&Verdict{State: Killed, After: 150 * time.Second, Probe: "liveness probe GET :8765/pc/v1/healthcheck after 90s, every 1m0s failed 2 times: " + fail503}},
		{"a liveness probe that passes resets its count", []event{
			{at: 90 * time.Second, probe: "liveness", answer: fail503},
			{at: 150 * time.Second, probe: "liveness", ok: true},
			{at: 210 * time.Second, probe: "liveness", answer: fail503}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st state
			var got *Verdict
			for _, e := range tc.events {
				if st, got = decide(st, e, readiness, liveness); got != nil {
					break
				}
			}
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

// chatbot builds the stand-in from source.
func chatbot(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH: cannot build the stand-in")
	}
	bin := filepath.Join(t.TempDir(), "chatbot")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "chatbot")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	assert.NilError(t, err, "build the stand-in: %s", out)
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	assert.NilError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The stand-in, run as the kubelet runs it with production's probes
// (readiness 60 s + 30 s, liveness 90 s + 60 s) on a scale of 1 s = 10 ms,
// ends each way its switches make it fail, in its own words.
func TestRunTheStandIn(t *testing.T) {
	bin := chatbot(t)
	tests := []struct {
		name     string
		env      []string
		state    string
		exit     int
		probe    string
		lastLine string
	}{
		{name: "healthy", state: Ready, probe: "readiness probe GET :"},
		{name: "a required key missing", env: []string{"REQUIRED_ENV=REDIS_URL"}, state: Crashed, exit: 1,
			lastLine: `"msg":"invalid configuration","logger":"pipecat-canary","error":"read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"}`},
		{name: "a health endpoint answering 503", env: []string{"HEALTH_STATUS=503"}, state: NotReady,
			probe: `failed 3 times: HTTP probe failed with statuscode: 503 (body: {"status":"unhealthy","draining":false,"active_calls":0})`},
		{name: "a crash at start", env: []string{"CRASH_AT_START=3"}, state: Crashed, exit: 3, lastLine: `"msg":"crashing at start, as CRASH_AT_START asks","logger":"pipecat-canary","exit_code":3}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			probe := func(delay, period int) *pipeline.Probe {
				return &pipeline.Probe{Path: "/pc/v1/healthcheck", Port: port, InitialDelaySeconds: delay, PeriodSeconds: period}
			}
			var out strings.Builder
			v, err := Run(context.Background(), Options{
				Pod:     pipeline.Pod{Container: "dv-pipecat", Port: port, Readiness: probe(60, 30), Liveness: probe(90, 60)},
				Command: []string{bin},
				Env: append([]string{"HOST=127.0.0.1", "PORT=" + strconv.Itoa(port), "LOGGER_NAME=pipecat-canary",
					"CREDS_PATH=" + filepath.Join(t.TempDir(), "creds.json")}, tc.env...),
				TimeScale: 10 * time.Millisecond,
				Output:    &out,
			})
			assert.NilError(t, err)
			assert.Equal(t, v.State, tc.state, "%s\n%s", v, out.String())
			assert.Equal(t, v.ExitCode, tc.exit)
			assert.Assert(t, strings.Contains(v.Probe, tc.probe), v.Probe)
			if tc.lastLine != "" {
				assert.Assert(t, strings.HasSuffix(v.Logs[len(v.Logs)-1], tc.lastLine), "%q", v.Logs)
			}
			assert.Assert(t, strings.Contains(out.String(), `"logger":"pipecat-canary"`), "the app's output went on: %s", out.String())
		})
	}
}
