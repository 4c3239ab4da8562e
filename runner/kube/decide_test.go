package kube

import (
	"errors"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// look is one observation of a decide table and what the verdict must say.
type look struct {
	after   time.Duration // since the watch started
	dep     *appsv1.Deployment
	pods    []*corev1.Pod
	budget  Budget
	outcome outcome
	cause   error  // for outcomeFailed
	detail  string // for outcomeFailed, when set
	ready   int32
	idle    time.Duration
	wave    int
}

func TestDecide(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	rss := []*appsv1.ReplicaSet{replicaSet("1", "old"), replicaSet("2", "new")}
	running := corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	notReady := func(name string) *corev1.Pod { return pod(name, "new", false, running) }
	ready := func(name string) *corev1.Pod { return pod(name, "new", true, running) }
	old := func(name string) *corev1.Pod { return pod(name, "old", true, running) }
	pull := func(name, reason string) *corev1.Pod {
		p := pod(name, "new", false, corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}})
		p.Status.Phase = corev1.PodPending
		return p
	}
	wave := Budget{Stall: 10 * time.Minute, Waves: 2, Batch: 1}
	rolling := deployment(2, 2, 2, 2, 0, 3)
	respec := deployment(3, 3, 2, 2, 0, 3)

	tests := []struct {
		name  string
		looks []look
	}{
		{"a rollout that completes", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, wave: 1},
			{after: time.Minute, dep: deployment(2, 2, 2, 2, 2, 2), pods: []*corev1.Pod{ready("n1"), ready("n2")}, budget: wave, outcome: outcomeDone, ready: 2, wave: 2},
		}},
		{"idle within the budget, progress starts it again, then a stall", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, wave: 1},
			{after: 9 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, idle: 9 * time.Minute, wave: 1},
			{after: 10 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), ready("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, ready: 1, wave: 2},
			{after: 20 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), ready("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, ready: 1, idle: 10 * time.Minute, wave: 2},
			{after: 21 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), ready("n1"), notReady("n2")}, budget: wave, outcome: outcomeFailed, cause: ErrRolloutStalled, ready: 1, idle: 11 * time.Minute, wave: 2,
				detail: "no new pod became Ready and no old pod went away for 11m0s, longer than one wave may take (10m0s: drain, start and readiness)"},
		}},
		{"a pod that goes backwards is no progress", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), ready("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, ready: 1, wave: 2},
			{after: 5 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, idle: 5 * time.Minute, wave: 1},
			{after: 6 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), ready("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, ready: 1, idle: 6 * time.Minute, wave: 2},
		}},
		{"a new spec is a new rollout with its own budget", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, wave: 1},
			{after: 9 * time.Minute, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1"), notReady("n2")}, budget: wave, outcome: outcomeWatching, idle: 9 * time.Minute, wave: 1},
			// The rollback's spec: idle counts from the change, and its
			// budget (one wave of 2) applies.
			{after: 10 * time.Minute, dep: respec, pods: []*corev1.Pod{old("o1"), notReady("n1")}, budget: Budget{Stall: 3 * time.Minute, Waves: 1, Batch: 2}, outcome: outcomeWatching, wave: 1},
			{after: 13*time.Minute + time.Second, dep: respec, pods: []*corev1.Pod{old("o1"), notReady("n1")}, budget: Budget{Stall: 3 * time.Minute, Waves: 1, Batch: 2}, outcome: outcomeFailed, cause: ErrRolloutStalled,
				idle: 3*time.Minute + time.Second, wave: 1},
		}},
		{"a pull error fails once it lasts the grace", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ErrImagePull")}, outcome: outcomeWatching},
			{after: 50 * time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ImagePullBackOff")}, outcome: outcomeWatching, idle: 50 * time.Second},
			{after: 60 * time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ImagePullBackOff")}, outcome: outcomeFailed, cause: ErrRolloutFailed, idle: time.Minute,
				detail: "pod n1 has failed to pull its image for 1m0s"},
		}},
		{"a pull error that clears starts its grace again", []look{
			{after: 0, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ErrImagePull")}, outcome: outcomeWatching},
			{after: 50 * time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), notReady("n1")}, outcome: outcomeWatching, idle: 50 * time.Second},
			{after: 60 * time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ErrImagePull")}, outcome: outcomeWatching, idle: time.Minute},
			{after: 110 * time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), pull("n1", "ImagePullBackOff")}, outcome: outcomeWatching, idle: 110 * time.Second},
		}},
		{"a crash loop past the restart limit fails at once", []look{
			{after: time.Second, dep: rolling, pods: []*corev1.Pod{old("o1"), pod("n1", "new", false, waiting("CrashLoopBackOff", "", 3))}, outcome: outcomeFailed, cause: ErrRolloutFailed, idle: time.Second,
				detail: "pod n1 container app restarted 3 times (limit 3)"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(start)
			for i, l := range tc.looks {
				obs := observation{at: start.Add(l.after), deployment: l.dep, replicaSets: rss, pods: l.pods, budget: l.budget}
				before := tr
				var v verdict
				tr, v = decide(tr, obs, failureRules{maxRestarts: 3, pullGrace: time.Minute})
				assert.Equal(t, v.outcome, l.outcome, "look %d", i)
				assert.Equal(t, v.state.progress.Ready, l.ready, "look %d: ready", i)
				assert.Equal(t, v.state.progress.Idle, l.idle, "look %d: idle", i)
				assert.Equal(t, v.state.progress.Wave, l.wave, "look %d: wave", i)
				assert.Equal(t, v.state.progress.Elapsed, l.after, "look %d: elapsed", i)
				if l.outcome == outcomeFailed {
					assert.Assert(t, errors.Is(v.cause, l.cause), "look %d: %v", i, v.cause)
					if l.detail != "" {
						assert.Equal(t, v.detail, l.detail, "look %d", i)
					}
				}
				// decide is pure: the tracker it was given is unchanged.
				again, v2 := decide(before, obs, failureRules{maxRestarts: 3, pullGrace: time.Minute})
				assert.DeepEqual(t, v2.state.progress, v.state.progress)
				assert.Equal(t, again.lastProgress, tr.lastProgress)
			}
		})
	}
}
