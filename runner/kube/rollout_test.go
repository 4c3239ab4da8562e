package kube

import (
	"context"
	"errors"
	"strings"
	"sync"
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
		waiting := make(chan struct{})
		go func() {
			<-waiting // complete the rollout once progress was reported while waiting
			d := deployment(2, 2, 1, 1, 1, 1)
			_, _ = client.AppsV1().Deployments("ns").UpdateStatus(context.Background(), d, metav1.UpdateOptions{})
		}()
		p, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 10 * time.Second,
			Interval: 20 * time.Millisecond, Progress: func(p RolloutProgress) {
				if calls = append(calls, p); len(calls) == 1 {
					close(waiting)
				}
			}})
		assert.NilError(t, err)
		assert.Equal(t, p.Updated, int32(1))
		assert.Assert(t, len(calls) >= 2, "progress is reported while waiting and at the end")
	})
	t.Run("crash loop fails before the timeout", func(t *testing.T) {
		client := fake.NewClientset(deployment(2, 2, 1, 1, 0, 1), replicaSet("2", "new"), pod("new-1", "new", false, waiting("CrashLoopBackOff", "", 5)))
		_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 10 * time.Second})
		assert.Assert(t, errors.Is(err, ErrRolloutFailed), "%v", err)
		assert.ErrorContains(t, err, "; 1 pod CrashLoopBackOff after 5 restarts: exited with code 1 (Error); last line: fake logs (pod new-1 container app)")
	})
	t.Run("never ready times out naming the pod", func(t *testing.T) {
		running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
		client := fake.NewClientset(deployment(2, 2, 1, 1, 0, 1), replicaSet("2", "new"), pod("new-1", "new", false, running))
		_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 300 * time.Millisecond})
		assert.Assert(t, errors.Is(err, ErrRolloutTimeout), "%v", err)
		// The elapsed time is rounded to seconds: 0s, or 1s on a busy machine.
		assert.ErrorContains(t, err, "deployment web in ns: rollout timed out after ")
		assert.ErrorContains(t, err, "s with 0/1 ready, 1/1 updated: timeout 300ms; 1 pod NotReady: running, readiness probe not passing (no probe event) (pod new-1 container app)")
	})
	t.Run("Kubernetes' progress deadline alone is reported, not obeyed", func(t *testing.T) {
		// Slow image pulls trip progressDeadlineSeconds while the rollout
		// still moves: the pods become Ready after the condition says
		// ProgressDeadlineExceeded, and the rollout completes.
		dep := deployment(2, 2, 1, 1, 0, 1)
		dep.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "web-new" has timed out progressing.`}}
		pulling := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
		client := fake.NewClientset(dep, replicaSet("2", "new"), pod("new-1", "new", false, pulling))
		var reported []RolloutProgress
		var mu sync.Mutex
		seen := make(chan struct{})
		go func() {
			<-seen
			done := deployment(2, 2, 1, 1, 1, 1)
			_, _ = client.AppsV1().Deployments("ns").UpdateStatus(context.Background(), done, metav1.UpdateOptions{})
		}()
		p, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: 10 * time.Second,
			Interval: 20 * time.Millisecond, Progress: func(p RolloutProgress) {
				mu.Lock()
				defer mu.Unlock()
				if reported = append(reported, p); len(reported) == 1 {
					close(seen)
				}
			}})
		assert.NilError(t, err)
		assert.Equal(t, p.Available, int32(1))
		mu.Lock()
		defer mu.Unlock()
		assert.Equal(t, reported[0].Deadline, `ReplicaSet "web-new" has timed out progressing.`)
		assert.Assert(t, strings.HasSuffix(reported[0].String(), `; Kubernetes reports ProgressDeadlineExceeded (ReplicaSet "web-new" has timed out progressing.)`), reported[0].String())
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

func TestMarksProgress(t *testing.T) {
	tests := []struct {
		name string
		now  marks
		want bool
	}{
		{"nothing moved", marks{updated: 16, ready: 15, oldPresent: 45, oldActive: 30}, false},
		{"a new pod Ready", marks{updated: 16, ready: 16, oldPresent: 45, oldActive: 30}, true},
		{"a new pod created", marks{updated: 17, ready: 15, oldPresent: 45, oldActive: 30}, true},
		{"an old pod gone", marks{updated: 16, ready: 15, oldPresent: 44, oldActive: 30}, true},
		{"an old pod deleted, draining", marks{updated: 16, ready: 15, oldPresent: 45, oldActive: 29}, true},
		// A pod that stops being Ready, or a replaced old pod, moves back:
		// not progress, and the best marks stay.
		{"a new pod no longer Ready", marks{updated: 16, ready: 14, oldPresent: 45, oldActive: 30}, false},
		{"an old pod back", marks{updated: 16, ready: 15, oldPresent: 46, oldActive: 31}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			best := marks{updated: 16, ready: 15, oldPresent: 45, oldActive: 30}
			assert.Equal(t, best.progressed(tc.now), tc.want)
			assert.Assert(t, !best.progressed(tc.now), "the same counts again are no progress")
		})
	}
}

func TestEvaluateCountsDrainingAndPending(t *testing.T) {
	rss := []*appsv1.ReplicaSet{replicaSet("1", "old"), replicaSet("2", "new")}
	draining := pod("old-2", "old", true)
	draining.DeletionTimestamp = &metav1.Time{Time: time.Unix(1, 0)}
	unschedulable := func(name string) *corev1.Pod {
		p := pod(name, "new", false)
		p.Status.Phase = corev1.PodPending
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient cpu."}}
		return p
	}
	creating := pod("new-4", "new", false, corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}})
	creating.Spec.NodeName, creating.Status.Phase = "n1", corev1.PodPending
	pods := []*corev1.Pod{pod("old-1", "old", true), draining, pod("new-1", "new", true), unschedulable("new-2"), unschedulable("new-3"), creating}
	st := evaluate(deployment(2, 2, 4, 4, 2, 5), rss, pods)
	assert.Equal(t, st.progress.Draining, int32(1))
	assert.Equal(t, st.progress.Pending, int32(3))
	assert.Equal(t, st.progress.PendingReason, "Unschedulable: 0/2 nodes are available: 2 Insufficient cpu.")
	assert.Equal(t, *st.marks, marks{updated: 4, ready: 1, oldPresent: 2, oldActive: 1})
	assert.Equal(t, st.progress.String(), "1/4 ready, 4/4 updated, 1 old, 1 draining, 3 pending (Unschedulable: 0/2 nodes are available: 2 Insufficient cpu.)")

	st = evaluate(deployment(3, 2, 4, 4, 2, 5), rss, pods)
	assert.Assert(t, st.marks == nil, "no marks before the new revision is observed")
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestWatchRolloutStall runs the stall budget on a clock the test moves: a
// rollout may sit still for up to one wave, progress starts the budget
// again, and a wave's worth of nothing fails it, naming the stall.
func TestWatchRolloutStall(t *testing.T) {
	running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	client := fake.NewClientset(deployment(2, 2, 2, 2, 0, 2), replicaSet("2", "new"), pod("new-1", "new", false, running), pod("new-2", "new", false, running))
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	reports := make(chan RolloutProgress, 10000)
	done := make(chan error, 1)
	go func() {
		_, err := WatchRollout(context.Background(), client, RolloutOptions{Namespace: "ns", Name: "web", Timeout: time.Hour,
			Budget:   func(*appsv1.Deployment) Budget { return Budget{Stall: 10 * time.Minute, Waves: 2, Batch: 1} },
			Interval: time.Nanosecond, Now: clock.Now,
			Progress: func(p RolloutProgress) {
				select {
				case reports <- p:
				default:
				}
			}})
		done <- err
	}()
	// next waits (boundedly) for a report that satisfies ok.
	next := func(what string, ok func(RolloutProgress) bool) RolloutProgress {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case p := <-reports:
				if ok(p) {
					return p
				}
			case err := <-done:
				t.Fatalf("watch ended waiting for %s: %v", what, err)
			case <-timeout:
				t.Fatalf("no report of %s", what)
			}
		}
	}
	p := next("a first look", func(p RolloutProgress) bool { return p.Waves == 2 })
	assert.Equal(t, p.Wave, 1)
	clock.Advance(9 * time.Minute)
	next("9 minutes idle", func(p RolloutProgress) bool { return p.Idle == 9*time.Minute })

	ready := pod("new-1", "new", true, running)
	_, err := client.CoreV1().Pods("ns").UpdateStatus(context.Background(), ready, metav1.UpdateOptions{})
	assert.NilError(t, err)
	p = next("progress", func(p RolloutProgress) bool { return p.Ready == 1 })
	assert.Equal(t, p.Idle, time.Duration(0), "a new pod Ready starts the budget again")
	assert.Equal(t, p.Wave, 2)

	clock.Advance(9 * time.Minute)
	next("9 minutes idle again", func(p RolloutProgress) bool { return p.Idle == 9*time.Minute })
	select {
	case err := <-done:
		t.Fatalf("stalled within the budget: %v", err)
	default:
	}
	clock.Advance(2 * time.Minute)
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("no stall 11 minutes after the last progress")
	}
	assert.Assert(t, errors.Is(err, ErrRolloutStalled), "%v", err)
	assert.ErrorContains(t, err, "no new pod became Ready and no old pod went away for 11m0s, longer than one wave may take (10m0s: drain, start and readiness)")
	assert.ErrorContains(t, err, "; 1 pod NotReady: running, readiness probe not passing (no probe event) (pod new-2 container app)")
}
