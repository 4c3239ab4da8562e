package kube

import (
	"context"
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func readyCond(ok bool) corev1.PodCondition {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	return corev1.PodCondition{Type: corev1.PodReady, Status: s}
}

func pod(name, hash string, ready bool, cs ...corev1.ContainerStatus) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": "x", appsv1.DefaultDeploymentUniqueLabelKey: hash}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{readyCond(ready)}, ContainerStatuses: cs},
	}
}

func waiting(reason, msg string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "app", RestartCount: restarts, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Reason: "Error"}}}
}

func TestDiagnosePods(t *testing.T) {
	running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	deleting := pod("d", "h", false, running)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	pending := pod("s", "h", false)
	pending.Status.Phase = corev1.PodPending
	pending.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/1 nodes are available"}}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []PodProblem
	}{
		{"ready pod", pod("a", "h", true, running), nil},
		{"being deleted", deleting, nil},
		{"image pull", pod("a", "h", false, waiting("ErrImagePull", "not found", 0)), []PodProblem{{Pod: "a", Container: "app", Reason: "ErrImagePull", Message: "not found"}}},
		{"crash loop", pod("a", "h", false, waiting("CrashLoopBackOff", "back-off", 4)), []PodProblem{{Pod: "a", Container: "app", Reason: "CrashLoopBackOff", Message: "last exit code 1 Error", Restarts: 4}}},
		{"running not ready", pod("a", "h", false, running), []PodProblem{{Pod: "a", Container: "app", Reason: "NotReady", Message: "running, readiness probe not passing"}}},
		{"unschedulable", pending, []PodProblem{{Pod: "s", Reason: "Unschedulable", Message: "0/1 nodes are available"}}},
		{"no status yet", pod("a", "h", false), []PodProblem{{Pod: "a", Reason: "NotReady", Message: "Running"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.DeepEqual(t, DiagnosePods([]*corev1.Pod{tc.pod}), tc.want)
		})
	}
	assert.Equal(t, PodProblem{Pod: "a", Container: "app", Reason: "CrashLoopBackOff", Message: "last exit code 1 Error", Restarts: 4}.String(),
		"pod a container app: CrashLoopBackOff after 4 restarts (last exit code 1 Error)")
}

func TestCertainFailure(t *testing.T) {
	now := time.Unix(1000, 0)
	tests := []struct {
		name     string
		problems []PodProblem
		since    map[string]time.Time
		want     string
	}{
		{"not ready heals", []PodProblem{{Pod: "a", Reason: "NotReady"}}, nil, ""},
		{"few restarts heal", []PodProblem{{Pod: "a", Container: "app", Reason: "CrashLoopBackOff", Restarts: 2}}, nil, ""},
		{"crash loop past the limit", []PodProblem{{Pod: "a", Container: "app", Reason: "CrashLoopBackOff", Restarts: 3}}, nil, "pod a container app restarted 3 times (limit 3)"},
		{"fresh pull error", []PodProblem{{Pod: "a", Reason: "ErrImagePull"}}, map[string]time.Time{"a": now.Add(-time.Second)}, ""},
		{"lasting pull error", []PodProblem{{Pod: "a", Reason: "ImagePullBackOff"}}, map[string]time.Time{"a": now.Add(-time.Minute)}, "pod a has failed to pull its image for 1m0s"},
		{"invalid image name", []PodProblem{{Pod: "a", Reason: "InvalidImageName"}}, nil, "pod a cannot pull its image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, failureRules{3, time.Minute}.certain(tc.problems, tc.since, now), tc.want)
		})
	}
}

func deployment(gen, observed int64, replicas, updated, available, total int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: types.UID("dep-uid"), Generation: gen,
			Annotations: map[string]string{"deployment.kubernetes.io/revision": "2"}},
		Spec:   appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: observed, UpdatedReplicas: updated, AvailableReplicas: available, Replicas: total},
	}
}

func replicaSet(rev, hash string) *appsv1.ReplicaSet {
	yes := true
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: "ns",
		Labels:          map[string]string{"app": "x", appsv1.DefaultDeploymentUniqueLabelKey: hash},
		Annotations:     map[string]string{"deployment.kubernetes.io/revision": rev},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: "dep-uid", Controller: &yes}}}}
}

func TestEvaluate(t *testing.T) {
	rss := []*appsv1.ReplicaSet{replicaSet("1", "old"), replicaSet("2", "new")}
	pods := []*corev1.Pod{pod("old-1", "old", true), pod("new-1", "new", true), pod("new-2", "new", false, waiting("CrashLoopBackOff", "", 1))}
	st := evaluate(deployment(2, 2, 2, 2, 1, 3), rss, pods)
	assert.Equal(t, st.done, false)
	assert.DeepEqual(t, st.progress, RolloutProgress{Desired: 2, Updated: 2, Ready: 1, Available: 1, Old: 1})
	assert.Equal(t, len(st.problems), 1)
	assert.Equal(t, st.problems[0].Pod, "new-2")

	st = evaluate(deployment(3, 2, 2, 2, 2, 2), rss, pods)
	assert.Equal(t, st.done, false, "a generation not yet observed is not done")

	st = evaluate(deployment(2, 2, 2, 2, 2, 2), rss, pods[:2])
	assert.Equal(t, st.done, true)
}

func TestWatchRollout(t *testing.T) {
	t.Run("completes as soon as the deployment does", func(t *testing.T) {
		dep := deployment(2, 1, 1, 0, 0, 1)
		client := fake.NewClientset(dep, replicaSet("2", "new"))
		var calls []RolloutProgress
		go func() {
			time.Sleep(100 * time.Millisecond)
			d := deployment(2, 2, 1, 1, 1, 1)
			_, _ = client.AppsV1().Deployments("ns").UpdateStatus(context.Background(), d, metav1.UpdateOptions{})
		}()
		start := time.Now()
		p, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 10 * time.Second,
			Interval: 20 * time.Millisecond, Progress: func(p RolloutProgress) { calls = append(calls, p) }})
		assert.NilError(t, err)
		assert.Assert(t, time.Since(start) < 2*time.Second)
		assert.Equal(t, p.Updated, int32(1))
		assert.Assert(t, len(calls) >= 2, "progress is reported while waiting and at the end")
	})
	t.Run("crash loop fails before the timeout", func(t *testing.T) {
		client := fake.NewClientset(deployment(2, 2, 1, 1, 0, 1), replicaSet("2", "new"), pod("new-1", "new", false, waiting("CrashLoopBackOff", "", 5)))
		_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 10 * time.Second})
		assert.Assert(t, errors.Is(err, ErrRolloutFailed), "%v", err)
		assert.ErrorContains(t, err, "pod new-1 container app: CrashLoopBackOff after 5 restarts")
	})
	t.Run("never ready times out naming the pod", func(t *testing.T) {
		running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
		client := fake.NewClientset(deployment(2, 2, 1, 1, 0, 1), replicaSet("2", "new"), pod("new-1", "new", false, running))
		_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 300 * time.Millisecond})
		assert.Assert(t, errors.Is(err, ErrRolloutTimeout), "%v", err)
		assert.ErrorContains(t, err, "deployment web in ns: rollout timed out after 0s with 0/1 ready, 1/1 updated: timeout 300ms; pod new-1 container app: NotReady")
	})
	t.Run("missing deployment times out", func(t *testing.T) {
		_, err := WatchRollout(context.Background(), fake.NewClientset(), RolloutOptions{Namespace: "ns", Name: "web", Timeout: 200 * time.Millisecond})
		assert.Assert(t, errors.Is(err, ErrRolloutTimeout), "%v", err)
	})
}

// A caller that may read the Deployment but not watch its pods learns so at
// once, not after the rollout timeout.
func TestWatchRolloutForbiddenWatch(t *testing.T) {
	client := fake.NewClientset(deployment(2, 1, 1, 0, 0, 1))
	client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC: no list"))
	})
	// The error is the permission, not ErrRolloutTimeout after an hour.
	_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: time.Hour})
	assert.Check(t, !errors.Is(err, ErrRolloutTimeout))
	assert.ErrorContains(t, err, "grant list and watch on deployments, replicasets and pods")
}
