package integration

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/ringg/ringg-ci/ci/pipeline"
	cikube "github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// These tests run production's numbers from the chart's own values (60
// stable replicas at 1 CPU each, readiness 60 s + 30 s, a 270 s grace period
// every pod drains to its end, maxUnavailable 25 %) on a node pool that
// behaves like GKE's and is full, with one second of production lasting
// slowScale. The runner gets the same scale, so its deadlines keep
// production's proportions. Nothing here bounds how long anything takes:
// what failed, and why, is read from the errors, the cluster and the
// release records.

// slowScale is how long one second of production lasts on the simulated
// node: a 23-minute promote takes about 14 s.
const slowScale = 10 * time.Millisecond

// Production's pod, in production's seconds: 20 s to pull and start, the
// app ready 10 s later (so Ready at the first probe, 60 s after the start),
// every stable pod draining its whole grace period (the older server has no
// drain endpoint: its preStop waits the full deadline), a crash 5 s after
// each start. The canary's pods drain at once: only stable's rollout is
// under test, and its setup stays short.
func prodTiming(p *corev1.Pod) fakenode.Timing {
	t := fakenode.Timing{Start: 20 * time.Second, Ready: 10 * time.Second, Drain: fakenode.WholeGrace, CrashAfter: 5 * time.Second}
	if p.Labels["version"] == "canary" {
		t.Drain = 0
	}
	return t
}

// slowEnv is a namespace with a realistic node pool of its own: two arm64
// nodes of 32 CPUs, 64 pods of 1 CPU in all.
type slowEnv struct {
	*relEnv
	mu       sync.Mutex
	behavior map[string]fakenode.Behavior // the decision for each pod, once
	decide   func(*corev1.Pod) fakenode.Behavior
	progress []string
}

// newSlowEnv makes the pool. decide chooses what becomes of each stable pod
// of the promoted digest (digest("b")); every other pod becomes Ready.
func newSlowEnv(t *testing.T, decide func(*corev1.Pod) fakenode.Behavior) *slowEnv {
	t.Helper()
	e := &slowEnv{behavior: map[string]fakenode.Behavior{}, decide: decide}
	ns := cluster.NamespaceWithNodes(t, fakenode.Options{
		Architectures: []string{"arm64"}, NodesPerArchitecture: 2,
		Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi")},
		Timing:      prodTiming, TimeScale: slowScale, Behavior: e.behave,
	})
	e.relEnv = newRelEnvIn(t, ns)
	return e
}

func (e *slowEnv) behave(p *corev1.Pod) fakenode.Behavior {
	if p.Labels["version"] != "stable" || !strings.HasSuffix(p.Spec.Containers[0].Image, "@"+digest("b")) {
		return fakenode.Ready
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.behavior[p.Name]
	if !ok {
		b = e.decide(p)
		e.behavior[p.Name] = b
	}
	return b
}

// podsWith lists the pods given each behavior so far.
func (e *slowEnv) podsWith(b fakenode.Behavior) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for name, got := range e.behavior {
		if got == b {
			out = append(out, name)
		}
	}
	return out
}

func (e *slowEnv) options() release.Options {
	return release.Options{TimeScale: slowScale, ProgressInterval: 200 * time.Millisecond, Progress: func(p release.Progress) {
		e.mu.Lock()
		e.progress = append(e.progress, p.String())
		e.mu.Unlock()
	}}
}

func (e *slowEnv) progressLines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.progress...)
}

func (e *slowEnv) promote() (*release.PromoteResult, error) {
	e.t.Helper()
	plan, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: e.overrides(), ChartDir: chartDir, Soak: 300 * time.Millisecond, Holder: "test " + e.t.Name()})
	assert.NilError(e.t, err)
	p := release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 100 * time.Millisecond, Options: e.options()}
	return p.Run(context.Background())
}

// fill runs stable on digest a and the canary on digest b, then takes the
// pool's last free CPUs with pods of another workload: the promotion of b
// starts on a full pool, as production's, where no surge pod fits.
func (e *slowEnv) fill() {
	e.t.Helper()
	t, ctx := e.t, context.Background()
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, e.options())
	assert.NilError(t, err)
	res, err := e.promote()
	assert.NilError(t, err)
	assert.Equal(t, res.Result.Revision, 1)
	_, err = e.deploy(e.canaryPlan(digest("b"), nil), nil, e.options())
	assert.NilError(t, err)

	pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	used := 0
	for _, p := range pods.Items {
		used += int(p.Spec.Containers[0].Resources.Requests.Cpu().Value())
	}
	assert.Equal(t, used, 62, "60 stable and 2 canary pods of 1 CPU")
	for i := range 64 - used {
		filler := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("other-workload-%d", i), Labels: map[string]string{"app": "other"}},
			Spec: corev1.PodSpec{
				NodeSelector: map[string]string{corev1.LabelArchStable: "arm64"},
				Containers: []corev1.Container{{Name: "other", Image: "other:v1", Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}}}},
			},
		}
		testcluster.Restrict(&filler.Spec)
		_, err := e.kube.CoreV1().Pods(e.ns).Create(ctx, filler, metav1.CreateOptions{})
		assert.NilError(t, err)
	}
	waitFor(t, time.Minute, func() bool {
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=other"})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == "" {
				return false
			}
		}
		return len(pods.Items) == 64-used
	})
}

// stablePods waits until stable runs exactly 60 Ready pods of digest d and
// returns them.
func (e *slowEnv) stablePods(d string) []corev1.Pod {
	e.t.Helper()
	var pods []corev1.Pod
	var last string
	waitFor(e.t, time.Minute, func() bool {
		list, err := e.kube.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=dv-pipecat"})
		if err != nil {
			return false
		}
		ready := 0
		for _, p := range list.Items {
			if strings.HasSuffix(p.Spec.Containers[0].Image, "@"+d) && p.DeletionTimestamp == nil && cikube.PodReady(&p) {
				ready++
			}
		}
		pods, last = list.Items, fmt.Sprintf("%d pods, %d Ready on %s", len(list.Items), ready, d)
		return ready == 60 && len(list.Items) == 60
	})
	e.t.Logf("stable: %s", last)
	return pods
}

// unschedulable watches the namespace's pods and returns what the scheduler
// said of the ones it left Pending, so far.
func (e *slowEnv) unschedulable() func() []string {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	w, err := e.kube.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	var mu sync.Mutex
	seen := map[string]bool{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
					mu.Lock()
					seen[c.Reason+": "+c.Message] = true
					mu.Unlock()
				}
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for m := range seen {
			out = append(out, m)
		}
		return out
	}
}

// serving watches the stable Service's EndpointSlices and returns the fewest
// and most Ready stable endpoints (the canary's pods, which the Service also
// selects, left out) seen so far.
func (e *slowEnv) serving() func() (least, most int) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	sel := metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=dv-pipecat"}
	list, err := e.kube.DiscoveryV1().EndpointSlices(e.ns).List(ctx, sel)
	assert.NilError(e.t, err)
	slices := map[string]*discoveryv1.EndpointSlice{}
	for i := range list.Items {
		slices[list.Items[i].Name] = &list.Items[i]
	}
	count := func() int {
		n := 0
		for _, s := range slices {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready && ep.TargetRef != nil && !strings.HasPrefix(ep.TargetRef.Name, "dv-pipecat-canary-") {
					n++
				}
			}
		}
		return n
	}
	var mu sync.Mutex
	least, most := count(), count()
	sel.ResourceVersion = list.ResourceVersion
	w, err := e.kube.DiscoveryV1().EndpointSlices(e.ns).Watch(ctx, sel)
	assert.NilError(e.t, err)
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			mu.Lock()
			if ev.Type == watch.Deleted {
				delete(slices, s.Name)
			} else {
				slices[s.Name] = s
			}
			n := count()
			least, most = min(least, n), max(most, n)
			mu.Unlock()
		}
	}()
	return func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return least, most
	}
}

// budgetFloor is the fewest stable pods the PodDisruptionBudget wants
// healthy, as the disruption controller computes it.
func (e *slowEnv) budgetFloor() int {
	e.t.Helper()
	var floor int32
	waitFor(e.t, time.Minute, func() bool {
		pdb, err := e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
		if err != nil || pdb.Status.ExpectedPods != 60 {
			return false
		}
		floor = pdb.Status.DesiredHealthy
		return true
	})
	return int(floor)
}

func rolloutError(t *testing.T, err error) *cikube.RolloutError {
	t.Helper()
	var re *cikube.RolloutError
	assert.Assert(t, errors.As(err, &re), "%v", err)
	return re
}

func containsLine(lines []string, parts ...string) bool {
	for _, l := range lines {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l, p)
		}
		if all {
			return true
		}
	}
	return false
}

// A 60-replica promote where every pod drains its whole grace period on a
// full node pool takes about 4 × 6 minutes of production. The old deadline
// math (13.5 minutes) would have rolled it back; progress-based deadlines
// let it finish.
func TestRealisticPromoteOnAFullPoolCompletes(t *testing.T) {
	e := newSlowEnv(t, func(*corev1.Pod) fakenode.Behavior { return fakenode.Ready })
	e.fill()
	pending := e.unschedulable()

	start := time.Now()
	res, err := e.promote()
	took := time.Since(start)
	assert.NilError(t, err)
	assert.Equal(t, res.Result.Status, "deployed")
	assert.Equal(t, res.Result.Revision, 2)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:deployed/proven"})
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("b"))
	e.stablePods(digest("b"))

	// The pool was full: replacements waited, with the scheduler's reason,
	// for old pods to finish draining, and the progress lines said so.
	assert.DeepEqual(t, pending(), []string{"Unschedulable: 0/2 nodes are available: 2 Insufficient cpu."})
	lines := e.progressLines()
	assert.Assert(t, containsLine(lines, "stable rollout, wave 1/4:", " draining", "pending (Unschedulable: 0/2 nodes are available: 2 Insufficient cpu.)"), strings.Join(lines, "\n"))
	assert.Assert(t, containsLine(lines, "stable rollout, wave 4/4: 60/60 ready"), strings.Join(lines, "\n"))
	// Four waves, each behind a whole drain: a lower bound, which only a
	// rollout that did not wait for the drains could break.
	drains := 4 * pipeline.Scaled(270*time.Second, slowScale)
	assert.Assert(t, took >= drains, "promote took %s, less than four drains (%s)", took, drains)
	floor := 4 * pipeline.Scaled((270+20+60)*time.Second, slowScale)
	t.Logf("promote took %s; the physical floor (4 waves × (drain 270 s + start 20 s + readiness 60 s)) is %s; old timeout math allowed %s",
		took.Round(time.Millisecond), floor, pipeline.Scaled(13*time.Minute+30*time.Second, slowScale))
}

// firstPodOnly gives behavior b to the first pod the fake node asks about,
// and Ready to every other.
func firstPodOnly(b fakenode.Behavior) func(*corev1.Pod) fakenode.Behavior {
	first := ""
	return func(p *corev1.Pod) fakenode.Behavior {
		if first == "" || first == p.Name {
			first = p.Name
			return b
		}
		return fakenode.Ready
	}
}

// The same promote with one new pod that never becomes Ready: every other
// pod rolls on, then nothing moves for one wave's budget, and the runner
// fails the rollout and rolls back, while stable keeps serving on at least
// as many pods as its PodDisruptionBudget wants.
func TestRealisticPromoteWithANeverReadyPodRollsBack(t *testing.T) {
	e := newSlowEnv(t, firstPodOnly(fakenode.NeverReady))
	e.fill()
	floor := e.budgetFloor()
	assert.Equal(t, floor, 45, "60 pods, maxUnavailable 25%")
	serving := e.serving()

	res, err := e.promote()
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutStalled), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.Assert(t, !errors.Is(err, cikube.ErrRolloutTimeout), "the stall, not the overall cap: %v", err)
	never := e.podsWith(fakenode.NeverReady)
	assert.Assert(t, is.Len(never, 1))
	assert.ErrorContains(t, err, "; 1 pod NotReady: readiness probe failed: HTTP probe failed with statuscode: 503 (pod "+never[0]+" container dv-pipecat)")
	re := rolloutError(t, err)
	assert.Equal(t, re.Progress.Ready, int32(59), "every other pod rolled out first")
	assert.Equal(t, re.Progress.Stall, pipeline.Scaled(390*time.Second, slowScale), "one wave: drain 270 s, start 30 s, readiness 60 + 30 s")
	assert.Assert(t, re.Progress.Idle > re.Progress.Stall)

	assert.Equal(t, res.Result.Revision, 3)
	assert.Equal(t, res.Result.Status, "deployed")
	h := e.history("dv-pipecat")
	assert.DeepEqual(t, statuses(h), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	assert.Assert(t, strings.HasPrefix(h[1].Info.Description, "rollout failed: "), h[1].Info.Description)
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("a"))
	e.stablePods(digest("a"))

	least, most := serving()
	t.Logf("Ready stable endpoints during the promote and its rollback: %d to %d (budget floor %d)", least, most, floor)
	assert.Assert(t, least >= floor, "stable served on %d endpoints, fewer than the PodDisruptionBudget's %d", least, floor)
	assert.Assert(t, least < 60, "the watch saw pods leave the endpoints (%d)", least)
	assert.Equal(t, most, 60)
}

// A crash-looping new pod is caught when its container has restarted as
// often as the limit allows (3), on the kubelet's back-off (10 s, 20 s...):
// not at its first crash, and long before the stall budget.
func TestRealisticCrashLoopIsCaughtByItsRestarts(t *testing.T) {
	e := newSlowEnv(t, firstPodOnly(fakenode.CrashLoop))
	e.fill()

	res, err := e.promote()
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutFailed), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	crashing := e.podsWith(fakenode.CrashLoop)
	assert.Assert(t, is.Len(crashing, 1))
	assert.ErrorContains(t, err, fmt.Sprintf("pod %s container dv-pipecat restarted 3 times (limit 3)", crashing[0]))
	re := rolloutError(t, err)
	var restarts []int32
	for _, p := range re.Problems {
		if p.Pod == crashing[0] {
			assert.Equal(t, p.Reason, "CrashLoopBackOff")
			restarts = append(restarts, p.Restarts)
		}
	}
	assert.DeepEqual(t, restarts, []int32{3})

	assert.Equal(t, res.Result.Revision, 3)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("a"))
	e.stablePods(digest("a"))
}

// The new image cannot be pulled on one node of the pool (its registry
// mirror lacks it): pods there stay in ErrImagePull/ImagePullBackOff while
// the other node's become Ready. After the pull-error grace (2 minutes of
// production) the rollout fails and rolls back; the old image, already on
// both nodes, runs everywhere again.
func TestRealisticPullErrorOnOneNodeRollsBack(t *testing.T) {
	e := newSlowEnv(t, func(p *corev1.Pod) fakenode.Behavior {
		if strings.HasSuffix(p.Spec.NodeName, "-arm64-2") {
			return fakenode.PullError
		}
		return fakenode.Ready
	})
	e.fill()

	res, err := e.promote()
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutFailed), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.ErrorContains(t, err, "has failed to pull its image for")
	re := rolloutError(t, err)
	failing := map[string]bool{}
	for _, p := range e.podsWith(fakenode.PullError) {
		failing[p] = true
	}
	assert.Assert(t, len(failing) > 0)
	for _, p := range re.Problems {
		if p.Reason == "ErrImagePull" || p.Reason == "ImagePullBackOff" {
			assert.Assert(t, failing[p.Pod], "pod %s failed to pull but was not on the node without the image", p.Pod)
		}
	}
	assert.Assert(t, re.Progress.Ready > 0, "pods on the other node became Ready")

	assert.Equal(t, res.Result.Revision, 3)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("a"))
	nodes := map[string]int{}
	for _, p := range e.stablePods(digest("a")) {
		nodes[p.Spec.NodeName]++
	}
	assert.Equal(t, len(nodes), 2, "the old image runs on both nodes: %v", nodes)
}
