// Package standin plays the stand-in chatbot (examples/chatbot) in the pods
// of fake nodes: the stand-in's own start-up code (server.Start) decides,
// from the environment the kubelet gives the container, whether it starts,
// crashes (and with which exit code and last lines) or never passes its
// readiness probe (its own health handler answers the probe's path). So a
// deploy of the stand-in whose secrets lack a key it requires fails on fake
// nodes as it fails on a cluster, in the app's own words.
package standin

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// DefaultProbePath is what the probe asks when the pod has no HTTP
// readiness probe: the chatbot contract's health check.
const DefaultProbePath = "/pc/v1/healthcheck"

// Play runs the stand-in's start-up with env and asks its readiness path,
// as fakenode.Play. Every pod is the stand-in's: an app that ignores its
// switches (REQUIRED_ENV, HEALTH_STATUS, CRASH_AT_START) starts Ready.
func Play(pod *corev1.Pod, env map[string]string) (fakenode.AppRun, bool) {
	if len(pod.Spec.Containers) == 0 {
		return fakenode.AppRun{}, false
	}
	var out bytes.Buffer
	s, _, code := server.Start(func(k string) string { return env[k] }, &out, time.Now)
	logs := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if code != 0 {
		return fakenode.AppRun{Behavior: fakenode.CrashLoop, ExitCode: int32(code), Logs: logs}, true
	}
	path := DefaultProbePath
	if p := pod.Spec.Containers[0].ReadinessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "" {
		path = p.HTTPGet.Path
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	// The kubelet's HTTP probe passes on 200-399.
	if rec.Code < 200 || rec.Code >= 400 {
		return fakenode.AppRun{Behavior: fakenode.NeverReady, Probe: fmt.Sprintf("HTTP probe failed with statuscode: %d", rec.Code), Logs: logs}, true
	}
	return fakenode.AppRun{Behavior: fakenode.Ready, Logs: logs}, true
}
