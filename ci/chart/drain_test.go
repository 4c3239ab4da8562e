package chart_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gotest.tools/v3/assert"

	"github.com/ringg/ringg-ci/ci/targets"
)

// drainCommand renders the stable Deployment's preStop command for an app on
// port with the given drain deadline.
func drainCommand(t *testing.T, port, deadline int) []string {
	t.Helper()
	m := mustRender(t, target(t, targets.Stable), pipelineValues(map[string]any{
		"containerPort": port,
		"drain":         map[string]any{"deadlineSeconds": deadline, "pollSeconds": 1},
	}))
	c := deployment(t, m).Spec.Template.Spec.Containers[0]
	assert.Assert(t, c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Exec != nil)
	return c.Lifecycle.PreStop.Exec.Command
}

// TestDrainScript runs the rendered preStop program with a local python
// against a loopback stand-in for the app's drain endpoint.
func TestDrainScript(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		python, err = exec.LookPath("python")
	}
	if err != nil {
		t.Skip("no python on PATH: the preStop program cannot run here")
	}

	type reply struct {
		status int
		body   string
	}
	cases := []struct {
		name     string
		replies  []reply // the last one repeats
		noApp    bool
		deadline int
		// wantGETs is the exact number of drain calls; 0 means at least 2.
		wantGETs   int64
		minElapsed time.Duration
		maxElapsed time.Duration
	}{
		{
			name:     "calls end before the deadline",
			replies:  []reply{{200, `{"draining": true, "active_calls": 2}`}, {200, `{"active_calls": 1}`}, {200, `{"active_calls": 0}`}},
			deadline: 30, wantGETs: 3, minElapsed: 2 * time.Second, maxElapsed: 10 * time.Second,
		},
		{
			name:     "no active_calls field waits for the deadline",
			replies:  []reply{{200, `{"draining": true}`}},
			deadline: 3, minElapsed: 3 * time.Second, maxElapsed: 10 * time.Second,
		},
		{
			name:     "answer that is not JSON waits for the deadline",
			replies:  []reply{{404, `not found`}},
			deadline: 2, minElapsed: 2 * time.Second, maxElapsed: 10 * time.Second,
		},
		{
			name:     "error status with zero calls stops",
			replies:  []reply{{503, `{"active_calls": 0}`}},
			deadline: 30, wantGETs: 1, maxElapsed: 5 * time.Second,
		},
		{
			name:     "app gone stops at once",
			noApp:    true,
			deadline: 30, maxElapsed: 5 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var gets atomic.Int64
			var port int
			if tc.noApp {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				assert.NilError(t, err)
				port = l.Addr().(*net.TCPAddr).Port
				assert.NilError(t, l.Close())
			} else {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodGet || r.URL.Path != "/pc/v1/drain/start" {
						http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusTeapot)
						return
					}
					n := int(gets.Add(1))
					rep := tc.replies[min(n, len(tc.replies))-1]
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(rep.status)
					fmt.Fprint(w, rep.body)
				}))
				t.Cleanup(srv.Close)
				port, err = strconv.Atoi(srv.URL[len("http://127.0.0.1:"):])
				assert.NilError(t, err)
			}

			cmd := drainCommand(t, port, tc.deadline)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			out, err := exec.CommandContext(ctx, python, cmd[1:]...).CombinedOutput()
			elapsed := time.Since(start)
			assert.NilError(t, err, "preStop output: %s", out)
			assert.Assert(t, elapsed >= tc.minElapsed, "stopped after %s, want at least %s; output: %s", elapsed, tc.minElapsed, out)
			assert.Assert(t, elapsed <= tc.maxElapsed, "stopped after %s, want at most %s; output: %s", elapsed, tc.maxElapsed, out)
			switch {
			case tc.noApp:
			case tc.wantGETs > 0:
				assert.Equal(t, gets.Load(), tc.wantGETs)
			default:
				assert.Assert(t, gets.Load() >= 2, "polled %d times", gets.Load())
			}
		})
	}
}
