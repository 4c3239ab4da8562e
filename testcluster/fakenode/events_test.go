package fakenode_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// eventsOf waits up to 20s until the pod's events satisfy ok, and returns
// them as "Type Reason: message ×count".
func eventsOf(t *testing.T, ns, name string, ok func([]corev1.Event) bool) []string {
	t.Helper()
	var last []corev1.Event
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
		if err != nil {
			return false, err
		}
		last = list.Items
		return ok(last), nil
	})
	var out []string
	for _, e := range last {
		out = append(out, fmt.Sprintf("%s %s (%s): %s ×%d", e.Type, e.Reason, e.Source.Component, e.Message, e.Count))
	}
	assert.NilError(t, err, "events of %s: %q", name, out)
	return out
}

func has(reason, message string, minCount int32) func([]corev1.Event) bool {
	return func(evs []corev1.Event) bool {
		for _, e := range evs {
			if e.Reason == reason && strings.Contains(e.Message, message) && e.Count >= minCount {
				return true
			}
		}
		return false
	}
}

// The fake kubelet reports what a kubelet reports when a pod fails: the
// readiness probe's answer, each restart after a crash, the pull error.
func TestKubeletEventsSayWhyPodsFail(t *testing.T) {
	ns := cluster.Namespace(t)
	tests := []struct {
		name, image     string
		reason, message string
		count           int32
	}{
		{"never-ready", "repo/app:never-ready", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 1},
		{"crashloop", "repo/app:crashloop", "BackOff", "Back-off restarting failed container app in pod crashloop_" + ns, 2},
		{"pull-error", "repo/app:pull-error", "Failed", `Failed to pull image "repo/app:pull-error": rpc error: code = NotFound`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), pod(tt.name, tt.image), metav1.CreateOptions{})
			assert.NilError(t, err)
			got := eventsOf(t, ns, tt.name, has(tt.reason, tt.message, tt.count))
			for _, e := range got {
				assert.Assert(t, strings.Contains(e, "(kubelet)"), "%s", e)
			}
		})
	}
}

// A pod no node of a full pool can take gets the scheduler's event.
func TestSchedulerEventForAPodNoNodeTakes(t *testing.T) {
	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
		Architectures: []string{"arm64"},
		Allocatable:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi")},
	})
	p := pod("big", "repo/app:v1")
	p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
	_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	assert.NilError(t, err)
	got := eventsOf(t, ns, "big", has("FailedScheduling", "0/1 nodes are available: 1 Insufficient cpu.", 1))
	assert.Assert(t, strings.Contains(strings.Join(got, "\n"), "(default-scheduler)"), "%q", got)
}

// The cluster's fake nodes play the stand-in chatbot with the environment
// each pod gets from its Secret: a required key missing makes it crash with
// its own last line (in the termination message and the previous
// container's logs), a health check answering 503 keeps it from Ready.
func TestFakeNodesPlayTheStandInWithThePodsEnvironment(t *testing.T) {
	ns := cluster.Namespace(t)
	withSecret := func(t *testing.T, name string, env map[string]string) *corev1.Pod {
		t.Helper()
		data := map[string][]byte{}
		for k, v := range env {
			data[k] = []byte(v)
		}
		_, err := cluster.Client().CoreV1().Secrets(ns).Create(t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-env"}, Data: data}, metav1.CreateOptions{})
		assert.NilError(t, err)
		p := pod(name, "repo/chatbot:v1")
		c := &p.Spec.Containers[0]
		c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-env"}}}}
		c.Env = []corev1.EnvVar{{Name: "LOGGER_NAME", Value: "pipecat-canary"}}
		c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/pc/v1/healthcheck", Port: intstr.FromInt32(8765)}}}
		_, err = cluster.Client().CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
		assert.NilError(t, err)
		return p
	}
	const missing = `"msg":"invalid configuration","logger":"pipecat-canary","error":"read chatbot configuration: required setting REDIS_URL is not set (REQUIRED_ENV); add it to the app's secrets"`

	t.Run("a required key missing", func(t *testing.T) {
		t.Parallel()
		withSecret(t, "missing-key", map[string]string{"REQUIRED_ENV": "REDIS_URL", "OPENAI_API_KEY": "sk-test"})
		p := waitPod(t, ns, "missing-key", func(p *corev1.Pod) bool {
			return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
		})
		last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated
		assert.Equal(t, last.ExitCode, int32(1))
		assert.Assert(t, strings.Contains(last.Message, missing), "termination message %q", last.Message)
		eventsOf(t, ns, "missing-key", has("BackOff", "Back-off restarting failed container app", 1))

		for _, previous := range []bool{true, false} {
			rc, err := cluster.Client().CoreV1().Pods(ns).GetLogs("missing-key", &corev1.PodLogOptions{Container: "app", Previous: previous}).Stream(t.Context())
			assert.NilError(t, err)
			raw, err := io.ReadAll(rc)
			rc.Close()
			assert.NilError(t, err)
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			assert.Assert(t, strings.Contains(lines[len(lines)-1], missing), "previous %t: %s", previous, raw)
		}
	})
	t.Run("a health check answering 503", func(t *testing.T) {
		t.Parallel()
		withSecret(t, "unhealthy", map[string]string{"HEALTH_STATUS": "503"})
		p := waitPod(t, ns, "unhealthy", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
		assert.Assert(t, !ready(p))
		eventsOf(t, ns, "unhealthy", has("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", 1))
	})
	t.Run("every key there", func(t *testing.T) {
		t.Parallel()
		withSecret(t, "healthy", map[string]string{"REQUIRED_ENV": "REDIS_URL", "REDIS_URL": "redis://r:6379/0"})
		waitPod(t, ns, "healthy", ready)
	})
}

// An image built to require a setting (ENV REQUIRED_ENV=REDIS_URL), in a
// registry on this machine: the fake kubelet starts the stand-in with the
// image's ENV under the pod's, as a kubelet does, so a pod whose secrets
// lack the setting crashes in the app's words, and one that has it runs.
func TestFakeNodesStartTheStandInWithItsImagesEnv(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	img, err := mutate.Config(empty.Image, v1.Config{Env: []string{"PATH=/usr/bin", "REQUIRED_ENV=REDIS_URL"}})
	assert.NilError(t, err)
	repo := strings.TrimPrefix(srv.URL, "http://") + "/chatbot:requires-redis"
	ref, err := name.ParseReference(repo, name.Insecure)
	assert.NilError(t, err)
	assert.NilError(t, remote.Write(ref, img))
	d, err := img.Digest()
	assert.NilError(t, err)

	ns := cluster.Namespace(t)
	for podName, env := range map[string][]corev1.EnvVar{
		"without-redis": nil,
		"with-redis":    {{Name: "REDIS_URL", Value: "redis://r:6379/0"}},
	} {
		p := pod(podName, repo+"@"+d.String())
		p.Spec.Containers[0].Env = env
		p.Spec.Containers[0].TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
		_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
		assert.NilError(t, err)
	}
	crashed := waitPod(t, ns, "without-redis", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	msg := crashed.Status.ContainerStatuses[0].LastTerminationState.Terminated.Message
	assert.Assert(t, strings.Contains(msg, "required setting REDIS_URL is not set (REQUIRED_ENV)"), "termination message %q", msg)
	waitPod(t, ns, "with-redis", ready)
}
