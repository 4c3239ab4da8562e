package integration

// The crash-consistency matrix (issue 20). Every verb that changes the
// cluster (deploy, promote, rollback of each target, scale, takeover
// --delete-old-records), on its good path and on its failure path, is run
// once in a child process to learn its steps: after the lock, after the
// Secrets, after each of Helm's record writes, while it watches, inside the
// failure path's return to the last good revision, before the final status
// write. Then, for every step, a fresh namespace is brought to the same
// state, the verb is stopped there and killed with SIGKILL (or cut off from
// the API server for longer than its lock's lease, TestCrashConsistencyOutage),
// and the next verbs run: each once with an image that works and once with
// one that fails. After each, invariants are checked on the cluster:
//
//   - stable's Deployment and Service exist;
//   - what runs (each Deployment's image) is its release's last good
//     revision's, which is the new revision when the next verb proved it;
//   - the record Helm says is deployed is that revision;
//   - no record is left pending without a holder;
//   - no Secret a live or draining pod, or a Deployment, references is gone;
//   - no secret value is in any record;
//   - the release of the other target was not touched.
//
// Stable and the canary run one replica here (the chart copied with
// replicaCount 1): the matrix tests the states runs leave, not scale. Each
// kill point is followed by two of a target's four next verbs, one with an
// image that works and one with one that fails, in turn, so that over a
// verb's kill points each next verb runs both ways.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gotest.tools/v3/assert"
	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/testcluster"
)

// The images of the matrix: stable's two good revisions, the canary's, the
// digest the killed verbs deploy and those of the next verbs.
var (
	mxStable1 = digest("1")
	mxStable2 = digest("2")
	mxCanary  = digest("b")
	mxKilled  = digest("k")
	mxNext    = digest("n")
	mxBad     = digest("x")
)

// mxSecret is in the secrets JSON of the matrix's deploys: no record may hold it.
const mxSecret = "MATRIXSECRET"

// matrixEnv is one sequence's namespace.
type matrixEnv struct {
	*relEnv
	pool  *brokenImages
	chart string
	// other is the release the sequence must not touch, and its state.
	other     string
	otherWas  string
	lockTTL   time.Duration
	bundle    *secrets.Bundle
	bundleFor *pipeline.SecretNames
}

// scenario is a verb to stop, from a state its setup makes.
type scenario struct {
	name   string
	target targets.Name
	// failing: the verb's rollout fails; it is stopped only on its failure
	// path (until then it passes the states of its good twin).
	failing bool
	// setup brings a fresh namespace to the state before the verb.
	setup func(*matrixEnv)
	// killed is the verb, in a child.
	killed childSpec
	// nexts are the verbs run after the killed one.
	nexts []nextVerb
}

// nextVerb is a verb run after a killed one; bad makes it fail (its image,
// or the revision it returns to, does not start).
type nextVerb struct {
	name string
	run  func(*matrixEnv) error
	bad  bool
}

func mxChart(t *testing.T) string {
	dir := chartWithValues(t, "values-prod.yaml", "replicaCount: 60", "replicaCount: 1")
	path := filepath.Join(dir, "values-canary.yaml")
	raw, err := os.ReadFile(path)
	assert.NilError(t, err)
	out := strings.Replace(string(raw), "replicaCount: 2", "replicaCount: 1", 1)
	assert.Assert(t, out != string(raw))
	assert.NilError(t, os.WriteFile(path, []byte(out), 0o644))
	return dir
}

func (m *matrixEnv) stable(d string) error {
	p := m.stablePlan(d)
	p.ChartDir, p.Secrets, p.SecretNames = m.chart, pipeline.SecretsNew, *m.bundleFor
	_, err := untilUnlocked(m.t, func() (*release.Result, error) { return m.deploy(p, m.bundle, m.opts()) })
	return err
}

func (m *matrixEnv) canary(d string) error {
	p := m.canaryPlan(d, m.bundleFor)
	p.ChartDir = m.chart
	_, err := untilUnlocked(m.t, func() (*release.Result, error) { return m.deploy(p, m.bundle, m.opts()) })
	return err
}

func (m *matrixEnv) promote() error {
	_, err := untilUnlocked(m.t, func() (*release.PromoteResult, error) {
		p, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: m.overrides(), ChartDir: m.chart, Soak: 100 * time.Millisecond, Timeout: time.Minute, Holder: "next promote"})
		assert.NilError(m.t, err)
		return (&release.Promote{Clients: m.clients, Plan: p, Options: m.opts(), SoakInterval: 50 * time.Millisecond}).Run(context.Background())
	})
	return err
}

func (m *matrixEnv) rollback(target targets.Name, revision int) error {
	_, err := untilUnlocked(m.t, func() (*release.Result, error) {
		p, err := pipeline.NewRollback(pipeline.RollbackInput{Target: target, Overrides: m.overrides(), Revision: revision, ChartDir: m.chart, Timeout: time.Minute, Holder: "next rollback"})
		assert.NilError(m.t, err)
		return (&release.Rollback{Clients: m.clients, Plan: p, Options: m.opts()}).Run(context.Background())
	})
	return err
}

func (m *matrixEnv) opts() release.Options {
	return release.Options{PullErrorGrace: 300 * time.Millisecond, LockTTL: m.lockTTL}
}

// baseSetup: stable at revision 2 (two good revisions, 1 and 2), the canary
// at revision 1, with new Secrets.
func baseSetup(m *matrixEnv) {
	assert.NilError(m.t, m.stable(mxStable1))
	assert.NilError(m.t, m.stable(mxStable2))
	assert.NilError(m.t, m.canary(mxCanary))
}

// nexts of a verb on stable, and of one on the canary.
var (
	stableNexts = []nextVerb{
		{name: "promote", run: (*matrixEnv).promote},
		{name: "promote-failing", bad: true, run: func(m *matrixEnv) error { m.pool.breakFor("stable", mxCanary); return m.promote() }},
		{name: "rollback", run: func(m *matrixEnv) error { return m.rollback(targets.Stable, 0) }},
		{name: "rollback-failing", bad: true, run: func(m *matrixEnv) error {
			m.pool.breakFor("stable", mxStable1)
			return m.rollback(targets.Stable, 1)
		}},
	}
	canaryNexts = []nextVerb{
		{name: "deploy", run: func(m *matrixEnv) error { return m.canary(mxNext) }},
		{name: "deploy-failing", bad: true, run: func(m *matrixEnv) error { m.pool.breakFor("canary", mxBad); return m.canary(mxBad) }},
		{name: "rollback", run: func(m *matrixEnv) error { return m.rollback(targets.Canary, 0) }},
		{name: "rollback-failing", bad: true, run: func(m *matrixEnv) error {
			m.pool.breakFor("canary", m.stableDigest())
			return m.rollback(targets.Canary, 0)
		}},
	}
)

// stableDigest is the digest stable's last good revision runs.
func (m *matrixEnv) stableDigest() string {
	h := m.history("dv-pipecat")
	for i := len(h) - 1; i >= 0; i-- {
		if h[i] != nil && h[i].Labels[release.LabelOutcome] == string(release.OutcomeProven) {
			return digestOfRecord(h[i])
		}
	}
	return ""
}

func digestOfRecord(r *hrelease.Release) string {
	img, _ := r.Config["image"].(map[string]any)
	d, _ := img["digest"].(string)
	return d
}

func scenarios() []scenario {
	breakKilled := func(track string) func(*matrixEnv) {
		return func(m *matrixEnv) { baseSetup(m); m.pool.breakFor(track, mxKilled) }
	}
	return []scenario{
		{name: "deploy-canary", target: targets.Canary, setup: baseSetup, killed: childSpec{Verb: "deploy-canary", Digest: mxKilled}, nexts: canaryNexts},
		{name: "deploy-canary-failing", target: targets.Canary, failing: true, setup: breakKilled("canary"), killed: childSpec{Verb: "deploy-canary", Digest: mxKilled}, nexts: canaryNexts},
		{name: "promote", target: targets.Stable, setup: baseSetup, killed: childSpec{Verb: "promote"}, nexts: stableNexts},
		{name: "promote-failing", target: targets.Stable, failing: true, setup: func(m *matrixEnv) { baseSetup(m); m.pool.breakFor("stable", mxCanary) },
			killed: childSpec{Verb: "promote"}, nexts: stableNexts},
		{name: "rollback-stable", target: targets.Stable, setup: baseSetup, killed: childSpec{Verb: "rollback-stable"}, nexts: stableNexts},
		{name: "rollback-stable-failing", target: targets.Stable, failing: true, setup: func(m *matrixEnv) { baseSetup(m); m.pool.breakFor("stable", mxStable1) },
			killed: childSpec{Verb: "rollback-stable"}, nexts: stableNexts},
		{name: "rollback-canary", target: targets.Canary, setup: baseSetup, killed: childSpec{Verb: "rollback-canary"}, nexts: canaryNexts},
		{name: "rollback-canary-failing", target: targets.Canary, failing: true, setup: func(m *matrixEnv) { baseSetup(m); m.pool.breakFor("canary", mxStable2) },
			killed: childSpec{Verb: "rollback-canary"}, nexts: canaryNexts},
		{name: "scale-stable", target: targets.Stable, setup: baseSetup, killed: childSpec{Verb: "scale-stable", Replicas: 2}, nexts: stableNexts},
		{name: "takeover-stable", target: targets.Stable, setup: takeoverSetup, killed: childSpec{Verb: "takeover-stable"}, nexts: stableNexts[:2]},
	}
}

// takeoverSetup: stable written twice by the old pipeline, then taken over
// (the canary deployed and promoted with ringg-ci); its old records remain.
func takeoverSetup(m *matrixEnv) {
	old := &oldPipeline{e: m.relEnv, cfg: m.helm()}
	old.kubectlSecrets()
	dir := oldChartWithReplicas(m.t, 1)
	old.upgradeFrom(dir, "dv-pipecat", oldTag1, []string{"values-prod.yaml"}, secretSets()...)
	old.upgradeFrom(dir, "dv-pipecat", oldTag3, []string{"values-prod.yaml"})
	m.chart = keptAnnotationsChartFrom(m.t, m.chart)
	assert.NilError(m.t, m.stable(mxStable2))
	assert.NilError(m.t, m.canary(mxCanary))
}

// nextsAt are the next verbs run after the i-th kill point: a good one and
// a failing one, taking turns among nexts (good and failing alternate in
// it: promote, promote-failing, rollback, rollback-failing).
func nextsAt(nexts []nextVerb, i int) []nextVerb {
	if len(nexts) <= 2 {
		return nexts
	}
	pairs := len(nexts) / 2
	good := nexts[2*(i%pairs)]
	bad := nexts[2*((i+1)%pairs)+1]
	return []nextVerb{good, bad}
}

// killPoints are the steps after which the cluster is in a state of its
// own: the lock taken, the Secrets applied, each record written, the
// replicas scaled, and the rollout done before its record is written. Steps
// between two of them with no write in between leave the same state. A
// failing verb's are those of its failure path, after its first rollout.
func killPoints(steps []string, failing bool) []int {
	var out []int
	from := 0
	if failing {
		from = slices.Index(steps, release.StepFinal) + 1
	}
	for i, s := range steps[from:] {
		if s == release.StepLocked || s == release.StepSecrets || s == release.StepFinal || s == release.StepScaled || strings.HasPrefix(s, release.StepRecord+":") {
			out = append(out, from+i+1)
		}
	}
	return out
}

// matrixSlots bounds how many sequences run at once.
var matrixSlots = make(chan struct{}, 8)

// mxLockTTL is the lease of the matrix's runs: a killed run's lock lapses
// after it, and a run on a busy machine must renew well within it.
const mxLockTTL = 5 * time.Second

func newMatrixEnv(t *testing.T, sc scenario) *matrixEnv {
	t.Helper()
	level := testcluster.Restricted
	if sc.name == "takeover-stable" {
		level = testcluster.Privileged // the old pipeline's pods run as root
	}
	e, pool := newPoolEnvEnforcing(t, level)
	m := &matrixEnv{relEnv: e, pool: pool, chart: mxChart(t), lockTTL: mxLockTTL}
	b, err := secrets.Build([]byte(`{"OPENAI_API_KEY": "`+mxSecret+`", "REDIS_URL": "redis://:`+mxSecret+`@r:6379/0"}`),
		[]byte(`{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": "`+mxSecret+`"}`), secrets.DefaultNames(), e.ns)
	assert.NilError(t, err)
	m.bundle, m.bundleFor = &b, &pipeline.SecretNames{AppEnv: b.Names().AppEnv, GCPCreds: b.Names().GCPCreds}
	m.other = "dv-pipecat-canary"
	if sc.target == targets.Canary {
		m.other = "dv-pipecat"
	}
	return m
}

func (m *matrixEnv) spec(sc scenario) childSpec {
	s := sc.killed
	s.Namespace, s.Chart, s.LockTTL, s.Holder = m.ns, m.chart, m.lockTTL, "killed "+sc.name
	return s
}

// discovered caches the steps of each scenario's verb: both matrix tests
// stop it at the same points.
var discovered sync.Map // scenario name → []string

// stepsOf runs sc's verb once to the end, from sc's setup, and returns the
// steps it passed.
func stepsOf(t *testing.T, sc scenario) []string {
	t.Helper()
	if v, ok := discovered.Load(sc.name); ok {
		return v.([]string)
	}
	matrixSlots <- struct{}{}
	defer func() { <-matrixSlots }()
	m := newMatrixEnv(t, sc)
	sc.setup(m)
	steps, result := childSteps(t, m.spec(sc))
	t.Logf("%s: %d steps (%s), ended %s", sc.name, len(steps), strings.Join(steps, ", "), result)
	discovered.Store(sc.name, steps)
	return steps
}

// cell is one sequence of the matrix: a scenario's verb stopped at a step,
// then next.
type cell struct {
	sc   scenario
	at   int
	step string
	next nextVerb
}

func (c cell) name() string {
	return fmt.Sprintf("%s/%02d-%s/%s", c.sc.name, c.at, c.step, c.next.name)
}

// cellsOf lists the sequences of a scenario.
func cellsOf(t *testing.T, sc scenario) []cell {
	t.Helper()
	steps := stepsOf(t, sc)
	points := killPoints(steps, sc.failing)
	assert.Assert(t, len(points) > 0, "steps: %v", steps)
	var out []cell
	for i, at := range points {
		for _, next := range nextsAt(sc.nexts, i) {
			out = append(out, cell{sc: sc, at: at, step: steps[at-1], next: next})
		}
	}
	return out
}

// start brings a fresh namespace to the cell's state and stops its verb
// there, in a child.
func (c cell) start(t *testing.T) (*matrixEnv, *child) {
	t.Helper()
	m := newMatrixEnv(t, c.sc)
	c.sc.setup(m)
	m.otherWas = m.stateOf(m.other)
	spec := m.spec(c.sc)
	spec.StopAt = c.at
	ch := startChild(t, spec)
	ch.waitStopped(90 * time.Second)
	return m, ch
}

// finish runs the next verb and checks the invariants. A failing next verb
// may still succeed: when the stopped verb had already rolled the same spec
// out, nothing rolls.
func (c cell) finish(t *testing.T, m *matrixEnv) {
	t.Helper()
	if err := c.next.run(m); err != nil {
		t.Logf("%s: %v", c.next.name, err)
	}
	m.invariants(c.sc)
}

// allCells discovers the steps of every scenario, concurrently, each in a
// subtest of its own, and returns every cell of the matrix.
func allCells(t *testing.T) []cell {
	var out []cell
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sc := range scenarios() {
		wg.Go(func() {
			t.Run("steps/"+sc.name, func(t *testing.T) {
				cs := cellsOf(t, sc)
				mu.Lock()
				out = append(out, cs...)
				mu.Unlock()
			})
		})
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b cell) int { return strings.Compare(a.name(), b.name()) })
	return out
}

// runCells runs each cell as a subtest of t, concurrently, each in its own
// goroutine (subtests that call t.Parallel would be bounded by -parallel,
// GOMAXPROCS by default, and the cells mostly wait), at most len(matrixSlots)
// at a time unless slots is false, and returns when all are done.
func runCells(t *testing.T, cells []cell, slots bool, run func(t *testing.T, c cell)) {
	var wg sync.WaitGroup
	for _, c := range cells {
		wg.Go(func() {
			if slots {
				matrixSlots <- struct{}{}
				defer func() { <-matrixSlots }()
			}
			t.Run(c.name(), func(t *testing.T) { run(t, c) })
		})
	}
	wg.Wait()
}

func TestCrashConsistency(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test cluster")
	}
	cells := allCells(t)
	runCells(t, cells, true, func(t *testing.T, c cell) {
		m, ch := c.start(t)
		ch.kill()
		c.finish(t, m)
	})
	t.Logf("crash-consistency matrix, killed: %d sequences", len(cells))
}

// outageBatch is the cells that wait, each with its verb stopped, for one
// outage of the API server longer than their locks' lease.
type outageBatch struct {
	mu   sync.Mutex
	left int
	done chan struct{}
}

// arrive counts a cell in (stopped, or failed before it could stop); the
// last one takes the API server away and brings it back. Every cell waits
// for that.
func (b *outageBatch) arrive(t *testing.T) {
	b.mu.Lock()
	b.left--
	last := b.left == 0
	b.mu.Unlock()
	if last {
		func() {
			defer close(b.done) // also when the outage fails t
			cluster.Outage(t, mxLockTTL+2*time.Second)
		}()
	}
	<-b.done
}

// TestCrashConsistencyOutage stops every verb at every kill point, as
// TestCrashConsistency does, but takes the API server away for longer than
// the lock's lease instead of killing the runner, then lets it go on: it must
// find its lock lost and stop without acting (the fence refuses Helm's
// writes), leaving what the next verb recovers. One next verb per cell.
func TestCrashConsistencyOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the test cluster")
	}
	var cells []cell
	for _, c := range allCells(t) {
		if !c.next.bad { // the good next verb of each kill point
			cells = append(cells, c)
		}
	}
	const batchSize = 16
	for from := 0; from < len(cells); from += batchSize {
		batch := cells[from:min(from+batchSize, len(cells))]
		b := &outageBatch{left: len(batch), done: make(chan struct{})}
		t.Run(fmt.Sprintf("batch-%d", from/batchSize+1), func(t *testing.T) {
			runCells(t, batch, false, func(t *testing.T, c cell) {
				var once sync.Once
				arrive := func() { once.Do(func() { b.arrive(t) }) }
				defer arrive()
				m, ch := c.start(t)
				arrive()
				result := ch.resume(2 * time.Minute)
				t.Logf("resumed after the outage: %s", result)
				c.finish(t, m)
			})
		})
	}
	t.Logf("crash-consistency matrix, API server away: %d sequences", len(cells))
}

// stateOf is what a release's records and Deployment look like, to tell
// whether anything touched them.
func (m *matrixEnv) stateOf(name string) string {
	var parts []string
	for _, r := range m.records(name) {
		parts = append(parts, fmt.Sprintf("%d:%s:%v", r.Version, r.Info.Status, r.Labels[release.LabelOutcome]))
	}
	if d, err := m.kube.AppsV1().Deployments(m.ns).Get(context.Background(), name, metav1.GetOptions{}); err == nil {
		parts = append(parts, "deployment "+d.ResourceVersion)
	}
	return strings.Join(parts, " ")
}

// invariants checks the cluster after a sequence.
func (m *matrixEnv) invariants(sc scenario) {
	t := m.t
	t.Helper()
	ctx := context.Background()
	_, err := m.kube.CoreV1().Services(m.ns).Get(ctx, "dv-pipecat", metav1.GetOptions{})
	assert.NilError(t, err, "stable's Service exists")
	for _, name := range []string{"dv-pipecat", "dv-pipecat-canary"} {
		recs := m.records(name)
		var deployed []*hrelease.Release
		var lastGood *hrelease.Release
		for _, r := range recs {
			o := r.Labels[release.LabelOutcome]
			assert.Assert(t, !r.Info.Status.IsPending() && o != string(release.OutcomePending),
				"%s revision %d is left %s/%s without a holder", name, r.Version, r.Info.Status, o)
			if r.Info.Status == hrelease.StatusDeployed {
				deployed = append(deployed, r)
			}
			good := o == string(release.OutcomeProven) || (o == "" && r.Info.Status != hrelease.StatusFailed)
			if good && (lastGood == nil || r.Version > lastGood.Version) {
				lastGood = r
			}
			raw, err := json.Marshal(r)
			assert.NilError(t, err)
			assert.Assert(t, !strings.Contains(string(raw), mxSecret), "%s revision %d holds a secret value", name, r.Version)
		}
		dep, err := m.kube.AppsV1().Deployments(m.ns).Get(ctx, name, metav1.GetOptions{})
		assert.NilError(t, err, "%s's Deployment exists", name)
		assert.Assert(t, lastGood != nil, "%s has a good revision: %s", name, m.stateOf(name))
		assert.Equal(t, image(dep), imageOfManifest(lastGood.Manifest), "%s runs its last good revision %d (%s)", name, lastGood.Version, m.stateOf(name))
		assert.Assert(t, len(deployed) <= 1, "%s: more than one record says deployed: %s", name, m.stateOf(name))
		for _, d := range deployed {
			assert.Equal(t, imageOfManifest(d.Manifest), image(dep), "%s: the deployed record %d is what runs (%s)", name, d.Version, m.stateOf(name))
		}
	}
	// Secrets that pods (draining ones too) and Deployments reference exist.
	pods, err := m.kube.CoreV1().Pods(m.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	refs := map[string]string{}
	for _, p := range pods.Items {
		for _, n := range podSecretRefs(&p.Spec) {
			refs[n] = "pod " + p.Name
		}
	}
	deps, err := m.kube.AppsV1().Deployments(m.ns).List(ctx, metav1.ListOptions{})
	assert.NilError(t, err)
	for _, d := range deps.Items {
		for _, n := range podSecretRefs(&d.Spec.Template.Spec) {
			refs[n] = "deployment " + d.Name
		}
	}
	for n, who := range refs {
		_, err := m.kube.CoreV1().Secrets(m.ns).Get(ctx, n, metav1.GetOptions{})
		assert.NilError(t, err, "secret %s, which %s references, exists", n, who)
	}
	assert.Equal(t, m.stateOf(m.other), m.otherWas, "the other target's release %s was not touched", m.other)
}

func podSecretRefs(spec *corev1.PodSpec) []string {
	var out []string
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			out = append(out, v.Secret.SecretName)
		}
	}
	for _, c := range spec.Containers {
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				out = append(out, ef.SecretRef.Name)
			}
		}
	}
	return out
}

func imageOfManifest(manifest string) string {
	for _, doc := range strings.Split(manifest, "\n---") {
		if !strings.Contains(doc, "kind: Deployment") {
			continue
		}
		for _, line := range strings.Split(doc, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "image: "); ok {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}
