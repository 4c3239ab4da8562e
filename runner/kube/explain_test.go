package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"gotest.tools/v3/assert"
	"gotest.tools/v3/golden"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func runningStatus(name string) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: name, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
}

func crashed(code int32, reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "app", RestartCount: restarts,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}
}

func unschedulablePod(name, msg string) *corev1.Pod {
	p := pod(name, "new", false)
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: msg}}
	p.Spec.Containers = []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("2560Mi")}}}}
	p.Spec.NodeSelector = map[string]string{"kubernetes.io/arch": "arm64"}
	return p
}

func pulling(name string) *corev1.Pod {
	p := pod(name, "new", false, corev1.ContainerStatus{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
		Reason: "ImagePullBackOff", Message: `Back-off pulling image "r/app@sha256:1"`}}})
	p.Status.Phase = corev1.PodPending
	return p
}

func TestGroupPods(t *testing.T) {
	var sixteen []*corev1.Pod
	for i := range 16 {
		sixteen = append(sixteen, pod(fmt.Sprintf("web-%02d", i), "new", false, runningStatus("app")))
	}
	tests := []struct {
		name string
		pods []*corev1.Pod
		want []string
	}{
		{"sixteen pods failing their readiness probe are one group", sixteen,
			[]string{"16 pods NotReady: running, readiness probe not passing (pod web-00 container app and 15 more)"}},
		{"ready pods and pods being deleted are no failure", func() []*corev1.Pod {
			gone := pod("web-gone", "new", false, runningStatus("app"))
			gone.DeletionTimestamp = &metav1.Time{}
			return []*corev1.Pod{pod("web-ok", "new", true, runningStatus("app")), gone}
		}(), nil},
		{"crashes by exit, the larger group first", []*corev1.Pod{
			pod("a", "new", false, crashed(137, "OOMKilled", 2)),
			pod("b", "new", false, crashed(1, "Error", 4)),
			pod("c", "new", false, crashed(1, "Error", 3)),
		}, []string{
			"2 pods CrashLoopBackOff after 4 restarts: exited with code 1 (Error) (pod b container app and 1 more)",
			"1 pod CrashLoopBackOff after 2 restarts: exited with code 137 (OOMKilled) (pod a container app)",
		}},
		{"pending pods by the scheduler's reason", []*corev1.Pod{
			unschedulablePod("p1", "0/40 nodes are available: 40 Insufficient cpu."),
			unschedulablePod("p2", "0/40 nodes are available: 40 Insufficient cpu."),
			pulling("p3"),
		}, []string{
			"2 pods Unschedulable: 0/40 nodes are available: 40 Insufficient cpu. (pod p1 and 1 more)",
			`1 pod ImagePullBackOff: Back-off pulling image "r/app@sha256:1" (pod p3 container app)`,
		}},
		{"a crashing container explains more than a waiting one", []*corev1.Pod{
			pod("m", "new", false, runningStatus("sidecar"), crashed(2, "Error", 1)),
		}, []string{"1 pod CrashLoopBackOff after 1 restarts: exited with code 2 (Error) (pod m container app)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, g := range GroupPods(tc.pods) {
				got = append(got, g.Line())
			}
			assert.DeepEqual(t, got, tc.want)
		})
	}
}

func TestRefineCause(t *testing.T) {
	ev := func(reason, msg string) PodEvent {
		return PodEvent{Type: "Warning", Reason: reason, Message: msg, From: "kubelet"}
	}
	tests := []struct {
		name   string
		group  PodGroup
		events []PodEvent
		want   string
	}{
		{"the readiness probe's answer", PodGroup{Reason: "NotReady", Cause: "running, readiness probe not passing"},
			[]PodEvent{ev("Unhealthy", "Readiness probe failed: Get \"http://10.0.0.1:8765/pc/v1/healthcheck\": connection refused"), ev("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503")},
			"readiness probe failed: HTTP probe failed with statuscode: 503"},
		{"no probe event yet", PodGroup{Reason: "NotReady", Cause: "running, readiness probe not passing"}, nil,
			"running, readiness probe not passing (no probe event)"},
		{"the registry's answer", PodGroup{Reason: "ImagePullBackOff", Cause: `Back-off pulling image "r/app"`},
			[]PodEvent{ev("Failed", `Failed to pull image "r/app": rpc error: code = NotFound desc = r/app: not found`), ev("Failed", "Error: ErrImagePull"), ev("BackOff", `Back-off pulling image "r/app"`)},
			`Failed to pull image "r/app": rpc error: code = NotFound desc = r/app: not found`},
		{"the scheduler and the autoscaler", PodGroup{Reason: "Unschedulable", Cause: "0/40 nodes are available: 40 Insufficient cpu."},
			[]PodEvent{ev("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached")},
			"FailedScheduling: 0/40 nodes are available: 40 Insufficient cpu.; NotTriggerScaleUp: pod didn't trigger scale-up: 1 max node group size reached"},
		{"a crash and the app's last line", PodGroup{Reason: "CrashLoopBackOff", Cause: "exited with code 1 (Error)", Previous: []string{"starting", `{"level":"ERROR","msg":"invalid configuration"}`, ""}},
			[]PodEvent{ev("BackOff", "Back-off restarting failed container app in pod web-1")},
			`exited with code 1 (Error); last line: {"level":"ERROR","msg":"invalid configuration"}`},
		{"killed by its liveness probe", PodGroup{Reason: "CrashLoopBackOff", Cause: "exited with code 137 (Error)"},
			[]PodEvent{ev("Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")},
			"exited with code 137 (Error); liveness probe failed: HTTP probe failed with statuscode: 500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, refineCause(tc.group, tc.events), tc.want)
		})
	}
}

func TestPoolOf(t *testing.T) {
	node := func(name, arch string, ready, cordoned bool) corev1.Node {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/arch": arch}},
			Spec: corev1.NodeSpec{Unschedulable: cordoned},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}},
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi")}}}
	}
	nodes := []corev1.Node{node("a1", "arm64", true, false), node("a2", "arm64", false, true), node("x1", "amd64", true, false)}
	assert.Equal(t, poolOf(nodes, map[string]string{"kubernetes.io/arch": "arm64"}).String(),
		"kubernetes.io/arch=arm64: 2 nodes, 1 Ready, 1 cordoned; 64 cpu, 256Gi memory allocatable")
	assert.Equal(t, poolOf(nodes, nil).String(), "3 nodes, 2 Ready, 1 cordoned; 96 cpu, 384Gi memory allocatable")
	assert.Equal(t, poolOf(nodes, map[string]string{"kubernetes.io/arch": "s390x"}).String(), "kubernetes.io/arch=s390x: 0 nodes, 0 Ready")
}

// explainEnv is a fake cluster with a crashing, a never-ready and a
// pending pod, their events, and the Secret they load.
func explainEnv(t *testing.T) (*fake.Clientset, []*corev1.Pod) {
	t.Helper()
	withSecret := func(p *corev1.Pod) *corev1.Pod {
		p.UID = types.UID("uid-" + p.Name)
		c := corev1.Container{Name: "app", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app-env-1"}}}}}
		if len(p.Spec.Containers) > 0 {
			c.Resources = p.Spec.Containers[0].Resources
		}
		p.Spec.Containers = []corev1.Container{c}
		return p
	}
	crash := withSecret(pod("web-crash", "new", false, crashed(1, "Error", 3)))
	crash.Spec.NodeName = "n1"
	never := withSecret(pod("web-never", "new", false, runningStatus("app")))
	never.Spec.NodeName = "n1"
	pend := withSecret(unschedulablePod("web-pending", "0/2 nodes are available: 2 Insufficient cpu."))
	event := func(p *corev1.Pod, n int, typ, reason, msg, from string, count int32) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", p.Name, n), Namespace: "ns", CreationTimestamp: metav1.Unix(int64(1000+n), 0)},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: p.Name, Namespace: "ns", UID: p.UID},
			Type:           typ, Reason: reason, Message: msg, Count: count, Source: corev1.EventSource{Component: from}, LastTimestamp: metav1.Unix(int64(1000+n), 0)}
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "app-env-1", Namespace: "ns"}, Data: map[string][]byte{"REDIS_URL": []byte("redis://:hunter22@r:6379")}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/arch": "arm64"}},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("8Gi")}}}
	client := fake.NewClientset(crash, never, pend, secret, node,
		event(crash, 1, "Normal", "Started", "Started container app", "kubelet", 4),
		event(crash, 2, "Warning", "BackOff", "Back-off restarting failed container app in pod web-crash", "kubelet", 6),
		event(never, 3, "Warning", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 503", "kubelet", 12),
		event(pend, 4, "Warning", "FailedScheduling", "0/2 nodes are available: 2 Insufficient cpu.", "default-scheduler", 3),
	)
	return client, []*corev1.Pod{crash, never, pend}
}

func TestExplain(t *testing.T) {
	client, pods := explainEnv(t)
	ex := Explain(context.Background(), client, pods, ExplainOptions{})
	assert.DeepEqual(t, ex.Lines(), []string{
		// The fake clientset answers every log read with "fake logs".
		"1 pod CrashLoopBackOff after 3 restarts: exited with code 1 (Error); last line: fake logs (pod web-crash container app)",
		"1 pod NotReady: readiness probe failed: HTTP probe failed with statuscode: 503 (pod web-never container app)",
		"1 pod Unschedulable: FailedScheduling: 0/2 nodes are available: 2 Insufficient cpu. (pod web-pending)",
	})
	assert.Equal(t, ex.Groups[0].Events[1].String(), "Warning BackOff (×6, kubelet): Back-off restarting failed container app in pod web-crash")
	assert.DeepEqual(t, ex.Groups[0].Previous, []string{"fake logs"})
	assert.Equal(t, ex.Groups[2].LogNote, "the container never started: no logs")
	assert.Equal(t, ex.Nodes.String(), "kubernetes.io/arch=arm64: 1 nodes, 1 Ready; 2 cpu, 8Gi memory allocatable")
	golden.Assert(t, ex.Markdown(), "explain-three-groups.golden.md")
}

func TestExplainScrubsTheSecretsThePodsLoad(t *testing.T) {
	client, pods := explainEnv(t)
	client.PrependReactor("list", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &corev1.EventList{Items: []corev1.Event{{InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "web-crash"}, Type: "Warning", Reason: "Failed",
			Message: "Error: connect redis://:hunter22@r:6379: refused"}}}, nil
	})
	ex := Explain(context.Background(), client, pods[:1], ExplainOptions{})
	assert.Equal(t, ex.Groups[0].Events[0].Message, "Error: connect ***: refused")
	assert.Assert(t, !strings.Contains(ex.Markdown(), "hunter22"))
}

// Without a permission, the explanation says what it could not read, and
// still groups the pods; logs it could not scrub are not shown.
func TestExplainNotesWhatItMayNotRead(t *testing.T) {
	client, pods := explainEnv(t)
	forbid := func(resource string) {
		client.PrependReactor("*", resource, func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "", errors.New("RBAC"))
		})
	}
	forbid("events")
	forbid("nodes")
	forbid("secrets")
	ex := Explain(context.Background(), client, pods, ExplainOptions{})
	assert.DeepEqual(t, ex.Notes, []string{
		"the Secrets the pods load (to hide their values in logs): forbidden for this account (grant it in deploy/rbac/<cluster>.yaml to see it here)",
		"events of pod web-crash: forbidden for this account (grant it in deploy/rbac/<cluster>.yaml to see it here)",
		"events of pod web-never: forbidden for this account (grant it in deploy/rbac/<cluster>.yaml to see it here)",
		"events of pod web-pending: forbidden for this account (grant it in deploy/rbac/<cluster>.yaml to see it here)",
		"the node pool: this account may not list nodes (a cluster-wide read); the scheduler's message says what it saw",
	})
	assert.Equal(t, len(ex.Groups), 3)
	assert.DeepEqual(t, ex.Groups[0].Logs, []string{"(hidden: the Secrets the pod loads could not be read to scrub it)"})
}
