package release

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	helmchart "helm.sh/helm/v3/pkg/chart"
	hrelease "helm.sh/helm/v3/pkg/release"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	cliresource "k8s.io/cli-runtime/pkg/resource"

	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/kube"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/ci/targets"
)

// ErrRolledBack means a release's rollout failed and the release was returned
// to its previous revision (or uninstalled after a failed first install).
var ErrRolledBack = errors.New("rolled back")

// Result is what deploy, promote and rollback did.
type Result struct {
	Target    targets.Name `json:"target"`
	Release   string       `json:"release"`
	Namespace string       `json:"namespace"`
	// Revision is the release's revision when the verb ended; zero when a
	// failed first install was uninstalled.
	Revision int `json:"revision"`
	// Previous is the deployed revision before the verb ran.
	Previous int `json:"previousRevision,omitempty"`
	// Status is the recorded status of Revision (deployed, failed...).
	Status      string               `json:"status"`
	Image       string               `json:"image,omitempty"`
	Digest      string               `json:"digest,omitempty"`
	SecretNames pipeline.SecretNames `json:"secretNames"`
	// SecretsApplied lists the Secrets of a new bundle and what apply did.
	SecretsApplied []secrets.Status     `json:"secretsApplied,omitempty"`
	Pods           kube.RolloutProgress `json:"pods"`
	// Recovered says which interrupted record was repaired first.
	Recovered string        `json:"recovered,omitempty"`
	Pruned    []string      `json:"prunedSecrets,omitempty"`
	Timeout   time.Duration `json:"timeout"`
	Duration  time.Duration `json:"duration"`
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
}

// scaled is d of the Deployment's own time in this run's time.
func (o Options) scaled(d time.Duration) time.Duration { return pipeline.Scaled(d, o.TimeScale) }

// job is one upgrade of one release, shared by deploy, promote and the canary
// rollback: lock, recover, apply Secrets, upgrade, watch, roll back on failure.
type job struct {
	c        Clients
	cfg      *action.Configuration
	target   targets.Target
	chart    *helmchart.Chart
	chartDir string
	files    []string
	image    pipeline.Image
	// names gives the Secret names from the release's deployed record (nil
	// when none), called again under the lock.
	names  func(deployed *hrelease.Release) pipeline.SecretNames
	bundle *secrets.Bundle
	// timeout is the plan's, or zero until prepare derives it.
	timeout time.Duration
	holder  string
	verb    string
	opts    Options
}

// values computes the release's values and renders them, as a check.
func (j job) values(deployed *hrelease.Release) (map[string]any, pipeline.SecretNames, rendered, error) {
	names := j.names(deployed)
	vals, err := chart.Values(j.chartDir, j.files, pipeline.ComputedValues(j.image, names))
	if err != nil {
		return nil, names, rendered{}, err
	}
	m, err := chart.Render(j.chart, vals, chart.RenderOptions{Release: j.target.Release, Namespace: j.target.Namespace})
	if err != nil {
		return nil, names, rendered{}, err
	}
	r, err := rolloutOf(m)
	return vals, names, r, err
}

// deployedRecord returns the deployed record of a release, or nil.
func deployedRecord(cfg *action.Configuration, name string) *hrelease.Release {
	rel, err := cfg.Releases.Deployed(name)
	if err != nil {
		return nil
	}
	return rel
}

// prepare validates and renders a job before anything changes, and derives
// its overall timeout from the rendered Deployment unless the plan gave one.
func (j *job) prepare() error {
	_, _, r, err := j.values(deployedRecord(j.cfg, j.target.Release))
	if err != nil {
		return err
	}
	if r.deployment != "" {
		if err := r.rollout.Check(); err != nil {
			return fmt.Errorf("deployment %s: %w", r.deployment, err)
		}
	}
	if j.timeout == 0 {
		j.timeout = j.opts.scaled(pipeline.RolloutTimeout(r.rollout))
	}
	return nil
}

func (j job) what() string {
	return fmt.Sprintf("%s %s (release %s in %s)", j.verb, j.target.Name, j.target.Release, j.target.Namespace)
}

// takeLock acquires a release's lock; o's clock and logger come from c.
func takeLock(ctx context.Context, c Clients, o lock.Options) (*lock.Held, func(), error) {
	o.Clock, o.Logger = c.Now, c.Logger
	held, err := lock.Acquire(ctx, c.Kube, o)
	if err != nil {
		return nil, nil, err
	}
	unlock := func() {
		rctx, cancel := bounded(ctx, 15*time.Second)
		defer cancel()
		if err := held.Release(rctx); err != nil {
			c.Logger.Warn("release lock", "release", o.Release, "error", err)
		}
	}
	return held, unlock, nil
}

// run executes a prepared job.
func (j job) run(ctx context.Context) (*Result, error) {
	c, cfg, timeout := j.c, j.cfg, j.timeout
	start := c.Now()
	name := j.target.Release
	res := &Result{Target: j.target.Name, Release: name, Namespace: j.target.Namespace, Image: j.image.String(), Digest: j.image.Digest, Timeout: timeout}
	defer func() { res.Duration = c.Now().Sub(start) }()

	held, unlock, err := takeLock(ctx, c, lock.Options{Namespace: j.target.Namespace, Release: name, Holder: j.holder, TTL: j.opts.LockTTL})
	if err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	defer unlock()
	var prev *hrelease.Release
	if res.Recovered, prev, err = recoverPending(cfg, name, j.holder, c.Logger); err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	deployed := deployedRecord(cfg, name)
	if deployed != nil {
		res.Previous = deployed.Version
	}
	vals, names, r, err := j.values(deployed)
	if err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	res.SecretNames = names
	if j.bundle != nil && !j.bundle.Empty() {
		applied, err := secrets.Apply(ctx, c.Kube, *j.bundle)
		res.SecretsApplied = applied.Secrets
		if err != nil {
			return res, fmt.Errorf("%s: %w", j.what(), err)
		}
	}
	desc := fmt.Sprintf("%s %s by %s", j.verb, j.image.Digest, j.holder)
	var rel *hrelease.Release
	if prev == nil {
		in := action.NewInstall(cfg)
		in.ReleaseName, in.Namespace = name, j.target.Namespace
		in.DisableOpenAPIValidation = true
		in.Description = desc
		rel, err = in.RunWithContext(ctx, j.chart, vals)
	} else {
		up := action.NewUpgrade(cfg)
		up.Namespace = j.target.Namespace
		up.MaxHistory = pipeline.MaxHistory
		up.DisableOpenAPIValidation = true
		up.Description = desc
		rel, err = up.RunWithContext(ctx, name, j.chart, vals)
	}
	if err != nil {
		helmErr := fmt.Errorf("helm %s: %s", map[bool]string{true: "install", false: "upgrade"}[prev == nil], oneLine(err))
		// A revision Helm stored and marked failed may have changed some
		// objects: roll back as for a failed rollout. Otherwise Helm stopped
		// before changing anything.
		if rel != nil {
			if stored, gerr := cfg.Releases.Get(name, rel.Version); gerr == nil && stored.Info.Status == hrelease.StatusFailed {
				res.Revision, res.Status = stored.Version, string(stored.Info.Status)
				return res, j.fail(ctx, failure{held: held, rel: stored, deployed: deployed, deployment: r.deployment, cause: helmErr}, res)
			}
		}
		return res, fmt.Errorf("%s: %w", j.what(), helmErr)
	}
	res.Revision = rel.Version
	// Until the rollout is proven the record stays pending: a run killed while
	// watching leaves a record the next run recovers, never a false "deployed".
	pending := hrelease.StatusPendingUpgrade
	if prev == nil {
		pending = hrelease.StatusPendingInstall
	}
	if err := setStatus(cfg, rel, pending, "waiting for the rollout"); err != nil {
		return res, fmt.Errorf("%s: %w", j.what(), err)
	}
	c.Logger.Info("upgraded, watching rollout", "target", j.target.Name, "release", name, "revision", rel.Version, "timeout", timeout)

	// Pruning depends on the stored records, not on the rollout's outcome:
	// it runs while the rollout is watched, off the deploy's critical path.
	pruned := make(chan []string, 1)
	go func() { pruned <- prune(ctx, c, cfg, j.target.Namespace) }()
	pods, werr := j.watch(ctx, held, r.deployment, "rollout")
	res.Pods = pods
	early := <-pruned
	if werr == nil {
		res.Pruned = early
		if err := setStatus(cfg, rel, hrelease.StatusDeployed, desc); err != nil {
			return res, fmt.Errorf("%s: %w", j.what(), err)
		}
		res.Status = string(hrelease.StatusDeployed)
		return res, nil
	}
	err = j.fail(ctx, failure{held: held, rel: rel, deployed: deployed, deployment: r.deployment, cause: werr}, res)
	res.Pruned = append(early, res.Pruned...)
	return res, err
}

// watch waits for the rollout; losing the lock stops it.
func (j job) watch(ctx context.Context, held *lock.Held, deployment, phase string) (kube.RolloutProgress, error) {
	c := j.c
	if deployment == "" {
		return kube.RolloutProgress{}, nil
	}
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-held.Lost():
			cancel(fmt.Errorf("%w while watching the rollout", lock.ErrLost))
		case <-wctx.Done():
		}
	}()
	var progress func(kube.RolloutProgress)
	if j.opts.Progress != nil {
		progress = func(p kube.RolloutProgress) {
			j.opts.Progress(Progress{Target: string(j.target.Name), Release: j.target.Release, Phase: phase, RolloutProgress: p})
		}
	}
	grace := j.opts.PullErrorGrace
	if grace <= 0 {
		grace = j.opts.scaled(kube.DefaultPullErrorGrace)
	}
	return kube.WatchRollout(wctx, c.Kube, kube.RolloutOptions{
		Namespace: j.target.Namespace, Name: deployment, Timeout: j.timeout, Budget: j.budget, Interval: j.opts.ProgressInterval,
		Progress: progress, MaxRestarts: j.opts.MaxRestarts, PullErrorGrace: grace, Now: c.Now, Logger: c.Logger,
	})
}

// budget derives the stall budget and waves of the Deployment being watched
// from its own spec: after a rollback, the spec it returned to.
func (j job) budget(dep *appsv1.Deployment) kube.Budget {
	r := rolloutParams(dep)
	return kube.Budget{Stall: j.opts.scaled(r.Wave()), Waves: r.Waves(), Batch: r.Batch()}
}

type failure struct {
	held       *lock.Held
	rel        *hrelease.Release
	deployed   *hrelease.Release
	deployment string
	cause      error
}

// fail records a failed rollout and returns the release to its previous
// deployed revision, or uninstalls a first install, so that the release's
// record matches what runs. It works on a context that outlives ctx's
// cancellation: an interrupted deploy still rolls back.
func (j job) fail(ctx context.Context, f failure, res *Result) error {
	c, cfg := j.c, j.cfg
	fctx, cancel := bounded(ctx, j.timeout+time.Minute)
	defer cancel()
	name := j.target.Release
	base := fmt.Errorf("%s failed: %w", j.what(), f.cause)
	if err := setStatus(cfg, f.rel, hrelease.StatusFailed, "rollout failed: "+oneLine(f.cause)); err != nil {
		return errors.Join(base, err)
	}
	res.Status = string(hrelease.StatusFailed)
	if f.deployed == nil {
		un := action.NewUninstall(cfg)
		un.DisableHooks = true
		if _, err := un.Run(name); err != nil {
			return errors.Join(base, fmt.Errorf("uninstall failed first install of %s: %s; uninstall it by hand: helm -n %s uninstall %s", name, oneLine(err), j.target.Namespace, name))
		}
		res.Revision, res.Status = 0, "uninstalled"
		res.Pruned = prune(fctx, c, cfg, j.target.Namespace)
		return fmt.Errorf("%s failed: %w; the first install was %w (uninstalled): fix the image or values and deploy again", j.what(), f.cause, ErrRolledBack)
	}
	if originOf(f.deployed) == OriginOldPipeline {
		// Helm's rollback would copy the old record's values (the old
		// pipeline's --set secrets among them) into a new record: put the
		// old record's objects back and mark it deployed again instead.
		if err := restoreOld(cfg, f.rel, f.deployed); err != nil {
			return errors.Join(base, fmt.Errorf("return %s to revision %d (written by the old pipeline): %s; the old release's objects may be half restored: deploy again, or restore them by hand from that revision's manifest", name, f.deployed.Version, oneLine(err)))
		}
		res.Revision, res.Status = f.deployed.Version, string(hrelease.StatusDeployed)
	} else {
		rb := action.NewRollback(cfg)
		rb.Version = f.deployed.Version
		rb.MaxHistory = pipeline.MaxHistory
		if err := rb.Run(name); err != nil {
			return errors.Join(base, fmt.Errorf("roll %s back to revision %d: %s; roll back by hand: helm -n %s rollback %s %d", name, f.deployed.Version, oneLine(err), j.target.Namespace, name, f.deployed.Version))
		}
		if now, _ := last(cfg, name); now != nil {
			res.Revision, res.Status = now.Version, string(now.Info.Status)
		}
	}
	res.Pruned = prune(fctx, c, cfg, j.target.Namespace)
	after := ""
	if ctx.Err() == nil {
		if _, err := j.watch(fctx, f.held, f.deployment, "rollback"); err != nil {
			after = fmt.Sprintf("; the rollback's own rollout did not complete either: %v", err)
		}
	}
	recorded := fmt.Sprintf("recorded as revision %d", res.Revision)
	if res.Revision == f.deployed.Version {
		recorded = "the old pipeline's record, deployed again"
	}
	return fmt.Errorf("%s failed: %w; %w to revision %d (%s)%s; fix the image or values and deploy again",
		j.what(), f.cause, ErrRolledBack, f.deployed.Version, recorded, after)
}

// restoreOld returns the cluster from a failed revision to an old
// pipeline's record without writing a record of its own: the objects of the
// old record's manifest are applied over the failed revision's (what Helm's
// rollback does), and the old record is marked deployed again. Its values,
// secrets included, stay where they were: in the old record only.
func restoreOld(cfg *action.Configuration, failed, old *hrelease.Release) error {
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
// namespace references. Failures are logged: they never fail a release.
func prune(ctx context.Context, c Clients, cfg *action.Configuration, namespace string) []string {
	keep, err := keptSecretNames(cfg)
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
