package release

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	helmchart "helm.sh/helm/v3/pkg/chart"
	hrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	cliresource "k8s.io/cli-runtime/pkg/resource"
	"k8s.io/utils/clock"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// ErrRolledBack means a release's rollout failed and the release was returned
// to its last good revision (or uninstalled after a first install that never
// served).
var ErrRolledBack = errors.New("rolled back")

// ErrLeftPending means a run stopped without deciding its record's outcome
// (it lost the release's lock): the next run recovers the record.
var ErrLeftPending = errors.New("left pending for the next run")

// Result is what deploy, promote and rollback did.
type Result struct {
	Target    targets.Name `json:"target"`
	Release   string       `json:"release"`
	Namespace string       `json:"namespace"`
	// Cluster names the cluster the run reached (context and server).
	Cluster string `json:"cluster,omitempty"`
	// Revision is the release's revision when the verb ended; zero when a
	// failed first install was uninstalled.
	Revision int `json:"revision"`
	// Previous is the last good revision before the verb ran.
	Previous int `json:"previousRevision,omitempty"`
	// Status is the recorded status of Revision (deployed, failed...).
	Status string `json:"status"`
	// Outcome is Revision's outcome (proven, failed...).
	Outcome     Outcome              `json:"outcome,omitempty"`
	Image       string               `json:"image,omitempty"`
	Digest      string               `json:"digest,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// SecretsApplied lists the Secrets of a new bundle and what apply did.
	SecretsApplied []secrets.Status     `json:"secretsApplied,omitempty"`
	Pods           kube.RolloutProgress `json:"pods"`
	// Recovered says which interrupted record was repaired first.
	Recovered string `json:"recovered,omitempty"`
	// Failed is the revision whose rollout failed, when the run returned the
	// release to Previous.
	Failed   int           `json:"failedRevision,omitempty"`
	Pruned   []string      `json:"prunedSecrets,omitempty"`
	Timeout  time.Duration `json:"timeout"`
	Duration time.Duration `json:"duration"`
	// Calls are the synthetic calls placed once the rollout was done.
	Calls *ops.CallReport `json:"calls,omitempty"`
}

// MarshalJSON writes durations as text.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return pipeline.MarshalWithDurations(plain(r), map[string]time.Duration{"timeout": r.Timeout, "duration": r.Duration})
}

// Options tune execution; zero values mean the defaults.
type Options struct {
	// LockTTL is how long the lock outlives a dead holder (lock.DefaultTTL).
	LockTTL time.Duration
	// Progress receives rollout progress every ProgressInterval.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// MaxRestarts and PullErrorGrace decide when a failing rollout is
	// certain to fail (kube.RolloutOptions). PullErrorGrace is real time;
	// its default (kube.DefaultPullErrorGrace) follows TimeScale.
	MaxRestarts    int32
	PullErrorGrace time.Duration
	// TimeScale is how long one second of the Deployment's own numbers
	// (grace period, readiness probe) lasts; zero means a second. Tests and
	// benchmarks run production's numbers on a simulated node scaled down
	// (e.g. 10ms), and every deadline derived from those numbers (the stall
	// budget of a wave, the default overall timeout, the default pull-error
	// grace) follows, so they keep production's proportions.
	TimeScale time.Duration
	// Step, when set, hears each step of a change as it completes (the
	// Step* names, and StepRecord for each of Helm's record writes): a test
	// stops a run there to prove what the next run does with what it left.
	Step func(string)
}

// Steps of a change, in order, as Options.Step hears them.
const (
	StepLocked    = "locked"          // the release's lock is held
	StepRecovered = "recovered"       // an interrupted run's record was marked
	StepSecrets   = "secrets-applied" // a bundle of Secrets exists
	StepRecord    = "record"          // Helm wrote a record: "record:<status>"
	StepUpgraded  = "upgraded"        // Helm applied the new revision
	StepWatching  = "watching"        // the record says pending, the rollout is watched
	StepFailed    = "marked-failed"   // the failed revision is marked failed
	StepRestored  = "restore-applied" // the last good revision is applied again
	StepFinal     = "final"           // the rollout is decided; its record is written next
	StepScaled    = "scaled"          // scale changed the replica count
)

// scaled is d of the Deployment's own time in this run's time.
func (o Options) scaled(d time.Duration) time.Duration { return pipeline.Scaled(d, o.TimeScale) }

func (o Options) step(name string) {
	if o.Step != nil {
		o.Step(name)
	}
}

// spec is what a job installs: a chart, its values, and what the runner
// needs to know of them.
type spec struct {
	chart  *helmchart.Chart
	values map[string]any
	image  pipeline.Image
	names  pipeline.SecretNames
	r      rendered
	// bundle, when set, is applied before the upgrade (adopted Secrets).
	bundle *secrets.Bundle
	// labels are the record's labels besides target, verb and outcome
	// (record.go).
	labels map[string]string
}

// fromChart makes specs from a chart directory, its values files and the
// values ringg-ci computes; names gives the Secret names from the release's
// history.
func fromChart(ch *helmchart.Chart, dir string, files []string, t targets.Target, image pipeline.Image, names func(history) pipeline.SecretNames) func(history) (spec, error) {
	return func(h history) (spec, error) {
		sp := spec{chart: ch, image: image, names: names(h)}
		vals, err := chart.Values(dir, files, pipeline.ComputedValues(image, sp.names))
		if err != nil {
			return sp, err
		}
		m, err := chart.Render(ch, vals, chart.RenderOptions{Release: t.Release, Namespace: t.Namespace})
		if err != nil {
			return sp, err
		}
		sp.values = vals
		sp.r, err = rolloutOf(m)
		return sp, err
	}
}

// fromRecord is the spec of a stored revision: its own chart and values.
func fromRecord(rel *hrelease.Release) (spec, error) {
	r, err := rolloutOfManifest(rel.Manifest)
	if err != nil {
		return spec{}, err
	}
	return spec{chart: rel.Chart, values: rel.Config, image: pipeline.Image{Repository: repositoryOf(imageOfManifest(rel.Manifest)), Digest: digestOf(rel)},
		names: secretNamesOf(rel), r: r, labels: recordExtras(commitOf(rel), "")}, nil
}

// job is one change of what a release runs, the one lifecycle of deploy,
// promote and both rollbacks: under the release's lock, recover what an
// interrupted run left, apply Secrets, upgrade, watch the rollout, and on
// failure return to the last good revision.
type job struct {
	c      Clients
	cfg    *action.Configuration
	target targets.Target
	// desire computes what to install from the release's history; it is
	// called before the lock (to check everything) and again under it.
	desire func(history) (spec, error)
	// bundle holds new Secrets to apply before the upgrade.
	bundle *secrets.Bundle
	// want is the target's fingerprint, for releases without target labels.
	want fingerprint
	// timeout is the plan's, or zero until prepare derives it.
	timeout time.Duration
	holder  string
	verb    string
	opts    Options
	// verify, when set, judges the pods once their rollout is done and
	// before the record is proven (deploy's synthetic calls); its error
	// fails the rollout.
	verify func(ctx context.Context, res *Result) error
}

func (j job) what() string {
	return fmt.Sprintf("%s %s (release %s in %s)", j.verb, j.target.Name, j.target.Release, j.target.Namespace)
}

// prepare checks everything that can be checked before the lock: the
// release belongs to the target, the chart renders, its Deployment can roll
// out; and derives the overall timeout from the Deployment unless the plan
// gave one.
func (j *job) prepare(ctx context.Context) error {
	h, err := readHistory(j.cfg, j.target.Release)
	if err != nil {
		return err
	}
	sp, err := j.desire(h)
	if err != nil {
		return err
	}
	if j.want.Repository == "" {
		j.want = fingerprint{Repository: j.target.Image, Hosts: fingerprintOf(sp.r.manifests.Text).Hosts}
	}
	if err := h.checkOwner(j.target, j.want, j.c.Cluster); err != nil {
		return err
	}
	if sp.r.deployment != "" {
		if err := sp.r.rollout.Check(); err != nil {
			return fmt.Errorf("deployment %s: %w", sp.r.deployment, err)
		}
	}
	if j.timeout == 0 {
		sp.r = j.withLiveReplicas(ctx, sp.r)
		j.timeout = j.opts.scaled(pipeline.RolloutTimeout(sp.r.rollout))
	}
	return nil
}

// takeLock acquires a release's lock; o's clock and logger come from c.
func takeLock(ctx context.Context, c Clients, o lock.Options) (*lock.Held, func(), error) {
	o.Clock, o.Logger = readingClock{now: c.Now}, c.Logger
	held, err := lock.Acquire(ctx, c.Kube, o)
	if err != nil {
		return nil, nil, err
	}
	if c.fence != nil {
		c.fence.hold(held)
	}
	unlock := func() {
		rctx, cancel := bounded(ctx, 15*time.Second)
		defer cancel()
		if err := held.Release(rctx); err != nil {
			c.Logger.Warn("release lock", "release", o.Release, "error", err)
		}
		if c.fence != nil {
			c.fence.hold(nil)
		}
	}
	return held, unlock, nil
}

// readingClock tells the time with now, the clock the verbs read; its
// timers (the lock's renewals) are real.
type readingClock struct {
	clock.RealClock
	now func() time.Time
}

func (r readingClock) Now() time.Time                  { return r.now() }
func (r readingClock) Since(t time.Time) time.Duration { return r.now().Sub(t) }

// under is one run of a job with the lock held.
type under struct {
	job
	held *lock.Held
	res  *Result
}

// run executes a prepared job.
func (j job) run(ctx context.Context) (*Result, error) {
	c := j.c
	start := c.Now()
	name := j.target.Release
	res := &Result{Target: j.target.Name, Release: name, Namespace: j.target.Namespace, Cluster: c.Cluster, Timeout: j.timeout}
	defer func() { res.Duration = c.Now().Sub(start) }()

	held, unlock, err := takeLock(ctx, c, lock.Options{Namespace: j.target.Namespace, Release: name, Holder: j.holder, TTL: j.opts.LockTTL})
	if err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	defer unlock()
	j.opts.step(StepLocked)
	u := under{job: j, held: held, res: res}
	h, err := readHistory(j.cfg, name)
	if err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	if err := h.checkOwner(j.target, j.want, c.Cluster); err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	if res.Recovered, err = u.recover(h); err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	lastGood := h.lastGood()
	if lastGood != nil {
		res.Previous = lastGood.Version
	}
	sp, err := j.desire(h)
	if err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	sp.r = j.withLiveReplicas(ctx, sp.r)
	res.Image, res.Digest, res.SecretNames = sp.image.String(), sp.image.Digest, sp.names
	for _, b := range []*secrets.Bundle{j.bundle, sp.bundle} {
		if b == nil || b.Empty() {
			continue
		}
		if err := held.Check(); err != nil {
			return res, fmt.Errorf("%s: %w", j.what(), err)
		}
		applied, err := secrets.Apply(ctx, c.Kube, *b, c.Now())
		res.SecretsApplied = append(res.SecretsApplied, applied.Secrets...)
		if err != nil {
			return res, fmt.Errorf("%s: %w", j.what(), err)
		}
		j.opts.step(StepSecrets)
	}
	if lastGood != nil && originOf(lastGood) == OriginOldPipeline && (j.verb == verbDeploy || j.verb == verbPromote) {
		u.recordTakeover(ctx, lastGood)
	}

	a, err := u.apply(ctx, h, sp, j.verb)
	if err != nil {
		if a.rel == nil {
			return res, fmt.Errorf("%s: %w", j.what(), err)
		}
		// Helm stored a failed revision and may have changed some objects:
		// return to the last good revision as for a failed rollout.
		return res, u.fail(ctx, h, a.rel, sp.r.deployment, err)
	}
	pruned := make(chan []string, 1)
	go func() { pruned <- prune(ctx, c, j.cfg, j.target.Namespace) }()
	werr := u.settle(ctx, a, sp.r.deployment, "rollout")
	res.Pruned = <-pruned
	switch {
	case werr == nil:
		return res, nil
	case errors.Is(werr, ErrLeftPending):
		return res, fmt.Errorf("%s: %w", j.what(), werr)
	}
	return res, u.fail(ctx, h, a.rel, sp.r.deployment, werr)
}

// recover marks the record an interrupted run left pending as interrupted
// (Helm: failed), so that Helm takes the next upgrade and nothing counts it
// as good. It returns what it did, "" when nothing.
func (u under) recover(h history) (string, error) {
	rel := h.pending()
	if rel == nil {
		return "", nil
	}
	if err := u.held.Check(); err != nil {
		return "", err
	}
	was := rel.Info.Status
	if err := u.setStatus(rel, hrelease.StatusFailed, OutcomeInterrupted, fmt.Sprintf("interrupted while %s; marked by %s", was, u.holder)); err != nil {
		return "", fmt.Errorf("mark interrupted revision %d of release %s: %w", rel.Version, rel.Name, err)
	}
	u.opts.step(StepRecovered)
	u.c.Logger.Warn("recovered interrupted release", "release", rel.Name, "revision", rel.Version, "was", string(was))
	return fmt.Sprintf("revision %d of release %s was left %s by an interrupted run: marked interrupted", rel.Version, rel.Name, was), nil
}

// applied is a stored revision whose rollout is to be watched, and the
// description its record gets once the rollout is proven.
type applied struct {
	rel  *hrelease.Release
	done string
}

// apply installs or upgrades the release to sp, labelled for the target
// with outcome pending, then marks the record pending while its rollout is
// watched: a run killed from here on leaves a record the next run recovers,
// never a false "deployed". On a Helm failure the stored record, if any, is
// returned with the error.
func (u under) apply(ctx context.Context, h history, sp spec, verb string) (applied, error) {
	if err := u.held.Check(); err != nil {
		return applied{}, err
	}
	t := u.target
	desc := fmt.Sprintf("%s %s by %s", verb, sp.image.Digest, u.holder)
	labels := recordLabels(t.Name, verb, OutcomePending)
	maps.Copy(labels, sp.labels)
	if by := labelValue(u.holder); by != "" {
		labels[LabelBy] = by
	}
	post := keepReplicas(sp.r)
	var rel *hrelease.Release
	var err error
	install := len(h) == 0
	if install {
		in := action.NewInstall(u.cfg)
		in.ReleaseName, in.Namespace = t.Release, t.Namespace
		in.DisableOpenAPIValidation = true
		in.Description, in.Labels, in.PostRenderer = desc, labels, post
		rel, err = in.RunWithContext(ctx, sp.chart, sp.values)
	} else {
		up := action.NewUpgrade(u.cfg)
		up.Namespace = t.Namespace
		up.MaxHistory = pipeline.MaxHistory
		up.DisableOpenAPIValidation = true
		up.Description, up.Labels, up.PostRenderer = desc, replacing(labels), post
		rel, err = up.RunWithContext(ctx, t.Release, sp.chart, sp.values)
	}
	if err != nil {
		helmErr := fmt.Errorf("helm %s: %s", map[bool]string{true: "install", false: "upgrade"}[install], oneLine(err))
		if lerr := u.held.Check(); lerr != nil {
			return applied{}, fmt.Errorf("%w; %w; the release is %w", helmErr, lerr, ErrLeftPending)
		}
		if rel != nil {
			if stored, gerr := u.cfg.Releases.Get(t.Release, rel.Version); gerr == nil && stored.Info.Status == hrelease.StatusFailed {
				u.res.Revision, u.res.Status = stored.Version, string(stored.Info.Status)
				return applied{rel: stored}, helmErr
			}
		}
		return applied{}, helmErr
	}
	u.opts.step(StepUpgraded)
	u.res.Revision = rel.Version
	pending := hrelease.StatusPendingUpgrade
	if install {
		pending = hrelease.StatusPendingInstall
	}
	if err := u.held.Check(); err != nil {
		return applied{}, fmt.Errorf("%w; revision %d is %w", err, rel.Version, ErrLeftPending)
	}
	if err := u.setStatus(rel, pending, OutcomePending, "waiting for the rollout"); err != nil {
		return applied{}, err
	}
	u.res.Status, u.res.Outcome = string(pending), OutcomePending
	u.c.Logger.Info("upgraded, watching rollout", "target", t.Name, "release", t.Release, "revision", rel.Version, "timeout", u.timeout)
	u.opts.step(StepWatching)
	return applied{rel: rel, done: desc}, nil
}

// settle watches rel's rollout and records its outcome: proven and
// deployed, or failed. A lost lock stops the watch and leaves the record
// pending (ErrLeftPending): only the lock's holder may decide it.
func (u under) settle(ctx context.Context, a applied, deployment, phase string) error {
	rel := a.rel
	pods, werr := u.watch(ctx, deployment, phase)
	u.res.Pods = pods
	if lerr := u.held.Check(); lerr != nil {
		return fmt.Errorf("%w while watching the rollout; revision %d is %w (its rollout: %v)", lerr, rel.Version, ErrLeftPending, werr)
	}
	if werr == nil && phase == "rollout" && u.verify != nil {
		werr = u.verify(ctx, u.res)
		if lerr := u.held.Check(); lerr != nil {
			return fmt.Errorf("%w while verifying the rollout; revision %d is %w (its verification: %v)", lerr, rel.Version, ErrLeftPending, werr)
		}
	}
	u.opts.step(StepFinal)
	if werr != nil {
		return werr
	}
	if err := u.setStatus(rel, hrelease.StatusDeployed, OutcomeProven, a.done); err != nil {
		return fmt.Errorf("%w; revision %d is %w", err, rel.Version, ErrLeftPending)
	}
	u.res.Revision, u.res.Status, u.res.Outcome = rel.Version, string(hrelease.StatusDeployed), OutcomeProven
	return nil
}

// watch waits for the rollout; losing the lock stops it.
func (u under) watch(ctx context.Context, deployment, phase string) (kube.RolloutProgress, error) {
	if deployment == "" {
		return kube.RolloutProgress{}, nil
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-u.held.Lost():
			cancel(fmt.Errorf("%w while watching the rollout", lock.ErrLost))
		case <-wctx.Done():
		}
	}()
	var progress func(kube.RolloutProgress)
	if u.opts.Progress != nil {
		progress = func(p kube.RolloutProgress) {
			u.opts.Progress(Progress{Target: string(u.target.Name), Release: u.target.Release, Phase: phase, RolloutProgress: p})
		}
	}
	grace := u.opts.PullErrorGrace
	if grace <= 0 {
		grace = u.opts.scaled(kube.DefaultPullErrorGrace)
	}
	return kube.WatchRollout(wctx, u.c.Kube, kube.RolloutOptions{
		Namespace: u.target.Namespace, Name: deployment, Timeout: u.timeout, Budget: u.budget, Interval: u.opts.ProgressInterval,
		Progress: progress, MaxRestarts: u.opts.MaxRestarts, PullErrorGrace: grace, Now: u.c.Now, Logger: u.c.Logger,
	})
}

// budget derives the stall budget and waves of the Deployment being watched
// from its own spec: after a rollback, the spec it returned to.
func (j job) budget(dep *appsv1.Deployment) kube.Budget {
	r := rolloutParams(dep)
	return kube.Budget{Stall: j.opts.scaled(r.Wave()), Waves: r.Waves(), Batch: r.Batch()}
}

// setStatus writes a record's status, outcome and description in one write,
// labelled for the job's target.
func (u under) setStatus(rel *hrelease.Release, st hrelease.Status, o Outcome, desc string) error {
	if rel.Labels == nil {
		rel.Labels = map[string]string{}
	}
	rel.Labels[LabelTarget], rel.Labels[LabelOutcome] = string(u.target.Name), string(o)
	if o != OutcomePending {
		rel.Labels[LabelSettled] = strconv.FormatInt(u.c.Now().UnixMilli(), 10)
	}
	return setStatus(u.cfg, rel, st, desc)
}

// fail records a failed rollout of rel and returns the release to the last
// good revision of h (its Secret names included), so that what runs is what
// served before. It uninstalls only a release none of whose revisions ever
// served. It works on a context that outlives ctx's cancellation: an
// interrupted run still returns the release, but does not wait for it.
func (u under) fail(ctx context.Context, h history, rel *hrelease.Release, deployment string, cause error) error {
	name := u.target.Release
	base := fmt.Errorf("%s failed: %w", u.what(), cause)
	fctx, cancel := bounded(ctx, u.timeout+time.Minute)
	defer cancel()
	if err := u.held.Check(); err != nil {
		return errors.Join(base, fmt.Errorf("%w; revision %d is %w", err, rel.Version, ErrLeftPending))
	}
	if err := u.setStatus(rel, hrelease.StatusFailed, OutcomeFailed, "rollout failed: "+oneLine(cause)); err != nil {
		return errors.Join(base, err)
	}
	u.opts.step(StepFailed)
	u.res.Status, u.res.Outcome, u.res.Failed = string(hrelease.StatusFailed), OutcomeFailed, rel.Version
	to := h.lastGood()
	switch {
	case to == nil && h.neverGood():
		if err := u.held.Check(); err != nil {
			return errors.Join(base, err)
		}
		un := action.NewUninstall(u.cfg)
		un.DisableHooks = true
		if _, err := un.Run(name); err != nil {
			return errors.Join(base, fmt.Errorf("uninstall %s, none of whose revisions ever served: %s; uninstall it by hand: helm -n %s uninstall %s", name, oneLine(err), u.target.Namespace, name))
		}
		u.res.Revision, u.res.Status, u.res.Outcome = 0, "uninstalled", ""
		u.res.Pruned = append(u.res.Pruned, prune(fctx, u.c, u.cfg, u.target.Namespace)...)
		return fmt.Errorf("%s failed: %w; no revision of %s ever served, so it was %w (uninstalled): fix the image or values and deploy again", u.what(), cause, name, ErrRolledBack)
	case to == nil:
		return errors.Join(base, fmt.Errorf("release %s has records ringg-ci cannot classify and none known good (revisions %s): it was left as it is, revision %d marked failed; "+
			"roll back to a revision you know served with --revision N, or deploy a working image", name, revisionList(h.revisions()), rel.Version))
	case originOf(to) == OriginOldPipeline:
		if err := u.held.Check(); err != nil {
			return errors.Join(base, err)
		}
		// Helm's rollback would copy the old record's values (the old
		// pipeline's --set secrets among them) into a new record: put the
		// old record's objects back and mark it deployed again instead.
		if err := restoreOld(u.cfg, rel, to, u.target.Name); err != nil {
			return errors.Join(base, fmt.Errorf("return %s to revision %d (written by the old pipeline): %s; the old release's objects may be half restored: deploy again, or restore them by hand from that revision's manifest", name, to.Version, oneLine(err)))
		}
		u.opts.step(StepRestored)
		u.res.Revision, u.res.Status, u.res.Outcome = to.Version, string(hrelease.StatusDeployed), ""
		u.res.Pruned = append(u.res.Pruned, prune(fctx, u.c, u.cfg, u.target.Namespace)...)
		after := ""
		if ctx.Err() == nil {
			if _, err := u.watch(fctx, deployment, "rollback"); err != nil {
				after = fmt.Sprintf("; the old pipeline's revision did not become ready again either: %v", err)
			}
		}
		return fmt.Errorf("%s failed: %w; %w to revision %d (the old pipeline's record, deployed again)%s; fix the image or values and deploy again",
			u.what(), cause, ErrRolledBack, to.Version, after)
	}
	sp, err := fromRecord(to)
	if err != nil {
		return errors.Join(base, err)
	}
	back, err := u.apply(fctx, h, sp, verbRestore)
	if err != nil {
		return errors.Join(base, fmt.Errorf("return %s to its last good revision %d: %w; run `rollback --target %s --revision %d`", name, to.Version, err, u.target.Name, to.Version))
	}
	u.opts.step(StepRestored)
	u.res.SecretNames, u.res.Digest = sp.names, sp.image.Digest
	u.res.Pruned = append(u.res.Pruned, prune(fctx, u.c, u.cfg, u.target.Namespace)...)
	if ctx.Err() != nil {
		// A cancelled run returns the release but does not wait for it: the
		// record says what runs (deployed) and that nobody proved it.
		merr := u.setStatus(back.rel, hrelease.StatusDeployed, OutcomeInterrupted,
			fmt.Sprintf("returned to revision %d; its rollout was not watched: the run was cancelled", to.Version))
		u.res.Status, u.res.Outcome = string(hrelease.StatusDeployed), OutcomeInterrupted
		return errors.Join(fmt.Errorf("%s interrupted: %w; %w to revision %d as revision %d, whose rollout was not watched: status shows whether it completed",
			u.what(), cause, ErrRolledBack, to.Version, back.rel.Version), merr)
	}
	if err := u.settle(fctx, back, sp.r.deployment, "rollback"); err != nil {
		if errors.Is(err, ErrLeftPending) {
			return errors.Join(base, err)
		}
		merr := u.setStatus(back.rel, hrelease.StatusFailed, OutcomeFailed, fmt.Sprintf("rollout of the return to revision %d failed: %s", to.Version, oneLine(err)))
		u.res.Status, u.res.Outcome = string(hrelease.StatusFailed), OutcomeFailed
		return errors.Join(fmt.Errorf("%s failed: %w; returned to revision %d as revision %d, but that rollout did not complete either: %w; look at the pods (health, logs) before anything else",
			u.what(), cause, to.Version, back.rel.Version, err), merr)
	}
	return fmt.Errorf("%s failed: %w; %w to revision %d (recorded as revision %d); fix the image or values and deploy again",
		u.what(), cause, ErrRolledBack, to.Version, back.rel.Version)
}

// restoreOld returns the cluster from a failed revision to an old
// pipeline's record without writing a record of its own: the objects of the
// old record's manifest are applied over the failed revision's (what Helm's
// rollback does), and the old record is marked deployed again, labelled for
// target t. Its values, secrets included, stay where they were: in the old
// record only.
func restoreOld(cfg *action.Configuration, failed, old *hrelease.Release, t targets.Name) error {
	current, err := cfg.KubeClient.Build(strings.NewReader(failed.Manifest), false)
	if err != nil {
		return fmt.Errorf("read the manifest of revision %d: %w", failed.Version, err)
	}
	target, err := cfg.KubeClient.Build(strings.NewReader(old.Manifest), false)
	if err != nil {
		return fmt.Errorf("read the manifest of revision %d: %w", old.Version, err)
	}
	if err := target.Visit(ownedBy(old.Name, old.Namespace)); err != nil {
		return fmt.Errorf("label the objects of revision %d: %w", old.Version, err)
	}
	if _, err := cfg.KubeClient.Update(current, target, false); err != nil {
		return fmt.Errorf("apply the objects of revision %d: %w", old.Version, err)
	}
	if old.Labels == nil {
		old.Labels = map[string]string{}
	}
	old.Labels[LabelTarget] = string(t)
	return setStatus(cfg, old, hrelease.StatusDeployed, fmt.Sprintf("restored by ringg-ci after revision %d failed", failed.Version))
}

// ownedBy marks an object as Helm's own for a release, as Helm does before
// it applies one: an object the failed revision removed is created again
// with the labels and annotations that let the next upgrade adopt it.
func ownedBy(release, namespace string) cliresource.VisitorFunc {
	return func(info *cliresource.Info, err error) error {
		if err != nil {
			return err
		}
		m, err := meta.Accessor(info.Object)
		if err != nil {
			return err
		}
		labels := m.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["app.kubernetes.io/managed-by"] = "Helm"
		m.SetLabels(labels)
		ann := m.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann["meta.helm.sh/release-name"] = release
		ann["meta.helm.sh/release-namespace"] = namespace
		m.SetAnnotations(ann)
		return nil
	}
}

// prune deletes versioned Secrets no kept revision of any release in the
// namespace (nor a takeover record) references. Failures are logged: they
// never fail a release.
func prune(ctx context.Context, c Clients, cfg *action.Configuration, namespace string) []string {
	keep, err := keptSecretNames(ctx, c, cfg, namespace)
	if err != nil {
		c.Logger.Warn("prune secrets", "namespace", namespace, "error", err)
		return nil
	}
	if len(keep) == 0 {
		return nil
	}
	// MinAge spares a version another track's deploy has just applied and not
	// yet referenced from its release: canary and stable share the namespace
	// but not the lock.
	deleted, err := secrets.PruneWith(ctx, c.Kube, secrets.PruneOptions{
		Namespace: namespace, Keep: keep, MinAge: secrets.DefaultPruneMinAge, Clock: c.Now,
	})
	if err != nil {
		c.Logger.Warn("prune secrets", "namespace", namespace, "error", err)
	}
	if len(deleted) > 0 {
		c.Logger.Info("pruned secrets no kept revision references", "namespace", namespace, "secrets", deleted)
	}
	return deleted
}

// hearRecords makes cfg's record writes (Helm's and ours) steps of o:
// "record:<op>:<revision>:<status>", e.g. "record:create:2:pending-upgrade",
// so that a test can stop a run between two of Helm's writes.
func (o Options) hearRecords(cfg *action.Configuration) {
	if o.Step != nil && cfg.Releases != nil {
		cfg.Releases.Driver = steppedDriver{Driver: cfg.Releases.Driver, step: o.Step}
	}
}

type steppedDriver struct {
	driver.Driver
	step func(string)
}

func (d steppedDriver) Create(key string, rls *hrelease.Release) error {
	err := d.Driver.Create(key, rls)
	if err == nil {
		d.step(fmt.Sprintf("%s:create:%d:%s", StepRecord, rls.Version, rls.Info.Status))
	}
	return err
}

func (d steppedDriver) Update(key string, rls *hrelease.Release) error {
	err := d.Driver.Update(key, rls)
	if err == nil {
		d.step(fmt.Sprintf("%s:update:%d:%s", StepRecord, rls.Version, rls.Info.Status))
	}
	return err
}

func (d steppedDriver) Delete(key string) (*hrelease.Release, error) {
	rls, err := d.Driver.Delete(key)
	if err == nil && rls != nil {
		d.step(fmt.Sprintf("%s:delete:%d:%s", StepRecord, rls.Version, rls.Info.Status))
	}
	return rls, err
}
