package fakenode

import (
	"strings"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

const s = time.Second

func TestBackOffFollowsTheKubelet(t *testing.T) {
	var got []time.Duration
	for n := int32(1); n <= 7; n++ {
		got = append(got, backOff(n))
	}
	assert.DeepEqual(t, got, []time.Duration{10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 300 * s, 300 * s})
}

func TestReadyAt(t *testing.T) {
	prod := &probe{delay: 60 * s, period: 30 * s}
	tests := []struct {
		name         string
		start, ready time.Duration
		probe        *probe
		want         time.Duration
	}{
		{"no probe: ready when running", 20 * s, 90 * s, nil, 20 * s},
		{"app ready before the first probe", 20 * s, 10 * s, prod, 80 * s},
		{"app ready exactly at the first probe", 0, 60 * s, prod, 60 * s},
		{"app ready after the first probe waits a period", 0, 61 * s, prod, 90 * s},
		{"two failed probes", 5 * s, 100 * s, prod, 125 * s},
		{"no delay probes at once", 0, 0, &probe{period: 10 * s}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, readyAt(tc.start, tc.ready, tc.probe), tc.want)
		})
	}
}

func TestCourseAt(t *testing.T) {
	prod := &probe{delay: 60 * s, period: 30 * s}
	timing := Timing{Start: 20 * s, Ready: 10 * s, CrashAfter: 5 * s}
	type want struct {
		stage    stage
		ready    bool
		restarts int32
		next     time.Duration
	}
	tests := []struct {
		name    string
		b       Behavior
		t       Timing
		elapsed time.Duration
		want    want
	}{
		{"creating until started", Ready, timing, 5 * s, want{stage: stageCreating, next: 15 * s}},
		{"running, not yet probed", Ready, timing, 30 * s, want{stage: stageRunning, next: 50 * s}},
		{"ready at the first probe", Ready, timing, 80 * s, want{stage: stageRunning, ready: true}},
		{"never ready runs on", NeverReady, timing, time.Hour, want{stage: stageRunning}},
		{"crash loop runs first", CrashLoop, timing, 24 * s, want{stage: stageRunning, next: s}},
		{"first crash backs off 10s", CrashLoop, timing, 25 * s, want{stage: stageCrashed, restarts: 1, next: 10 * s}},
		{"restarted once", CrashLoop, timing, 35 * s, want{stage: stageRunning, restarts: 1, next: 5 * s}},
		{"second crash backs off 20s", CrashLoop, timing, 40 * s, want{stage: stageCrashed, restarts: 2, next: 20 * s}},
		// 20 start + 5 + 10 + 5 + 20 + 5 = 65 s to the third crash.
		{"third crash at 65s", CrashLoop, timing, 65 * s, want{stage: stageCrashed, restarts: 3, next: 40 * s}},
		{"not before", CrashLoop, timing, 64 * s, want{stage: stageRunning, restarts: 2, next: s}},
		{"pull error after the pull", PullError, timing, 20 * s, want{stage: stagePullError, next: s}},
		{"then back-off", PullError, timing, 21 * s, want{stage: stagePullBackOff, next: 10 * s}},
		{"then a new attempt", PullError, timing, 31 * s, want{stage: stagePullError, next: s}},
		{"zero timing still waits for the probe", Ready, Timing{}, 0, want{stage: stageRunning, next: 60 * s}},
		{"zero timing is Ready at initialDelaySeconds", Ready, Timing{}, 60 * s, want{stage: stageRunning, ready: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := prod
			if tc.b == CrashLoop {
				p = nil
			}
			st, next := course{tc.b, tc.t, p, 10}.at(tc.elapsed)
			assert.Equal(t, want{st.stage, st.ready, st.restarts, next}, tc.want)
		})
	}
	st, next := course{CrashLoop, Timing{}, nil, 3}.at(time.Hour)
	assert.Equal(t, st.restarts, int32(3), "restarts stop at MaxRestarts")
	assert.Equal(t, next, time.Duration(0))
}

func TestDrainIsBoundedByTheGracePeriod(t *testing.T) {
	pod := func(spec *int64) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{TerminationGracePeriodSeconds: spec}}
	}
	grace := func(n int64) *int64 { return &n }
	p := pod(grace(270))
	assert.Equal(t, drainFor(p, Timing{Drain: 260 * s}), 260*s)
	assert.Equal(t, drainFor(p, Timing{Drain: WholeGrace}), 270*s)
	assert.Equal(t, drainFor(p, Timing{}), time.Duration(0))
	p.DeletionGracePeriodSeconds = grace(5)
	assert.Equal(t, drainFor(p, Timing{Drain: WholeGrace}), 5*s, "a deletion's own grace period wins")
	assert.Equal(t, drainFor(pod(nil), Timing{Drain: WholeGrace}), DefaultGracePeriod)
}

func TestScale(t *testing.T) {
	ten := scale(10 * time.Millisecond)
	assert.Equal(t, ten.real(270*s), 2700*time.Millisecond)
	assert.Equal(t, ten.spec(2700*time.Millisecond), 270*s)
	assert.Equal(t, scale(time.Second).real(time.Minute), time.Minute)
}

func TestPlaceAsTheScheduler(t *testing.T) {
	arm := func(name string) node {
		return node{name: name, labels: map[string]string{corev1.LabelArchStable: "arm64"}}
	}
	amd := node{name: "amd", labels: map[string]string{corev1.LabelArchStable: "amd64"}}
	pod := func(cpu, mem string, selector map[string]string) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{NodeSelector: selector, Containers: []corev1.Container{{
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
			}},
		}}}}
	}
	onArm := map[string]string{corev1.LabelArchStable: "arm64"}
	free := capacity(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("31"), corev1.ResourceMemory: resource.MustParse("100Gi")})
	gi := int64(1 << 30)
	tests := []struct {
		name  string
		pod   *corev1.Pod
		nodes []node
		used  []request
		want  placement
	}{
		{"most CPU left wins", pod("1", "2560Mi", onArm), []node{arm("a"), arm("b")}, []request{{30000, 75 * gi}, {29000, 75 * gi}}, placement{node: 1}},
		{"tie takes the first", pod("1", "1Gi", nil), []node{arm("a"), arm("b")}, []request{{}, {}}, placement{node: 0}},
		{"both full", pod("1", "2560Mi", onArm), []node{arm("a"), arm("b")}, []request{{31000, 0}, {30500, 0}},
			placement{node: -1, message: "0/2 nodes are available: 2 Insufficient cpu."}},
		{"selector and memory", pod("1", "2560Mi", onArm), []node{amd, arm("a"), arm("b")}, []request{{}, {0, 99 * gi}, {31000, 99 * gi}},
			placement{node: -1, message: "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient memory."}},
		{"init container counts when larger", &corev1.Pod{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}}},
		}}, []node{arm("a")}, []request{{30000, 0}}, placement{node: -1, message: "0/1 nodes are available: 1 Insufficient cpu."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, place(tc.pod, tc.nodes, free, tc.used), tc.want)
		})
	}
}

func TestPoolNameFitsAHostnameLabel(t *testing.T) {
	assert.Equal(t, poolName("short", []string{"arm64"}, 2), "short")
	long := "testrealisticpromotewithaneverreadypodrollsback-x7k2p"
	name := NodePrefix + poolName(long, []string{"amd64", "arm64"}, 2) + "-arm64-2"
	assert.Assert(t, len(name) <= 63, "%s is %d long", name, len(name))
	assert.Assert(t, strings.HasPrefix(name, NodePrefix+"testrealistic"), name)
	assert.Assert(t, poolName(long, []string{"arm64"}, 2) != poolName(long+"x", []string{"arm64"}, 2), "a hash keeps shortened names apart")
}
