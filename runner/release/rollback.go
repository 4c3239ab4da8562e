package release

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"helm.sh/helm/v3/pkg/action"
	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/lock"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// Rollbacker returns a target to a known good state: stable to its previous
// (or a given) revision, the canary to the image and Secrets stable runs.
// It works when the release is stuck pending after an interrupted run.
type Rollbacker struct {
	Clients Clients
	Plan    pipeline.RollbackPlan
	Options Options
}

// Run rolls back under the release's lock and watches the rollout.
func (r *Rollbacker) Run(ctx context.Context) (*Result, error) {
	c, err := r.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	p := r.Plan
	t := p.Target
	what := fmt.Sprintf("rollback %s (release %s in %s)", t.Name, t.Release, t.Namespace)
	cfg, err := c.helmConfig(t.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if p.Mode == pipeline.ToPromoted {
		return r.toPromoted(ctx, c, cfg, what)
	}
	return r.toRevision(ctx, c, cfg, what)
}

// toPromoted upgrades the canary with its own values files and the digest
// and Secret names of the deployed stable release.
func (r *Rollbacker) toPromoted(ctx context.Context, c Clients, cfg *action.Configuration, what string) (*Result, error) {
	p := r.Plan
	if p.Source == nil {
		return nil, fmt.Errorf("%s: the plan names no source target: build it with pipeline.NewRollback", what)
	}
	src := deployedRecord(cfg, p.Source.Release)
	if src == nil {
		return nil, fmt.Errorf("%s: release %s of %s has no deployed revision to return to: roll %s back to a revision instead", what, p.Source.Release, p.Source.Name, p.Target.Name)
	}
	ch, err := chart.Load(p.ChartDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	digest, names, bundle := digestOf(src), secretNamesOf(src), (*secrets.Bundle)(nil)
	if originOf(src) == OriginOldPipeline {
		// The old pipeline's record names a tag and fixed-name Secrets: run
		// the digest stable's pods run, with an immutable copy of the Secrets
		// they read. Nothing of the old record's values is used.
		if digest, bundle, err = r.fromOldPipeline(ctx, c, src); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		n := bundle.Names()
		names = pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
	}
	j := &job{
		c: c, cfg: cfg, target: p.Target, chart: ch, chartDir: p.ChartDir, files: p.ValuesFiles,
		image:   pipeline.Image{Repository: p.Target.Image, Digest: digest},
		names:   func(*hrelease.Release) pipeline.SecretNames { return names },
		bundle:  bundle,
		timeout: p.Timeout, holder: p.Holder, verb: "rollback", opts: r.Options,
	}
	if err := j.prepare(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := j.guardTakeover(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return j.run(ctx)
}

// fromOldPipeline resolves what a release the old pipeline deployed runs:
// the one digest its pods run (their image IDs), and content-named copies of
// the Secrets its Deployment reads.
func (r *Rollbacker) fromOldPipeline(ctx context.Context, c Clients, src *hrelease.Release) (string, *secrets.Bundle, error) {
	p := r.Plan
	w, err := observe(ctx, c.Kube, src)
	if err != nil {
		return "", nil, err
	}
	if w.deployment == nil {
		return "", nil, fmt.Errorf("release %s of %s (revision %d, written by the old pipeline) has no Deployment in %s: roll %s back to a revision instead",
			src.Name, p.Source.Name, src.Version, src.Namespace, p.Target.Name)
	}
	ds := digests(w.pods)
	digest, ok := oneDigest(ds)
	if !ok {
		return "", nil, fmt.Errorf("release %s of %s (revision %d, image tag %q, written by the old pipeline) records no digest, and its pods do not run one known digest (%s): "+
			"wait for its rollout to settle, or deploy the canary with --image REPOSITORY@sha256:…", src.Name, p.Source.Name, src.Version, imageTagOf(src), shortList(ds))
	}
	from := liveSecretNames(&w.deployment.Spec.Template.Spec)
	b, err := secrets.Adopt(ctx, c.Kube, src.Namespace, from, secrets.DefaultNames())
	if err != nil {
		return "", nil, err
	}
	return digest, &b, nil
}

// liveSecretNames reads which Secret a pod spec loads as environment
// (envFrom) and which it mounts creds.json from.
func liveSecretNames(spec *corev1.PodSpec) secrets.Names {
	var n secrets.Names
	for _, ct := range spec.Containers {
		for _, ef := range ct.EnvFrom {
			if ef.SecretRef != nil && n.AppEnv == "" {
				n.AppEnv = ef.SecretRef.Name
			}
		}
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil && n.GCPCreds == "" {
			n.GCPCreds = v.Secret.SecretName
		}
	}
	return n
}

// toRevision is Helm's rollback to p.Revision or to the revision deployed
// before the current one.
func (r *Rollbacker) toRevision(ctx context.Context, c Clients, cfg *action.Configuration, what string) (*Result, error) {
	p := r.Plan
	t := p.Target
	name := t.Release
	start := c.Now()
	res := &Result{Target: t.Name, Release: name, Namespace: t.Namespace}
	defer func() { res.Duration = c.Now().Sub(start) }()
	// Validate before the lock: the history exists and has the revision, and
	// ringg-ci wrote it.
	if _, err := rollbackTarget(cfg, name, p.Revision); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	held, unlock, err := takeLock(ctx, c, lock.Options{Namespace: t.Namespace, Release: name, Holder: p.Holder, TTL: r.Options.LockTTL})
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	defer unlock()
	if res.Recovered, _, err = recoverPending(cfg, name, p.Holder, c.Logger); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	if d := deployedRecord(cfg, name); d != nil {
		res.Previous = d.Version
	}
	to, err := rollbackTarget(cfg, name, p.Revision)
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	res.Digest, res.SecretNames = digestOf(to), secretNamesOf(to)
	rd, err := rolloutOfManifest(to.Manifest)
	if err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = pipeline.RolloutTimeout(rd.rollout)
	}
	res.Timeout = timeout
	rb := action.NewRollback(cfg)
	rb.Version = to.Version
	rb.MaxHistory = pipeline.MaxHistory
	if err := rb.Run(name); err != nil {
		if now, _ := last(cfg, name); now != nil {
			res.Revision, res.Status = now.Version, string(now.Info.Status)
		}
		return res, fmt.Errorf("%s: helm rollback to revision %d: %s", what, to.Version, oneLine(err))
	}
	now, err := last(cfg, name)
	if err != nil || now == nil {
		return res, fmt.Errorf("%s: read the rolled back record: %w", what, err)
	}
	res.Revision = now.Version
	desc := fmt.Sprintf("Rollback to %d by %s", to.Version, p.Holder)
	if err := setStatus(cfg, now, hrelease.StatusPendingRollback, "waiting for the rollout of the rollback"); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	j := job{c: c, cfg: cfg, target: t, opts: r.Options, timeout: timeout}
	pods, werr := j.watch(ctx, held, rd.deployment, "rollback")
	res.Pods = pods
	if werr != nil {
		fctx, cancel := bounded(ctx, 30*time.Second)
		defer cancel()
		err := setStatus(cfg, now, hrelease.StatusFailed, "rollback rollout failed: "+oneLine(werr))
		res.Status = string(hrelease.StatusFailed)
		res.Pruned = prune(fctx, c, cfg, t.Namespace)
		return res, errors.Join(fmt.Errorf("%s to revision %d failed: %w; look at the pods named above, then roll back to another revision", what, to.Version, werr), err)
	}
	if err := setStatus(cfg, now, hrelease.StatusDeployed, desc); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	res.Status = string(hrelease.StatusDeployed)
	res.Pruned = prune(ctx, c, cfg, t.Namespace)
	return res, nil
}

// rollbackTarget returns the record to roll back to: revision, or the newest
// revision that was deployed (now superseded) before the current deployed
// one (or before the last record when none is deployed).
func rollbackTarget(cfg *action.Configuration, name string, revision int) (*hrelease.Release, error) {
	hist, err := cfg.Releases.History(name)
	if err != nil || len(hist) == 0 {
		return nil, fmt.Errorf("release %s has no history (%v): there is nothing to roll back to", name, err)
	}
	if revision > 0 {
		for _, h := range hist {
			if h.Version == revision {
				return onlyRinggCI(h, hist)
			}
		}
		var have []int
		for _, h := range hist {
			have = append(have, h.Version)
		}
		return nil, fmt.Errorf("release %s has no revision %d (kept revisions: %v): pick one of those", name, revision, have)
	}
	current := 0
	for _, h := range hist {
		if h.Info.Status == hrelease.StatusDeployed {
			current = max(current, h.Version)
		}
	}
	if current == 0 {
		for _, h := range hist {
			current = max(current, h.Version)
		}
		current++ // consider every record older than "now"
	}
	var best *hrelease.Release
	for _, h := range hist {
		if h.Version < current && h.Info.Status == hrelease.StatusSuperseded && (best == nil || h.Version > best.Version) {
			best = h
		}
	}
	if best == nil {
		return nil, fmt.Errorf("release %s has no earlier deployed revision than %d: roll back to a given revision", name, current)
	}
	return onlyRinggCI(best, hist)
}

// ErrOldPipelineRevision means a rollback was asked to return to a revision
// the old pipeline wrote, which ringg-ci never does.
var ErrOldPipelineRevision = errors.New("revision written by the old pipeline")

// onlyRinggCI refuses a revision ringg-ci did not write. Helm's rollback
// copies a record's values into a new one and renders them: for the old
// pipeline's records that stores again, and puts back into the
// Deployment's env, the secrets its workflow passed with --set, and runs an
// image by tag against fixed-name Secrets whose content nobody can vouch
// for.
func onlyRinggCI(rel *hrelease.Release, hist []*hrelease.Release) (*hrelease.Release, error) {
	if originOf(rel) == OriginRinggCI {
		return rel, nil
	}
	var ours []int
	for _, h := range hist {
		if originOf(h) == OriginRinggCI && h.Info.Status == hrelease.StatusSuperseded {
			ours = append(ours, h.Version)
		}
	}
	slices.Sort(ours)
	todo := "no other revision ringg-ci wrote is kept to roll back to"
	if len(ours) > 0 {
		todo = "roll back to a revision ringg-ci wrote with --revision N (kept: " + revisionList(ours) + ")"
	}
	tag := imageTagOf(rel)
	return nil, fmt.Errorf("%w: revision %d of release %s was written by the old pipeline (image tag %q, no digest; %d values given with -f and --set, which may hold secrets): "+
		"ringg-ci does not roll back to it, since that would copy those values into a new record and run an image by tag; %s, "+
		"or deploy the image it ran, by digest, to the canary and promote it (find the digest with: gcloud artifacts docker images describe REPOSITORY:%s), "+
		"or go back to the old pipeline (docs/operations.md, \"First run in production\")",
		ErrOldPipelineRevision, rel.Version, rel.Name, tag, len(leaves(rel.Config)), todo, tag)
}

// rolloutOfManifest reads the Deployment of a release record.
func rolloutOfManifest(manifest string) (rendered, error) {
	dep := manifestDeployment(manifest)
	if dep == nil {
		return rendered{}, nil
	}
	return rendered{deployment: dep.Name, rollout: rolloutParams(dep)}, nil
}
