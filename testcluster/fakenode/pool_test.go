package fakenode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// scale runs one second of the pod spec's numbers in 10 ms.
const scale = 10 * time.Millisecond

// event is one change of one pod as a watch saw it, and when.
type event struct {
	typ watch.EventType
	pod *corev1.Pod
	at  time.Time
}

// watchPods streams the namespace's pod events from now on, in the API
// server's order, until the test ends.
func watchPods(t *testing.T, ns string) <-chan event {
	t.Helper()
	w, err := cluster.Client().CoreV1().Pods(ns).Watch(t.Context(), metav1.ListOptions{})
	assert.NilError(t, err)
	t.Cleanup(w.Stop)
	out := make(chan event, 1000)
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			if p, ok := ev.Object.(*corev1.Pod); ok {
				out <- event{ev.Type, p, time.Now()}
			}
		}
	}()
	return out
}

// until reads events until done says so, failing after 30 s without.
func until(t *testing.T, events <-chan event, what string, done func(event) bool) event {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch ended before %s", what)
			}
			if done(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s within 30s", what)
		}
	}
}

// allReady reads events until every named pod has been seen Ready, in
// whichever order they get there.
func allReady(t *testing.T, events <-chan event, names ...string) {
	t.Helper()
	waiting := map[string]bool{}
	for _, n := range names {
		waiting[n] = true
	}
	until(t, events, fmt.Sprintf("%v Ready", names), func(ev event) bool {
		if ev.typ != watch.Deleted && ready(ev.pod) {
			delete(waiting, ev.pod.Name)
		}
		return len(waiting) == 0
	})
}

func named(name string, done func(*corev1.Pod) bool) func(event) bool {
	return func(ev event) bool { return ev.typ != watch.Deleted && ev.pod.Name == name && done(ev.pod) }
}

func container(p *corev1.Pod) string {
	if len(p.Status.ContainerStatuses) == 0 {
		return ""
	}
	s := p.Status.ContainerStatuses[0].State
	switch {
	case s.Waiting != nil:
		return s.Waiting.Reason
	case s.Running != nil:
		return "Running"
	}
	return "Terminated"
}

func withProbe(p *corev1.Pod, delay, period int32) *corev1.Pod {
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{InitialDelaySeconds: delay, PeriodSeconds: period,
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8765)}}}
	return p
}

func TestPoolPodBecomesReadyOnItsProbeTimes(t *testing.T) {
	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
		Architectures: []string{"arm64"}, TimeScale: scale,
		// Pull and start 40 s (400 ms: long enough for a watch on a busy
		// machine to see ContainerCreating); the app answers 70 s after the
		// start: after the first probe at 60 s, so Ready at the second,
		// 40+60+30 = 130 s.
		Timing: func(*corev1.Pod) fakenode.Timing {
			return fakenode.Timing{Start: 40 * time.Second, Ready: 70 * time.Second}
		},
	})
	events := watchPods(t, ns)
	created := time.Now()
	_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), withProbe(pod("slow", "repo/app:v1"), 60, 30), metav1.CreateOptions{})
	assert.NilError(t, err)

	var seen []string
	ready := until(t, events, "Ready pod", func(ev event) bool {
		if c := container(ev.pod); c != "" && (len(seen) == 0 || seen[len(seen)-1] != c) {
			seen = append(seen, c)
		}
		return ev.pod.Name == "slow" && ready(ev.pod)
	})
	assert.DeepEqual(t, seen, []string{"ContainerCreating", "Running"})
	assert.DeepEqual(t, []string{ready.pod.Spec.NodeName}, poolNodes(t, ns))
	took := ready.at.Sub(created)
	assert.Assert(t, took >= 130*scale, "Ready after %s, before its second probe at %s", took, 130*scale)
	t.Logf("Ready %s after creation (second probe due at %s)", took.Round(time.Millisecond), 130*scale)
}

func TestPoolTerminatingPodKeepsItsRequestsUntilDrained(t *testing.T) {
	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
		Architectures: []string{"arm64"}, NodesPerArchitecture: 1, TimeScale: scale,
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")},
		Timing:      func(*corev1.Pod) fakenode.Timing { return fakenode.Timing{Drain: 50 * time.Second} },
	})
	events := watchPods(t, ns)
	create := func(name string) {
		p := pod(name, "repo/app:v1")
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
		_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
		assert.NilError(t, err)
	}
	create("a")
	create("b")
	// a and b start at the same time: either may be Ready first, and until
	// drops what it does not wait for, so wait for both in one read.
	allReady(t, events, "a", "b")

	create("c")
	pending := until(t, events, "c unschedulable", named("c", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				return true
			}
		}
		return false
	}))
	assert.Equal(t, pending.pod.Status.Phase, corev1.PodPending)
	assert.Equal(t, pending.pod.Spec.NodeName, "")
	var cond corev1.PodCondition
	for _, c := range pending.pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			cond = c
		}
	}
	assert.Equal(t, cond.Reason, corev1.PodReasonUnschedulable)
	assert.Equal(t, cond.Message, "0/1 nodes are available: 1 Insufficient cpu.")

	deleted := time.Now()
	assert.NilError(t, cluster.Client().CoreV1().Pods(ns).Delete(t.Context(), "a", metav1.DeleteOptions{}))
	// One watch delivers changes in the API server's order: c must not be
	// bound before a is gone.
	var order []string
	bound := until(t, events, "c bound", func(ev event) bool {
		switch {
		case ev.pod.Name == "a" && ev.typ == watch.Deleted:
			order = append(order, "a gone")
		case ev.pod.Name == "a" && ev.pod.DeletionTimestamp != nil && len(order) == 0:
			order = append(order, "a terminating")
		case ev.pod.Name == "c" && ev.pod.Spec.NodeName != "":
			order = append(order, "c bound")
			return true
		}
		return false
	})
	assert.DeepEqual(t, order, []string{"a terminating", "a gone", "c bound"})
	took := bound.at.Sub(deleted)
	assert.Assert(t, took >= 50*scale, "a drained for %s, less than its 50 s (%s)", took, 50*scale)
	until(t, events, "c Ready", named("c", ready))
}

func TestPoolLeavesOtherNamespacesToTheSharedNodes(t *testing.T) {
	pool := cluster.NamespaceWithNodes(t, fakenode.Options{Architectures: []string{"amd64"}})
	shared := cluster.Namespace(t)
	for _, ns := range []string{pool, shared} {
		_, err := cluster.Client().CoreV1().Pods(ns).Create(t.Context(), pod("p", "repo/app:v1"), metav1.CreateOptions{})
		assert.NilError(t, err)
	}
	assert.DeepEqual(t, []string{waitPod(t, pool, "p", ready).Spec.NodeName}, poolNodes(t, pool))
	assert.Equal(t, waitPod(t, shared, "p", ready).Spec.NodeName, "fake-amd64")
}

// poolNodes lists the names of the nodes of a namespace's pool.
func poolNodes(t *testing.T, ns string) []string {
	t.Helper()
	nodes, err := cluster.Client().CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: fakenode.LabelPool + "=" + ns})
	assert.NilError(t, err)
	var names []string
	for _, n := range nodes.Items {
		assert.Assert(t, strings.HasPrefix(n.Name, fakenode.NodePrefix), n.Name)
		assert.Assert(t, len(n.Name) <= 63, n.Name)
		names = append(names, n.Name)
	}
	return names
}
