package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	"gotest.tools/v3/poll"
	"helm.sh/helm/v3/pkg/action"
	hrelease "helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/internal/lockedbuffer"
	cikube "github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster/fakekubelet"
)

const (
	chartDir = "../deploy/chart"
	prodRepo = "asia-south1-docker.pkg.dev/desivocalprod01/ringg-registry-prod/dv-pipecat"
)

// digest returns a distinct valid digest per seed.
func digest(seed string) string {
	return "sha256:" + strings.Repeat(fmt.Sprintf("%x", seed[0]), 32)
}

// relEnv is one test's namespace and the clients the runner gets.
type relEnv struct {
	t       *testing.T
	ns      string
	kube    kubernetes.Interface
	clients release.Clients
	logs    *lockedbuffer.Buffer
}

func newRelEnv(t *testing.T) *relEnv {
	t.Helper()
	return newRelEnvIn(t, cluster.Namespace(t))
}

// newRelEnvIn is newRelEnv in a namespace the test made (e.g. one with a
// node pool of its own).
func newRelEnvIn(t *testing.T, ns string) *relEnv {
	t.Helper()
	k := cluster.Client()
	logs := &lockedbuffer.Buffer{}
	e := &relEnv{t: t, ns: ns, kube: k, logs: logs, clients: release.Clients{
		Config: restConfig(t),
		Kube:   k,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RINGG_RELEASE_LOG") != "" {
			t.Logf("runner log:\n%s", logs.String())
		}
	})
	return e
}

func (e *relEnv) overrides() targets.Overrides { return targets.Overrides{Namespace: e.ns} }

// canaryPlan is the plan of a push to dv-main in the test's namespace.
func (e *relEnv) canaryPlan(img string, newSecrets *pipeline.SecretNames) pipeline.DeployPlan {
	e.t.Helper()
	p, err := pipeline.NewDeploy(pipeline.DeployInput{Branch: "dv-main", Overrides: e.overrides(), ChartDir: chartDir,
		Image: img, NewSecrets: newSecrets, Holder: "test " + e.t.Name(), Timeout: 60 * time.Second})
	assert.NilError(e.t, err)
	return p
}

// failing makes a plan's image select a fake-node failure by tag: the chart
// renders repository@digest, so the tag rides on the repository, in a copy
// of the chart whose schema lets it (the real one refuses a tag there).
func (e *relEnv) failing(p pipeline.DeployPlan, tag string) pipeline.DeployPlan {
	p.Image.Repository += ":" + tag
	p.ChartDir = taggableChart(e.t)
	return p
}

// stablePlan deploys the stable release directly (a plan is data): tests of
// rollback and status need stable revisions without promoting each time.
func (e *relEnv) stablePlan(d string) pipeline.DeployPlan {
	st, err := targets.Get(targets.Stable)
	assert.NilError(e.t, err)
	st = st.With(e.overrides())
	return pipeline.DeployPlan{Target: st, ChartDir: chartDir, ValuesFiles: st.ValuesFiles, Image: pipeline.Image{Repository: st.Image, Digest: d},
		Secrets: pipeline.SecretsCurrent, Timeout: 60 * time.Second, Holder: "test " + e.t.Name(), MaxHistory: pipeline.MaxHistory}
}

func (e *relEnv) bundle(key string) (*secrets.Bundle, *pipeline.SecretNames) {
	e.t.Helper()
	b, err := secrets.Build(appEnvJSON(key), credsJSON, secrets.DefaultNames(), e.ns)
	assert.NilError(e.t, err)
	n := b.Names()
	return &b, &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
}

func (e *relEnv) deploy(p pipeline.DeployPlan, b *secrets.Bundle, o release.Options) (*release.Result, error) {
	d := release.Deploy{Clients: e.clients, Plan: p, Secrets: b, Options: o}
	return d.Run(context.Background())
}

func (e *relEnv) helm() *action.Configuration {
	e.t.Helper()
	cfg := new(action.Configuration)
	assert.NilError(e.t, cfg.Init(cikube.NewGetter(e.clients.Config, e.ns), e.ns, "secret", func(string, ...any) {}))
	return cfg
}

func (e *relEnv) history(name string) []*hrelease.Release {
	e.t.Helper()
	h, err := e.helm().Releases.History(name)
	if err != nil {
		return nil
	}
	// History is unordered.
	out := make([]*hrelease.Release, len(h))
	for _, r := range h {
		out[r.Version-1] = r
	}
	return out
}

func statuses(h []*hrelease.Release) []string {
	var out []string
	for _, r := range h {
		if r == nil {
			out = append(out, "pruned")
			continue
		}
		s := fmt.Sprintf("%d:%s", r.Version, r.Info.Status)
		if o := r.Labels[release.LabelOutcome]; o != "" {
			s += "/" + o
		}
		out = append(out, s)
	}
	return out
}

func (e *relEnv) deployment(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), name, metav1.GetOptions{})
	assert.NilError(e.t, err)
	return d
}

func image(d *appsv1.Deployment) string { return d.Spec.Template.Spec.Containers[0].Image }

// updateDeployment changes a Deployment's spec, again on a conflict: the
// controllers write its status meanwhile.
func (e *relEnv) updateDeployment(name string, change func(*appsv1.Deployment)) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := e.deployment(name)
		change(d)
		_, err := e.kube.AppsV1().Deployments(e.ns).Update(context.Background(), d, metav1.UpdateOptions{})
		return err
	})
	assert.NilError(e.t, err)
}

// snapshot maps every object of the kinds a release touches to its
// resourceVersion.
func (e *relEnv) snapshot() map[string]string {
	e.t.Helper()
	e.settle()
	ctx := context.Background()
	out := map[string]string{}
	add := func(kind string, items []metav1.Object) {
		for _, o := range items {
			out[kind+"/"+o.GetName()] = o.GetResourceVersion()
		}
	}
	sl, err := e.kube.CoreV1().Secrets(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("secret", objs(sl.Items))
	dl, err := e.kube.AppsV1().Deployments(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("deployment", objs(dl.Items))
	rl, err := e.kube.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("replicaset", objs(rl.Items))
	svc, err := e.kube.CoreV1().Services(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("service", objs(svc.Items))
	ll, err := e.kube.CoordinationV1().Leases(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("lease", objs(ll.Items))
	cm, err := e.kube.CoreV1().ConfigMaps(e.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(e.t, err)
	add("configmap", objs(cm.Items))
	return out
}

func objs[T any, P interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = P(&items[i])
	}
	return out
}

func TestReleaseDeployInstallsThenUpgrades(t *testing.T) {
	e := newRelEnv(t)
	b, names := e.bundle("one")
	var mu sync.Mutex
	var progress []release.Progress
	opts := release.Options{ProgressInterval: 50 * time.Millisecond, Progress: func(p release.Progress) {
		mu.Lock()
		progress = append(progress, p)
		mu.Unlock()
	}}

	res, err := e.deploy(e.canaryPlan(digest("a"), names), b, opts)
	assert.NilError(t, err)
	assert.Equal(t, res.Revision, 1)
	assert.Equal(t, res.Status, "deployed")
	assert.Equal(t, res.Digest, digest("a"))
	assert.Equal(t, res.Pods.Ready, int32(2))
	assert.Equal(t, res.Pods.Desired, int32(2))
	assert.DeepEqual(t, res.SecretNames, *names)
	dep := e.deployment("dv-pipecat-canary")
	assert.Equal(t, image(dep), prodRepo+"@"+digest("a"))
	assert.Equal(t, dep.Status.ReadyReplicas, int32(2))
	mu.Lock()
	assert.Assert(t, len(progress) >= 1, "progress is reported")
	assert.Equal(t, progress[len(progress)-1].Target, "canary")
	mu.Unlock()

	// The release record holds exactly the computed values over the files:
	// names of Secrets, never their content.
	h := e.history("dv-pipecat-canary")
	assert.DeepEqual(t, statuses(h), []string{"1:deployed/proven"})
	cfgJSON, err := json.Marshal(h[0].Config)
	assert.NilError(t, err)
	noLeak(t, string(cfgJSON))
	assert.Equal(t, h[0].Config["replicaCount"], float64(2))
	assert.Equal(t, h[0].Config["releaseTrack"], "canary")

	// Upgrade with a new digest, keeping the Secrets the release has.
	res, err = e.deploy(e.canaryPlan(digest("b"), nil), nil, release.Options{})
	assert.NilError(t, err)
	assert.Equal(t, res.Revision, 2)
	assert.Equal(t, res.Previous, 1)
	assert.DeepEqual(t, res.SecretNames, *names)
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("b"))

	// Helm makes a revision on every upgrade, even an identical one; the
	// Deployment itself does not change, so nothing rolls.
	gen := e.deployment("dv-pipecat-canary").Generation
	res, err = e.deploy(e.canaryPlan(digest("b"), nil), nil, release.Options{})
	assert.NilError(t, err)
	assert.Equal(t, res.Revision, 3)
	assert.Equal(t, e.deployment("dv-pipecat-canary").Generation, gen)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/proven", "3:deployed/proven"})
	noLeak(t, e.logs.String())
}

func TestReleaseDeployNeverReadyRollsBack(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)

	p := e.failing(e.canaryPlan(digest("b"), nil), "never-ready")
	p.Timeout = 8 * time.Second // time for the fake node to write NotReady on a busy machine
	res, err := e.deploy(p, nil, release.Options{})
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	// The plan's timeout is the overall cap, and it is what ended the watch.
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutTimeout), "%v", err)
	assert.ErrorContains(t, err, ": timeout 8s;")
	// One line per group of pods, in the kubelet's words.
	assert.ErrorContains(t, err, "; 1 pod NotReady: readiness probe failed: HTTP probe failed with statuscode: 503 (pod dv-pipecat-canary-")
	assert.ErrorContains(t, err, "to revision 1 (recorded as revision 3)")
	g := rolloutError(t, err).Explanation.Groups[0]
	assert.Assert(t, containsLine(eventLines(g), "Warning Unhealthy", "kubelet): Readiness probe failed: HTTP probe failed with statuscode: 503"), "%q", eventLines(g))
	assert.Assert(t, containsLine(g.Logs, "GET /pc/v1/healthcheck 503"), "%q", g.Logs)

	assert.Equal(t, res.Revision, 3)
	assert.Equal(t, res.Status, "deployed")
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	assert.Assert(t, strings.HasPrefix(e.history("dv-pipecat-canary")[1].Info.Description, "rollout failed: "))
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("a"))
}

func TestReleaseDeployCrashLoopFailsFast(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)

	_, err = e.deploy(e.failing(e.canaryPlan(digest("c"), nil), "crashloop"), nil, release.Options{MaxRestarts: 2})
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutFailed), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	// A certain failure ends the watch itself, not the plan's 60s timeout.
	assert.Assert(t, !errors.Is(err, cikube.ErrRolloutTimeout), "%v", err)
	assert.ErrorContains(t, err, "restarted 2 times (limit 2)")
	assert.ErrorContains(t, err, "; 1 pod CrashLoopBackOff after 2 restarts: exited with code 1 (Error); last line: "+fakekubelet.CrashLine+" (pod dv-pipecat-canary-")
	g := rolloutError(t, err).Explanation.Groups[0]
	assert.Assert(t, containsLine(eventLines(g), "Warning BackOff", "Back-off restarting failed container dv-pipecat in pod dv-pipecat-canary-"), "%q", eventLines(g))
	assert.Equal(t, g.Previous[len(g.Previous)-1], fakekubelet.CrashLine, "the previous container's last line")
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
}

func TestReleaseDeployPullErrorOnFirstInstallUninstalls(t *testing.T) {
	e := newRelEnv(t)
	// The fake node turns ErrImagePull into ImagePullBackOff 1 s after the
	// first write; a 3 s grace reads the later state however the two clocks
	// fall on a busy machine.
	res, err := e.deploy(e.failing(e.canaryPlan(digest("d"), nil), "pull-error"), nil, release.Options{PullErrorGrace: 3 * time.Second})
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	// Both pods of the first install, whichever of ErrImagePull and
	// ImagePullBackOff each shows, are one group: the image cannot be pulled.
	assert.ErrorContains(t, err, `; 2 pods ImagePullBackOff: Failed to pull image "`+prodRepo+`:pull-error@`+digest("d")+`": rpc error: code = NotFound`)
	g := rolloutError(t, err).Explanation.Groups[0]
	assert.Equal(t, g.LogNote, "the container never started: no logs")
	assert.Equal(t, res.Status, "uninstalled")
	assert.Equal(t, len(e.history("dv-pipecat-canary")), 0)
	_, err = e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), "dv-pipecat-canary", metav1.GetOptions{})
	assert.Assert(t, err != nil, "the failed first install's Deployment is gone")
}

func TestReleaseDeployRefusedWhileLocked(t *testing.T) {
	e := newRelEnv(t)
	held, err := lock.Acquire(context.Background(), e.kube, lock.Options{Namespace: e.ns, Release: "dv-pipecat-canary", Holder: "github-actions run 41 (dv-main@abc1234)"})
	assert.NilError(t, err)
	defer held.Release(context.Background())
	before := e.snapshot()

	_, err = e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "%v", err)
	assert.ErrorContains(t, err, `held by "github-actions run 41 (dv-main@abc1234)"`)
	assert.DeepEqual(t, e.snapshot(), before)
}

func TestReleaseTwoDeploysAtOnce(t *testing.T) {
	e := newRelEnv(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			p := e.canaryPlan(digest(string(rune('a'+i))), nil)
			p.Holder = fmt.Sprintf("run %d", i)
			_, errs[i] = e.deploy(p, nil, release.Options{})
		})
	}
	wg.Wait()
	// Either they ran one after the other, or the second saw the lock.
	held := 0
	for _, err := range errs {
		if err != nil {
			assert.Assert(t, errors.Is(err, lock.ErrHeld), "%v", err)
			assert.ErrorContains(t, err, `held by "run `)
			held++
		}
	}
	assert.Assert(t, held <= 1)
	h := e.history("dv-pipecat-canary")
	assert.Equal(t, len(h), 2-held, "one revision per deploy that ran: %v", statuses(h))
	for _, r := range h {
		assert.Assert(t, !r.Info.Status.IsPending(), "no record left pending: %v", statuses(e.history("dv-pipecat-canary")))
	}
}

// markPending leaves the release's last record as a killed run would.
func (e *relEnv) markPending(name string, st hrelease.Status) {
	e.t.Helper()
	cfg := e.helm()
	rel, err := cfg.Releases.Last(name)
	assert.NilError(e.t, err)
	rel.Info.Status = st
	assert.NilError(e.t, cfg.Releases.Update(rel))
}

func TestReleaseDeployRecoversInterruptedRun(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	_, err = e.deploy(e.canaryPlan(digest("b"), nil), nil, release.Options{})
	assert.NilError(t, err)
	e.markPending("dv-pipecat-canary", hrelease.StatusPendingUpgrade) // killed while watching revision 2

	res, err := e.deploy(e.canaryPlan(digest("c"), nil), nil, release.Options{})
	assert.NilError(t, err)
	assert.Equal(t, res.Recovered, "revision 2 of release dv-pipecat-canary was left pending-upgrade by an interrupted run: marked interrupted")
	assert.Equal(t, res.Revision, 3)
	// The last good revision: the recovered one never served.
	assert.Equal(t, res.Previous, 1)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:deployed/proven"})
	assert.Equal(t, e.history("dv-pipecat-canary")[1].Info.Description, "interrupted while pending-upgrade; marked by test TestReleaseDeployRecoversInterruptedRun")
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("c"))
}

func TestReleaseDeployCancelledMidRolloutRollsBack(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	// Long enough to reach the watch (lock, upgrade) on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	d := release.Deploy{Clients: e.clients, Plan: e.failing(e.canaryPlan(digest("b"), nil), "never-ready")}
	_, err = d.Run(ctx)
	assert.Assert(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/interrupted"})
	// The lock was released: the next deploy runs.
	_, err = e.deploy(e.canaryPlan(digest("c"), nil), nil, release.Options{})
	assert.NilError(t, err)
}

func TestReleaseDeploySurvivesAPIServerRestart(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)

	// Hold the rollout back with never-ready pods, restart the API server while
	// the deploy watches, then let the pods through by restoring the image:
	// the watch must pick up after the restart and see the rollback complete.
	// The timeout outlasts the restart (14 s measured on a busy 2-core
	// machine): the rollout must time out with the API server back.
	p := e.failing(e.canaryPlan(digest("b"), nil), "never-ready")
	p.Timeout = 30 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := e.deploy(p, nil, release.Options{})
		done <- err
	}()
	waitFor(t, 20*time.Second, func() bool {
		h := e.history("dv-pipecat-canary")
		// Helm writes pending-upgrade before it applies anything; restart
		// once the runner says the upgrade is done and it watches.
		return len(h) == 2 && h[1] != nil && h[1].Info.Status == hrelease.StatusPendingUpgrade &&
			h[1].Info.Description == "waiting for the rollout"
	})
	restartCluster(t)
	err = <-done
	assert.Assert(t, errors.Is(err, cikube.ErrRolloutTimeout), "%v", err)
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/failed", "3:deployed/proven"})
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("a"))
}

func TestReleaseDeployCompletesAcrossAPIServerRestart(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)

	// 60 pods in waves of 16 take several seconds on the fake node: restart
	// the API server once the new ReplicaSet has started, and expect the
	// watch to follow the rollout to its end.
	done := make(chan error, 1)
	var res *release.Result
	go func() {
		var err error
		res, err = e.deploy(e.stablePlan(digest("b")), nil, release.Options{})
		done <- err
	}()
	// Helm's record of the upgrade must be written first: a restart during
	// Helm's own writes fails the run (and the next run recovers it: the
	// crash matrix), which is not what this test is about.
	waitFor(t, 20*time.Second, func() bool {
		h := e.history("dv-pipecat")
		if len(h) != 2 || h[1] == nil || h[1].Info.Description != "waiting for the rollout" {
			return false
		}
		d, err := e.kube.AppsV1().Deployments(e.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
		return err == nil && image(d) == prodRepo+"@"+digest("b") && d.Status.UpdatedReplicas > 0
	})
	restartCluster(t)
	assert.NilError(t, <-done)
	assert.Equal(t, res.Revision, 2)
	assert.Equal(t, res.Pods.Ready, int32(60))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:deployed/proven"})
}

// waitFor polls ok every 100 ms until it holds, failing the test after d
// (which counts ok's own time: keep it a quick read).
func waitFor(t *testing.T, d time.Duration, ok func() bool) {
	t.Helper()
	poll.WaitOn(t, func(poll.LogT) poll.Result {
		if ok() {
			return poll.Success()
		}
		return poll.Continue("condition not met")
	}, poll.WithTimeout(d), poll.WithDelay(100*time.Millisecond))
}

func (e *relEnv) promote(in pipeline.PromoteInput) (*release.PromoteResult, error) {
	e.t.Helper()
	in.Overrides, in.ChartDir = e.overrides(), chartDir
	if in.Soak == 0 {
		in.Soak = 600 * time.Millisecond
	}
	if in.Timeout == 0 {
		in.Timeout = 90 * time.Second
	}
	plan, err := pipeline.NewPromote(in)
	assert.NilError(e.t, err)
	p := release.Promote{Clients: e.clients, Plan: plan, SoakInterval: 100 * time.Millisecond}
	return p.Run(context.Background())
}

func TestReleasePromote(t *testing.T) {
	e := newRelEnv(t)
	b, names := e.bundle("canary")
	_, err := e.deploy(e.canaryPlan(digest("a"), names), b, release.Options{})
	assert.NilError(t, err)

	// A dry run shows what would change and changes nothing.
	before := e.snapshot()
	res, err := e.promote(pipeline.PromoteInput{DryRun: true})
	assert.NilError(t, err)
	assert.Assert(t, res.Preview != nil && res.Result == nil)
	assert.Equal(t, res.Preview.LiveRevision, 0)
	assert.Assert(t, strings.Contains(res.Preview.String(), "create    Deployment/dv-pipecat"), res.Preview.String())
	assert.DeepEqual(t, e.snapshot(), before)

	res, err = e.promote(pipeline.PromoteInput{ExpectedDigest: digest("a")})
	assert.NilError(t, err)
	assert.Equal(t, res.Canary.Digest, digest("a"))
	assert.Equal(t, res.Result.Revision, 1)
	assert.DeepEqual(t, res.Result.SecretNames, *names)

	// Stable got its own files plus exactly the canary's digest and Secrets:
	// nothing canary-only.
	stable := e.history("dv-pipecat")[0]
	assert.Equal(t, stable.Config["releaseTrack"], nil)
	assert.Equal(t, stable.Config["replicaCount"], float64(60))
	assert.DeepEqual(t, stable.Config["secrets"], map[string]any{"appEnv": names.AppEnv, "gcpCreds": names.GCPCreds})
	assert.DeepEqual(t, stable.Config["image"], map[string]any{"repository": prodRepo, "digest": digest("a")})
	dep := e.deployment("dv-pipecat")
	assert.Equal(t, image(dep), prodRepo+"@"+digest("a"))
	assert.Equal(t, dep.Spec.Template.Labels["version"], "stable")
	assert.Equal(t, *dep.Spec.Replicas, int32(60))
	for _, env := range dep.Spec.Template.Spec.Containers[0].Env {
		if env.Name == "LOGGER_NAME" {
			assert.Equal(t, env.Value, "pipecat")
		}
	}

	// Status: JSON and text, canary and stable on the same digest.
	sp, err := pipeline.NewStatus([]targets.Name{targets.Canary, targets.Stable}, e.overrides())
	assert.NilError(t, err)
	st, err := (&release.Status{Clients: e.clients, Plan: sp}).Run(context.Background())
	assert.NilError(t, err)
	assert.DeepEqual(t, st.Promotions, []release.Promotion{{From: targets.Canary, To: targets.Stable, SameDigest: true}})
	js, err := json.Marshal(st)
	assert.NilError(t, err)
	var back release.StatusReport
	assert.NilError(t, json.Unmarshal(js, &back))
	assert.Equal(t, back.Targets[1].Ready, 60)
	assert.Equal(t, back.Targets[1].Revision, 1)
	assert.Equal(t, back.Targets[0].Digest, digest("a"))
	assert.Assert(t, strings.Contains(st.String(), "stable   release dv-pipecat in "+e.ns+": revision 1 deployed, proven, 60/60 pods ready"), st.String())
	assert.Assert(t, strings.Contains(st.String(), "canary and stable run the same digest"), st.String())
	noLeak(t, string(js)+st.String())
}

func TestReleasePromoteRefuses(t *testing.T) {
	e := newRelEnv(t)
	// Canary absent.
	before := e.snapshot()
	_, err := e.promote(pipeline.PromoteInput{})
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "canary release dv-pipecat-canary not found")
	assert.DeepEqual(t, e.snapshot(), before)

	_, err = e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)

	// Expected digest mismatch.
	_, err = e.promote(pipeline.PromoteInput{ExpectedDigest: digest("z")})
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "the canary runs "+digest("a")+", not the expected "+digest("z"))

	// Mixed digests: a second image that never becomes ready, with no pod
	// allowed to go, leaves old and new pods side by side.
	ctx := context.Background()
	zero := intstrZero()
	e.updateDeployment("dv-pipecat-canary", func(dep *appsv1.Deployment) {
		dep.Spec.Strategy.RollingUpdate.MaxUnavailable = &zero
		dep.Spec.Template.Spec.Containers[0].Image = prodRepo + ":never-ready@" + digest("m")
	})
	waitFor(t, 20*time.Second, func() bool {
		pods, _ := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		return len(pods.Items) == 3
	})
	_, err = e.promote(pipeline.PromoteInput{})
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "canary pods do not all run one known digest")

	// Unavailable: recreate onto pods that never become ready.
	e.updateDeployment("dv-pipecat-canary", func(dep *appsv1.Deployment) {
		dep.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	})
	waitFor(t, 20*time.Second, func() bool {
		d := e.deployment("dv-pipecat-canary")
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentAvailable {
				return c.Status == corev1.ConditionFalse
			}
		}
		return false
	})
	before = e.snapshot()
	_, err = e.promote(pipeline.PromoteInput{})
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "canary deployment dv-pipecat-canary is not Available")
	assert.Equal(t, len(e.history("dv-pipecat")), 0, "stable was never touched")
	assert.DeepEqual(t, e.snapshot(), before)
}

func TestReleasePromoteRefusesRestartDuringSoak(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	ctx := context.Background()
	go func() {
		// Restart a container once the soak has begun: before, the gate
		// would take the bumped count as its starting point.
		for end := time.Now().Add(time.Minute); !strings.Contains(e.logs.String(), "canary passes the gate, soaking"); {
			if time.Now().After(end) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		pods, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) == 0 {
			return
		}
		p := pods.Items[0]
		p.Status.ContainerStatuses[0].RestartCount++
		_, _ = e.kube.CoreV1().Pods(e.ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
	}()
	_, err = e.promote(pipeline.PromoteInput{Soak: 2 * time.Second})
	assert.Assert(t, errors.Is(err, release.ErrRefused), "%v", err)
	assert.ErrorContains(t, err, "restarted (0 to 1 restarts) during the 2s soak")
}

func TestReleaseRollback(t *testing.T) {
	e := newRelEnv(t)
	b, names := e.bundle("first")
	_, err := e.deploy(e.canaryPlan(digest("a"), names), b, release.Options{}) // canary holds the Secrets
	assert.NilError(t, err)
	for _, d := range []string{digest("a"), digest("b")} {
		_, err := e.deploy(e.stablePlan(d), nil, release.Options{})
		assert.NilError(t, err)
	}
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("b"))

	rollback := func(in pipeline.RollbackInput) (*release.Result, error) {
		in.Overrides, in.Timeout = e.overrides(), 60*time.Second
		p, err := pipeline.NewRollback(in)
		assert.NilError(t, err)
		return (&release.Rollback{Clients: e.clients, Plan: p}).Run(context.Background())
	}

	// Stable to the previous revision.
	res, err := rollback(pipeline.RollbackInput{Target: targets.Stable})
	assert.NilError(t, err)
	assert.Equal(t, res.Revision, 3)
	assert.Equal(t, res.Digest, digest("a"))
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("a"))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/proven", "3:deployed/proven"})

	// Stuck pending: a rollback to a given revision still works.
	e.markPending("dv-pipecat", hrelease.StatusPendingUpgrade)
	res, err = rollback(pipeline.RollbackInput{Target: targets.Stable, Revision: 2})
	assert.NilError(t, err)
	assert.Assert(t, res.Recovered != "")
	assert.Equal(t, res.Revision, 4)
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("b"))
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/proven", "3:superseded/interrupted", "4:deployed/proven"})

	// Canary: back to the image stable runs (b), with stable's Secrets.
	_, err = e.deploy(e.canaryPlan(digest("c"), nil), nil, release.Options{})
	assert.NilError(t, err)
	res, err = rollback(pipeline.RollbackInput{Target: targets.Canary, ChartDir: chartDir})
	assert.NilError(t, err)
	assert.Equal(t, res.Digest, digest("b"))
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("b"))
	assert.Equal(t, e.deployment("dv-pipecat-canary").Spec.Template.Labels["version"], "canary")
}

func TestReleasePrunesUnreferencedSecretVersions(t *testing.T) {
	e := newRelEnv(t)
	b1, n1 := e.bundle("one")
	_, err := e.deploy(e.canaryPlan(digest("a"), n1), b1, release.Options{})
	assert.NilError(t, err)
	b2, n2 := e.bundle("two")
	_, err = e.deploy(e.canaryPlan(digest("a"), n2), b2, release.Options{})
	assert.NilError(t, err)
	// Both versions are referenced by kept revisions.
	for _, n := range []string{n1.AppEnv, n2.AppEnv} {
		_, err := e.kube.CoreV1().Secrets(e.ns).Get(context.Background(), n, metav1.GetOptions{})
		assert.NilError(t, err, n)
	}
	// Drop revision 1 from the history, as MaxHistory would: its version goes.
	assert.NilError(t, e.kube.CoreV1().Secrets(e.ns).Delete(context.Background(), "sh.helm.release.v1.dv-pipecat-canary.v1", metav1.DeleteOptions{}))
	// A version younger than secrets.DefaultPruneMinAge stays: another track's
	// deploy may have applied it and not yet upgraded its release.
	res, err := e.deploy(e.canaryPlan(digest("b"), nil), nil, release.Options{})
	assert.NilError(t, err)
	assert.Check(t, is.Len(res.Pruned, 0))
	_, err = e.kube.CoreV1().Secrets(e.ns).Get(context.Background(), n1.AppEnv, metav1.GetOptions{})
	assert.NilError(t, err)
	// An hour later it goes.
	e.clients.Now = func() time.Time { return time.Now().Add(secrets.DefaultPruneMinAge + time.Minute) }
	res, err = e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	assert.DeepEqual(t, res.Pruned, []string{n1.AppEnv, n1.GCPCreds}[:prunedCount(n1, n2)])
}

// prunedCount: the credentials JSON is the same in both bundles, so its
// versioned name is shared and stays.
func prunedCount(a, b *pipeline.SecretNames) int {
	if a.GCPCreds == b.GCPCreds {
		return 1
	}
	return 2
}

func TestReleasePlanShowsDiff(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	b, names := e.bundle("next")
	before := e.snapshot()
	res, err := (&release.Plan{Clients: e.clients, Plan: e.canaryPlan(digest("b"), names), Secrets: b}).Run(context.Background())
	assert.NilError(t, err)
	assert.DeepEqual(t, e.snapshot(), before)
	assert.Equal(t, res.LiveRevision, 1)
	assert.Equal(t, len(res.Secrets), 2)
	assert.Equal(t, res.Secrets[0].State, secrets.StateNew)
	text := res.String()
	noLeak(t, text)
	assert.Assert(t, strings.Contains(text, "update    Deployment/dv-pipecat-canary"), text)
	assert.Assert(t, strings.Contains(text, "-          image: \""+prodRepo+"@"+digest("a")+"\""), text)
	assert.Assert(t, strings.Contains(text, "+          image: \""+prodRepo+"@"+digest("b")+"\""), text)
	assert.Assert(t, strings.Contains(text, "+                name: \""+names.AppEnv+"\""), text)
}

func TestReleaseBadInputLeavesClusterUnchanged(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	before := e.snapshot()

	broken := t.TempDir()
	assert.NilError(t, os.CopyFS(broken, os.DirFS(chartDir)))
	assert.NilError(t, os.WriteFile(filepath.Join(broken, "values-canary.yaml"), []byte("replicaCount: [not, a, number\n"), 0o644))
	badType := t.TempDir()
	assert.NilError(t, os.CopyFS(badType, os.DirFS(chartDir)))
	assert.NilError(t, os.WriteFile(filepath.Join(badType, "values-canary.yaml"), []byte("replicaCount: many\nreleaseTrack: canary\n"), 0o644))

	other, err := secrets.Build(appEnvJSON("x"), credsJSON, secrets.DefaultNames(), "another-namespace")
	assert.NilError(t, err)
	otherNames := other.Names()
	b, names := e.bundle("y")

	tests := []struct {
		name string
		plan func() pipeline.DeployPlan
		b    *secrets.Bundle
		err  string
	}{
		{"missing chart", func() pipeline.DeployPlan { p := e.canaryPlan(digest("b"), nil); p.ChartDir = "/nonexistent"; return p }, nil, "load chart /nonexistent"},
		{"unparsable values file", func() pipeline.DeployPlan { p := e.canaryPlan(digest("b"), nil); p.ChartDir = broken; return p }, nil, "values-canary.yaml"},
		{"values the schema refuses", func() pipeline.DeployPlan { p := e.canaryPlan(digest("b"), nil); p.ChartDir = badType; return p }, nil, "replicaCount"},
		{"bundle for another namespace", func() pipeline.DeployPlan {
			return e.canaryPlan(digest("b"), &pipeline.SecretNames{AppEnv: otherNames.AppEnv, GCPCreds: otherNames.GCPCreds})
		}, &other, "the secrets bundle is for namespace another-namespace"},
		{"bundle without a plan for it", func() pipeline.DeployPlan { return e.canaryPlan(digest("b"), nil) }, b, "the plan keeps the current secrets"},
		{"plan for new secrets without bundle", func() pipeline.DeployPlan { return e.canaryPlan(digest("b"), names) }, nil, "no bundle was given"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.deploy(tc.plan(), tc.b, release.Options{})
			assert.ErrorContains(t, err, tc.err)
			assert.DeepEqual(t, e.snapshot(), before)
		})
	}
	// Invalid inputs never get as far as a plan.
	_, err = pipeline.NewDeploy(pipeline.DeployInput{Branch: "feature", Image: "x:latest"})
	assert.ErrorContains(t, err, "deploys nothing")
	assert.DeepEqual(t, e.snapshot(), before)
}
