package fakenode_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

var cluster *testcluster.Cluster

func TestMain(m *testing.M) { os.Exit(testcluster.Main(m, &cluster)) }

func TestDefaultBehaviorFollowsTheImageTag(t *testing.T) {
	tests := []struct {
		image string
		want  fakenode.Behavior
	}{
		{"repo/app:v1", fakenode.Ready},
		{"repo/app", fakenode.Ready},
		{"localhost:5000/app", fakenode.Ready},
		{"repo/app:never-ready", fakenode.NeverReady},
		{"repo/app:never-ready@sha256:0123", fakenode.NeverReady},
		{"localhost:5000/app:crashloop", fakenode.CrashLoop},
		{"app:pull-error", fakenode.PullError},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			pod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Image: "sidecar:v1"}, {Image: tt.image}}}}
			assert.Equal(t, fakenode.DefaultBehavior(pod), tt.want)
		})
	}
}

// pod is a pod the test namespaces admit (testcluster.Restrict).
func pod(name, image string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
			TerminationGracePeriodSeconds: new(int64(300)),
		},
	}
	testcluster.Restrict(&p.Spec)
	return p
}

// waitPod waits up to 20s for the pod to satisfy done, reporting its last
// status when it does not.
func waitPod(t *testing.T, ns, name string, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var last *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cluster.Client().CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = p
		return done(p), nil
	})
	assert.NilError(t, err, "pod %s: last status %s", name, describe(last))
	return last
}

func describe(p *corev1.Pod) string {
	if p == nil {
		return "none"
	}
	s := fmt.Sprintf("node=%q phase=%s", p.Spec.NodeName, p.Status.Phase)
	for _, c := range p.Status.Conditions {
		s += fmt.Sprintf(" %s=%s", c.Type, c.Status)
	}
	for _, cs := range p.Status.ContainerStatuses {
		s += fmt.Sprintf(" restarts=%d", cs.RestartCount)
		if cs.State.Waiting != nil {
			s += " waiting=" + cs.State.Waiting.Reason
		}
	}
	return s
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func waiting(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
		return ""
	}
	return p.Status.ContainerStatuses[0].State.Waiting.Reason
}

func TestPodsReachTheStateTheirImageTagAsksFor(t *testing.T) {
	ns := cluster.Namespace(t)
	tests := []struct {
		name, image string
		done        func(*corev1.Pod) bool
		check       func(*testing.T, *corev1.Pod)
	}{
		{
			name: "ready", image: "repo/app:v1",
			done: ready,
			check: func(t *testing.T, p *corev1.Pod) {
				assert.Equal(t, p.Status.Phase, corev1.PodRunning)
				assert.Equal(t, p.Spec.NodeName, "fake-amd64")
				assert.Assert(t, p.Status.PodIP != "")
				assert.Assert(t, p.Status.ContainerStatuses[0].State.Running != nil)
			},
		},
		{
			name: "never-ready", image: "repo/app:never-ready",
			done: func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning },
			check: func(t *testing.T, p *corev1.Pod) {
				assert.Assert(t, !ready(p))
				assert.Assert(t, p.Status.ContainerStatuses[0].State.Running != nil)
			},
		},
		{
			name: "crashloop", image: "repo/app:crashloop",
			done: func(p *corev1.Pod) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 2
			},
			check: func(t *testing.T, p *corev1.Pod) {
				cs := p.Status.ContainerStatuses[0]
				assert.Equal(t, waiting(p), "CrashLoopBackOff")
				assert.Assert(t, cs.LastTerminationState.Terminated != nil)
				assert.Equal(t, cs.LastTerminationState.Terminated.ExitCode, int32(1))
				assert.Assert(t, !ready(p))
			},
		},
		{
			name: "pull-error", image: "repo/app:pull-error",
			done: func(p *corev1.Pod) bool { return waiting(p) == "ImagePullBackOff" },
			check: func(t *testing.T, p *corev1.Pod) {
				assert.Equal(t, p.Status.Phase, corev1.PodPending)
				assert.Assert(t, !ready(p))
				msg := p.Status.ContainerStatuses[0].State.Waiting.Message
				assert.Assert(t, strings.Contains(msg, "ErrImagePull"), "message %q", msg)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), pod(tt.name, tt.image), metav1.CreateOptions{})
			assert.NilError(t, err)
			tt.check(t, waitPod(t, ns, tt.name, tt.done))
		})
	}
}

func TestArchitectureSelectorPicksTheNode(t *testing.T) {
	ns := cluster.Namespace(t)
	p := pod("arm", "repo/app:v1")
	p.Spec.NodeSelector = map[string]string{corev1.LabelArchStable: "arm64"}
	_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	assert.NilError(t, err)
	got := waitPod(t, ns, "arm", ready)
	assert.Equal(t, got.Spec.NodeName, "fake-arm64")
}

func TestTerminatingPodIsRemovedWithoutWaitingForItsGracePeriod(t *testing.T) {
	ns := cluster.Namespace(t)
	_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), pod("doomed", "repo/app:v1"), metav1.CreateOptions{})
	assert.NilError(t, err)
	waitPod(t, ns, "doomed", ready)

	start := time.Now()
	assert.NilError(t, cluster.Client().CoreV1().Pods(ns).Delete(t.Context(), "doomed", metav1.DeleteOptions{}))
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cluster.Client().CoreV1().Pods(ns).Get(ctx, "doomed", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	assert.NilError(t, err, "pod with a 300s grace period still there")
	t.Logf("terminating pod gone in %s", time.Since(start).Round(time.Millisecond))
}

func TestRunNeedsAConfig(t *testing.T) {
	err := fakenode.Run(t.Context(), fakenode.Options{})
	assert.ErrorContains(t, err, "no rest.Config")
}
