package integration

// The release state between runs (issue 20): sequences an on-call engineer's
// bad day produces, each a test that failed on the runner before the release
// state existed. The crash-consistency matrix (crash_test.go) covers the
// class: every step of every verb.

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	is "gotest.tools/v3/assert/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/testcluster"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// brokenImages is the behaviour of a namespace's fake node pool: pods of a
// track whose image digest was broken fail to pull it, the others become
// Ready at once. A digest that served once can break later (a registry
// garbage-collected it), so a rollback to it fails.
type brokenImages struct {
	mu     sync.Mutex
	broken map[string]fakenode.Behavior // track/digest
}

// breakFor makes the track's pods of digest d fail to pull their image.
func (b *brokenImages) breakFor(track, d string) { b.set(track, d, fakenode.PullError) }

// stallFor makes the track's pods of digest d run but never become Ready.
func (b *brokenImages) stallFor(track, d string) { b.set(track, d, fakenode.NeverReady) }

func (b *brokenImages) set(track, d string, be fakenode.Behavior) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.broken[track+"/"+d] = be
}

func (b *brokenImages) behavior(p *corev1.Pod) fakenode.Behavior {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range p.Spec.Containers {
		_, d, _ := strings.Cut(c.Image, "@")
		if be, ok := b.broken[p.Labels["version"]+"/"+d]; ok {
			return be
		}
	}
	return fakenode.Ready
}

// newPoolEnv is a relEnv whose namespace has its own fake nodes, failing the
// images broken in the returned brokenImages.
func newPoolEnv(t *testing.T) (*relEnv, *brokenImages) {
	t.Helper()
	return newPoolEnvEnforcing(t, testcluster.Restricted)
}

// newPoolEnvEnforcing is newPoolEnv with a namespace enforcing level.
func newPoolEnvEnforcing(t *testing.T, level string) (*relEnv, *brokenImages) {
	t.Helper()
	b := &brokenImages{broken: map[string]fakenode.Behavior{}}
	ns := cluster.NamespaceWithNodesEnforcing(t, level, fakenode.Options{Behavior: b.behavior})
	return newRelEnvIn(t, ns), b
}

// fast fails a broken image's rollout within a second.
var fast = release.Options{PullErrorGrace: 300 * time.Millisecond, LockTTL: 3 * time.Second}

// killAt runs spec in a child, stops it at step, kills it with SIGKILL and
// returns the step.
func (e *relEnv) killAt(spec childSpec, step string) string {
	e.t.Helper()
	spec.Namespace, spec.Chart, spec.StopAtStep = e.ns, chartDir, step
	if spec.LockTTL == 0 {
		spec.LockTTL = 2 * time.Second
	}
	if spec.Holder == "" {
		spec.Holder = "killed " + spec.Verb
	}
	c := startChild(e.t, spec)
	at := c.waitStopped(90 * time.Second)
	c.kill()
	return at
}

// untilUnlocked runs f until it no longer finds the release locked: a
// killed holder's lock lapses after its TTL.
func untilUnlocked[T any](t *testing.T, f func() (T, error)) (T, error) {
	t.Helper()
	return untilUnlockedWithin(t, 30*time.Second, f)
}

// untilUnlockedWithin is untilUnlocked giving up after d; d bounds the wait
// for the lock, not the run that finally gets it (a deploy takes as long as
// it takes). It returns f's last result.
func untilUnlockedWithin[T any](t *testing.T, d time.Duration, f func() (T, error)) (T, error) {
	t.Helper()
	var (
		v   T
		err error
	)
	_ = wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, d, true, func(context.Context) (bool, error) {
		v, err = f()
		return !errors.Is(err, lock.ErrHeld), nil
	})
	return v, err
}

// assertServes checks that stable's Deployment, Service, Ingress and
// PodDisruptionBudget exist and that the Deployment runs d.
func (e *relEnv) assertServes(release string, d string) {
	e.t.Helper()
	assert.Equal(e.t, image(e.deployment(release)), prodRepo+"@"+d)
	if release != "dv-pipecat" {
		return
	}
	ctx := context.Background()
	_, err := e.kube.CoreV1().Services(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(e.t, err, "stable's Service (the canary's traffic too)")
	_, err = e.kube.NetworkingV1().Ingresses(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(e.t, err)
	_, err = e.kube.PolicyV1().PodDisruptionBudgets(e.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(e.t, err)
}

// 1. A cancelled promote followed by a failing run: production stays.
func TestStateCancelledPromoteThenAFailingRunKeepsProduction(t *testing.T) {
	e, pool := newPoolEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, fast)
	assert.NilError(t, err)
	_, err = e.deploy(e.canaryPlan(digest("b"), nil), nil, fast)
	assert.NilError(t, err)

	// The promote's job is cancelled while it watches stable's rollout.
	e.killAt(childSpec{Verb: "promote"}, release.StepWatching)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:pending-upgrade/pending"})

	// The next stable run fails (the incident that made someone cancel).
	pool.breakFor("stable", digest("c"))
	res, err := untilUnlocked(t, func() (*release.Result, error) { return e.deploy(e.stablePlan(digest("c")), nil, fast) })
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.ErrorContains(t, err, "rolled back to revision 1 (recorded as revision 4)")
	assert.Equal(t, res.Previous, 1)
	assert.Equal(t, res.Failed, 3)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:superseded/failed", "4:deployed/proven"})
	e.assertServes("dv-pipecat", digest("a"))
}

// 1'. The same path through the canary's rollback, which the runbook
// recommends for a stuck canary: the canary is never uninstalled.
func TestStateStuckCanaryRollbackThatFailsKeepsTheCanary(t *testing.T) {
	e, pool := newPoolEnv(t)
	_, err := e.deploy(e.stablePlan(digest("s")), nil, fast)
	assert.NilError(t, err)
	_, err = e.deploy(e.canaryPlan(digest("a"), nil), nil, fast)
	assert.NilError(t, err)
	e.killAt(childSpec{Verb: "deploy-canary", Digest: digest("b")}, release.StepWatching)

	pool.breakFor("canary", digest("s")) // stable's image no longer starts as the canary
	p, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Canary, Overrides: e.overrides(), ChartDir: chartDir, Timeout: time.Minute, Holder: "test"})
	assert.NilError(t, err)
	_, err = untilUnlocked(t, func() (*release.Result, error) {
		return (&release.Rollback{Clients: e.clients, Plan: p, Options: fast}).Run(context.Background())
	})
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:superseded/failed", "4:deployed/proven"})
	e.assertServes("dv-pipecat-canary", digest("a"))
	e.assertServes("dv-pipecat", digest("s"))
}

// 2. The default rollback never returns to a revision that never served,
// and a rollback whose rollout fails returns to where it started.
func TestStateDefaultRollbackSkipsARevisionThatNeverServed(t *testing.T) {
	e, pool := newPoolEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, fast)
	assert.NilError(t, err)
	pool.breakFor("stable", digest("b"))
	e.killAt(childSpec{Verb: "deploy-stable", Digest: digest("b")}, release.StepWatching) // never ready, killed
	_, err = untilUnlocked(t, func() (*release.Result, error) { return e.deploy(e.stablePlan(digest("c")), nil, fast) })
	assert.NilError(t, err)
	// Helm marks the killed revision superseded like any other.
	assert.DeepEqual(t, statuses(e.history("dv-pipecat")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:deployed/proven"})

	rollback := func() (*release.Result, error) {
		p, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Stable, Overrides: e.overrides(), ChartDir: chartDir, Timeout: time.Minute, Holder: "test"})
		assert.NilError(t, err)
		return (&release.Rollback{Clients: e.clients, Plan: p, Options: fast}).Run(context.Background())
	}
	res, err := rollback()
	assert.NilError(t, err)
	assert.Equal(t, res.Digest, digest("a"), "revision 1, not the never-ready revision 2")
	e.assertServes("dv-pipecat", digest("a"))

	// Back to c, then a rollback to a, whose image broke since: the
	// rollback fails and stable returns to c, where it started.
	_, err = e.deploy(e.stablePlan(digest("c")), nil, fast)
	assert.NilError(t, err)
	pool.breakFor("stable", digest("a"))
	res, err = rollback()
	assert.Assert(t, errors.Is(err, release.ErrRolledBack), "%v", err)
	assert.Equal(t, res.Digest, digest("c"))
	e.assertServes("dv-pipecat", digest("c"))
	h := statuses(e.history("dv-pipecat"))
	assert.DeepEqual(t, h[len(h)-2:], []string{"6:superseded/failed", "7:deployed/proven"})
}

// 3. A dv-stage deploy through a connection that reaches production's
// stable release is refused before anything changes.
func TestStateStagingDeployThroughProductionIsRefused(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)
	staging := func() error {
		p, err := pipeline.NewDeploy(pipeline.DeployInput{Branch: "dv-stage", Overrides: e.overrides(), ChartDir: chartDir, Image: digest("s"), Holder: "test", Timeout: time.Minute})
		assert.NilError(t, err)
		_, err = e.deploy(p, nil, release.Options{})
		return err
	}
	before := e.snapshot()
	err = staging()
	assert.Assert(t, errors.Is(err, release.ErrWrongTarget), "%v", err)
	assert.ErrorContains(t, err, "release dv-pipecat in namespace "+e.ns+" of an unnamed cluster belongs to target stable (revision 1 says so), not staging")
	assert.DeepEqual(t, e.snapshot(), before)

	// A release an older ringg-ci (or the old pipeline) wrote has no label:
	// it is told by its image repository and Ingress hosts.
	for _, r := range e.records("dv-pipecat") {
		delete(r.Labels, release.LabelTarget)
		delete(r.Labels, release.LabelOutcome)
		delete(r.Labels, release.LabelVerb)
		assert.NilError(t, e.helm().Releases.Update(r))
	}
	before = e.snapshot()
	err = staging()
	assert.Assert(t, errors.Is(err, release.ErrWrongTarget), "%v", err)
	assert.ErrorContains(t, err, "does not look like staging's: it runs images from "+prodRepo)
	assert.ErrorContains(t, err, "its Ingress serves use1-api.ringg.ai, the target's serves stage-api2.desivocal.com")
	assert.DeepEqual(t, e.snapshot(), before)
}

// 4. Right after the first promote, stable goes back to exactly what the
// old pipeline's revision ran: by digest, with its Secrets' content as
// versioned Secrets, none of the old record's values.
func TestStateRollbackRightAfterTheFirstPromote(t *testing.T) {
	e := newRelEnvIn(t, oldPipelineNamespace(t))
	old := &oldPipeline{e: e, cfg: e.helm()}
	old.kubectlSecrets()
	prod, canaryFiles := []string{"values-prod.yaml"}, []string{"values-prod.yaml", "values-canary.yaml"}
	old.upgrade("dv-pipecat", oldTag1, prod, secretSets()...)
	old.upgrade("dv-pipecat-canary", oldTag2, canaryFiles, secretSets()...)
	old.upgrade("dv-pipecat", oldTag3, prod)
	tcReadyPods(t, e.ns, 62, 60*time.Second)
	waitFor(t, 30*time.Second, containerRuntime(t, e.kube, e.ns))
	fixedApp, err := e.kube.CoreV1().Secrets(e.ns).Get(context.Background(), "dv-pipecat-app-secrets", metav1.GetOptions{})
	assert.NilError(t, err)

	kept := keptAnnotationsChart(t)
	s := &leakScan{t: t}
	b, n := e.leakBundle(s, "new")
	p := e.canaryPlan(digest("d"), n)
	p.ChartDir = kept
	_, err = e.deploy(p, b, release.Options{})
	assert.NilError(t, err)
	_, err = e.promoteWith(kept)
	assert.NilError(t, err)
	assert.Equal(t, image(e.deployment("dv-pipecat")), prodRepo+"@"+digest("d"))

	rp, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Stable, Overrides: e.overrides(), ChartDir: kept, Timeout: time.Minute, Holder: "test"})
	assert.NilError(t, err)
	res, err := (&release.Rollback{Clients: e.clients, Plan: rp}).Run(context.Background())
	assert.NilError(t, err)
	assert.Equal(t, res.Digest, oldTags[oldTag3], "the digest the old revision's pods ran")
	dep := e.deployment("dv-pipecat")
	assert.Equal(t, image(dep), prodRepo+"@"+oldTags[oldTag3])
	read := secretsRead(dep)
	assert.Assert(t, is.Len(read, 2))
	assert.Assert(t, strings.HasPrefix(read[0], "dv-pipecat-app-secrets-"), "a versioned copy: %v", read)
	e.assertSameData("dv-pipecat-app-secrets", read[0])
	assert.Equal(t, len(dep.Spec.Template.Spec.Containers[0].Env) > 0, true)
	for _, env := range dep.Spec.Template.Spec.Containers[0].Env {
		assert.Assert(t, !strings.Contains(env.Value, leakMarker), "env %s holds the old --set value", env.Name)
	}
	rec := decodeRecord(t, e.ns, "dv-pipecat", res.Revision)
	assert.Assert(t, !strings.Contains(rec, leakMarker), "the rollback's record holds none of the old record's values")
	assert.Assert(t, !strings.Contains(rec, "secretEnv"))
	after, err := e.kube.CoreV1().Secrets(e.ns).Get(context.Background(), "dv-pipecat-app-secrets", metav1.GetOptions{})
	assert.NilError(t, err)
	assert.Equal(t, after.ResourceVersion, fixedApp.ResourceVersion, "the fixed-name Secret is left as it was")
	h := statuses(e.history("dv-pipecat"))
	assert.Equal(t, h[len(h)-1], "4:deployed/proven")
}

// A run that loses its lock (the API server away longer than the lease)
// stops without acting: no rollback without the lock. The record stays
// pending for the next run, which recovers it under its own lock.
func TestStateLostLockLeavesTheReleaseForTheNextRun(t *testing.T) {
	e, pool := newPoolEnv(t)
	_, err := e.deploy(e.canaryPlan(digest("a"), nil), nil, fast)
	assert.NilError(t, err)
	pool.stallFor("canary", digest("b")) // the watch waits until the lock is lost
	watching := make(chan struct{})
	o := fast
	o.Step = func(s string) {
		if s == release.StepWatching {
			close(watching)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.deploy(e.canaryPlan(digest("b"), nil), nil, o)
		done <- err
	}()
	<-watching
	// Another holder takes the lease over, as a run does once the lease of a
	// holder cut off from the API server has expired.
	leases := e.kube.CoordinationV1().Leases(e.ns)
	l, err := leases.Get(context.Background(), lock.LeaseName("dv-pipecat-canary"), metav1.GetOptions{})
	assert.NilError(t, err)
	other := "another run"
	l.Spec.HolderIdentity = &other
	_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
	assert.NilError(t, err)
	err = <-done
	assert.Assert(t, errors.Is(err, release.ErrLeftPending), "%v", err)
	assert.Assert(t, errors.Is(err, lock.ErrLost), "%v", err)
	assert.Assert(t, !errors.Is(err, release.ErrRolledBack), "no rollback without the lock: %v", err)
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:pending-upgrade/pending"})
	assert.Equal(t, image(e.deployment("dv-pipecat-canary")), prodRepo+"@"+digest("b"), "nothing acted after the lock was lost")

	assert.NilError(t, leases.Delete(context.Background(), l.Name, metav1.DeleteOptions{}))
	res, err := e.deploy(e.canaryPlan(digest("c"), nil), nil, fast)
	assert.NilError(t, err)
	assert.Equal(t, res.Recovered, "revision 2 of release dv-pipecat-canary was left pending-upgrade by an interrupted run: marked interrupted")
	assert.DeepEqual(t, statuses(e.history("dv-pipecat-canary")), []string{"1:superseded/proven", "2:superseded/interrupted", "3:deployed/proven"})
}

// scale runs under the release's lock, never takes stable below what its
// PodDisruptionBudget keeps, and a cut of more than a quarter needs --force.
func TestStateScaleUnderTheLock(t *testing.T) {
	e := newRelEnv(t)
	_, err := e.deploy(e.stablePlan(digest("a")), nil, release.Options{})
	assert.NilError(t, err)
	_, err = e.deploy(e.canaryPlan(digest("a"), nil), nil, release.Options{})
	assert.NilError(t, err)
	scale := func(target targets.Name, n int, force bool) error {
		tg, err := targets.Get(target)
		assert.NilError(t, err)
		_, err = (&release.Scale{Clients: e.clients, Target: tg.With(e.overrides()), Replicas: n, Force: force, Holder: "test", Scale: ops.ScaleOptions{}}).Run(context.Background())
		return err
	}
	before := e.snapshot()
	err = scale(targets.Stable, 6, true)
	assert.Assert(t, errors.Is(err, release.ErrScaleRefused), "%v", err)
	assert.ErrorContains(t, err, "6 is below the floor of 45 its PodDisruptionBudget dv-pipecat keeps of 60 pods")
	err = scale(targets.Canary, 1, false)
	assert.ErrorContains(t, err, "going from 2 to 1 removes 1 pods, more than a quarter at once: pass --force")
	assert.DeepEqual(t, e.snapshot(), before)
	assert.NilError(t, scale(targets.Canary, 1, true))
	assert.NilError(t, scale(targets.Stable, 50, false))

	held, err := lock.Acquire(context.Background(), e.kube, lock.Options{Namespace: e.ns, Release: "dv-pipecat", Holder: "a deploy"})
	assert.NilError(t, err)
	defer func() { _ = held.Release(context.Background()) }()
	err = scale(targets.Stable, 55, false)
	assert.Assert(t, errors.Is(err, lock.ErrHeld), "%v", err)
}

// Turning autoscaling on keeps the live replica count (the API server would
// reset a dropped spec.replicas to 1), and the rollout's deadline follows
// the live Deployment's size.
func TestStateTurningAutoscalingOnKeepsTheLiveReplicas(t *testing.T) {
	e := newRelEnv(t)
	p := e.stablePlan(digest("a"))
	p.Timeout = 0
	first, err := e.deploy(p, nil, release.Options{})
	assert.NilError(t, err)
	p = e.stablePlan(digest("b"))
	p.ChartDir = chartWithValues(t, "values-prod.yaml", "autoscaling:\n  enabled: false\n", "autoscaling:\n  enabled: true\n")
	p.Timeout = 0
	res, err := e.deploy(p, nil, release.Options{})
	assert.NilError(t, err)
	dep := e.deployment("dv-pipecat")
	assert.Equal(t, *dep.Spec.Replicas, int32(60))
	assert.Equal(t, res.Pods.Ready, int32(60))
	assert.Equal(t, res.Timeout, first.Timeout, "the timeout of 60 replicas, not of one")
	_, err = e.kube.AutoscalingV2().HorizontalPodAutoscalers(e.ns).Get(context.Background(), "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err)
}
