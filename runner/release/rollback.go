package release

import (
	"context"
	"errors"
	"fmt"
	"slices"

	helmchart "helm.sh/helm/v3/pkg/chart"
	hrelease "helm.sh/helm/v3/pkg/release"
	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// Rollback returns a target to a known good state: stable to its previous
// good (or a given) revision, the canary to the image and Secrets stable
// runs. It works when the release is stuck pending after an interrupted run,
// and a rollback whose rollout fails returns to where it started.
type Rollback struct {
	Clients Clients
	Plan    pipeline.RollbackPlan
	Options Options
}

// Run rolls back under the release's lock and watches the rollout.
func (r *Rollback) Run(ctx context.Context) (*Result, error) {
	c, err := r.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	p := r.Plan
	t := p.Target
	c.Logger = c.Logger.With("target", t.Name)
	what := fmt.Sprintf("rollback %s (release %s in %s)", t.Name, t.Release, t.Namespace)
	cfg, err := c.helmConfig(t.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	r.Options.hearRecords(cfg)
	var ch *helmchart.Chart
	if p.ChartDir != "" {
		if ch, err = chart.Load(p.ChartDir); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	j := &job{c: c, cfg: cfg, target: t, timeout: p.Timeout, holder: p.Holder, verb: verbRollback, opts: r.Options}
	if p.Mode == pipeline.ToPromoted {
		err = r.toPromoted(ctx, j, ch)
	} else {
		err = r.toRevision(ctx, j, ch)
	}
	if err == nil {
		err = j.prepare(ctx)
	}
	if err == nil {
		err = j.guardTakeover(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return j.run(ctx)
}

// toPromoted makes j upgrade the canary with its own values files and the
// digest and Secret names of the last good stable revision.
func (r *Rollback) toPromoted(ctx context.Context, j *job, ch *helmchart.Chart) error {
	p := r.Plan
	if p.Source == nil || ch == nil {
		return errors.New("the plan names no source target or chart: build it with pipeline.NewRollback")
	}
	sh, err := readHistory(j.cfg, p.Source.Release)
	if err != nil {
		return err
	}
	if err := sh.checkOwner(*p.Source, fingerprint{}, j.c.Cluster); err != nil {
		return err
	}
	src := sh.lastGood()
	if src == nil {
		return fmt.Errorf("release %s of %s has no good revision to return to: roll %s back to a revision instead", p.Source.Release, p.Source.Name, p.Target.Name)
	}
	digest, names, bundle := digestOf(src), secretNamesOf(src), (*secrets.Bundle)(nil)
	if originOf(src) == OriginOldPipeline {
		// The old pipeline's record names a tag and fixed-name Secrets: run
		// the digest stable's pods run, with an immutable copy of the Secrets
		// they read. Nothing of the old record's values is used.
		if digest, bundle, err = r.fromOldPipeline(ctx, j.c, src); err != nil {
			return err
		}
		n := bundle.Names()
		names = pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
	}
	j.bundle = bundle
	j.desire = withExtras(fromChart(ch, p.ChartDir, p.ValuesFiles, p.Target, pipeline.Image{Repository: p.Target.Image, Digest: digest},
		func(history) pipeline.SecretNames { return names }), recordExtras(commitOf(src), ""))
	return nil
}

// fromOldPipeline resolves what a release the old pipeline deployed runs:
// the one digest its pods run (their image IDs), and content-named copies of
// the Secrets its Deployment reads.
func (r *Rollback) fromOldPipeline(ctx context.Context, c Clients, src *hrelease.Release) (string, *secrets.Bundle, error) {
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

// toRevision makes j return the release to p.Revision or, by default, to
// the good revision history.rollbackTarget picks, decided again under the
// lock. A ringg-ci revision returns with its own chart and values; the old
// pipeline's revision only through its takeover record (by digest, with
// copies of its Secrets), never with its values.
func (r *Rollback) toRevision(ctx context.Context, j *job, ch *helmchart.Chart) error {
	p := r.Plan
	t := p.Target
	if ch != nil {
		want, err := targetFingerprint(ch, p.ChartDir, t)
		if err != nil {
			return err
		}
		j.want = want
	}
	tk, err := readTakeover(ctx, j.c.Kube, t.Namespace, t.Release)
	if err != nil {
		return err
	}
	j.desire = func(h history) (spec, error) {
		to, err := h.rollbackTarget(p.Revision)
		if err != nil {
			return spec{}, err
		}
		if originOf(to) == OriginRinggCI {
			return fromRecord(to)
		}
		if !tk.usable() || tk.Revision != to.Version || ch == nil {
			return spec{}, oldRevisionRefused(to, h, tk)
		}
		image := pipeline.Image{Repository: t.Image, Digest: tk.Digest}
		return fromChart(ch, p.ChartDir, t.ValuesFiles, t, image, func(history) pipeline.SecretNames { return tk.SecretNames })(h)
	}
	return nil
}

// targetFingerprint renders t's own values to learn what its release looks
// like.
func targetFingerprint(ch *helmchart.Chart, dir string, t targets.Target) (fingerprint, error) {
	sp, err := fromChart(ch, dir, t.ValuesFiles, t, pipeline.Image{Repository: t.Image, Digest: pipeline.PlaceholderDigest},
		func(history) pipeline.SecretNames { return pipeline.SecretNames{} })(nil)
	if err != nil {
		return fingerprint{}, err
	}
	return fingerprint{Repository: t.Image, Hosts: fingerprintOf(sp.r.manifests.Text).Hosts}, nil
}

// ErrOldPipelineRevision means a rollback was asked to return to a revision
// the old pipeline wrote for which no takeover record says what it ran.
var ErrOldPipelineRevision = errors.New("revision written by the old pipeline")

// oldRevisionRefused refuses a rollback to the old pipeline's revision rel
// that its takeover record tk (nil when none) cannot serve. Helm's rollback
// would copy the record's values into a new one: for the old pipeline's
// records that stores again, and puts back into the Deployment's env, the
// secrets its workflow passed with --set, and runs an image by tag.
func oldRevisionRefused(rel *hrelease.Release, h history, tk *TakeoverRecord) error {
	var ours []int
	for _, r := range h {
		if originOf(r) == OriginRinggCI && good(r) && r.Version != h.last().Version {
			ours = append(ours, r.Version)
		}
	}
	slices.Sort(ours)
	todo := "no other good revision ringg-ci wrote is kept to roll back to"
	if len(ours) > 0 {
		todo = "roll back to a revision ringg-ci wrote with --revision N (good: " + revisionList(ours) + ")"
	}
	why := "no takeover record says what it ran (the takeover happened before ringg-ci kept one)"
	switch {
	case tk != nil && tk.Revision != rel.Version:
		why = fmt.Sprintf("the takeover record is of revision %d", tk.Revision)
	case tk != nil && tk.Missing != "":
		why = "its takeover record is incomplete: " + tk.Missing
	}
	tag := imageTagOf(rel)
	return fmt.Errorf("%w: revision %d of release %s was written by the old pipeline (image tag %q, no digest; %d values given with -f and --set, which may hold secrets), and %s: "+
		"ringg-ci does not copy those values into a new record nor run an image by tag; %s, "+
		"or deploy the image it ran, by digest, to the canary and promote it (find the digest with: gcloud artifacts docker images describe REPOSITORY:%s), "+
		"or go back to the old pipeline (docs/operations.md, \"First run in production\")",
		ErrOldPipelineRevision, rel.Version, rel.Name, tag, len(leaves(rel.Config)), why, todo, tag)
}

// rolloutOfManifest reads the Deployment of a release record.
func rolloutOfManifest(manifest string) (rendered, error) {
	dep := manifestDeployment(manifest)
	if dep == nil {
		return rendered{}, nil
	}
	return rendered{manifests: chart.Manifests{Text: manifest}, deployment: dep.Name, rollout: rolloutParams(dep), replicasSet: dep.Spec.Replicas != nil, spec: dep}, nil
}
