package release

import (
	"context"
	"errors"
	"fmt"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/secrets"
)

// Deploy upgrades (or installs) a target's release as its plan says,
// watches the rollout and rolls back when it fails.
type Deploy struct {
	Clients Clients
	Plan    pipeline.DeployPlan
	// Secrets is the bundle to apply before the upgrade; it must be set exactly
	// when the plan's Secrets is pipeline.SecretsNew, with the plan's names.
	Secrets *secrets.Bundle
	Options Options
	// Calls, when set, are placed on every pod once the rollout is done; a
	// failed call fails the rollout, which returns the release to its last
	// good revision. The command passes the target's verification
	// (Plan.Target.Verification.Calls).
	Calls *targets.Calls
}

// Run validates and renders the release, refuses a takeover of a release
// the old pipeline wrote that would change what users rely on (see
// ErrTakeoverRefused), then, under the release's lock:
// recovers a record an interrupted run left pending, applies the new Secrets,
// upgrades, waits for the rollout and, on failure, rolls back. Versioned
// Secrets no kept revision references are pruned at the end.
func (d *Deploy) Run(ctx context.Context) (*Result, error) {
	c, err := d.Clients.withDefaults()
	if err != nil {
		return nil, err
	}
	j, err := d.job(c)
	if err != nil {
		return nil, err
	}
	if err := j.prepare(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", j.what(), err)
	}
	if err := j.guardTakeover(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", j.what(), err)
	}
	return j.run(ctx)
}

// job checks the plan against the bundle and loads the chart.
func (d *Deploy) job(c Clients) (*job, error) {
	p := d.Plan
	t := p.Target
	what := fmt.Sprintf("deploy %s (release %s in %s)", t.Name, t.Release, t.Namespace)
	var errs []error
	switch {
	case p.Secrets == pipeline.SecretsNew && d.Secrets == nil:
		errs = append(errs, errors.New("the plan applies new secrets but no bundle was given"))
	case p.Secrets != pipeline.SecretsNew && d.Secrets != nil:
		errs = append(errs, errors.New("a secrets bundle was given but the plan keeps the current secrets: build the plan with NewSecrets"))
	case d.Secrets != nil:
		if n := d.Secrets.Names(); (pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}) != p.SecretNames {
			errs = append(errs, errors.New("the secrets bundle's names differ from the plan's: build the plan from the bundle"))
		}
		if d.Secrets.Namespace() != t.Namespace {
			errs = append(errs, fmt.Errorf("the secrets bundle is for namespace %s, the release is in %s", d.Secrets.Namespace(), t.Namespace))
		}
	}
	if p.Image.Digest == "" || t.Release == "" || t.Namespace == "" {
		errs = append(errs, errors.New("the plan is incomplete: build it with pipeline.NewDeploy"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ch, err := chart.Load(p.ChartDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	cfg, err := c.helmConfig(t.Namespace)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	d.Options.hearRecords(cfg)
	newNames := p.SecretNames
	c.Logger = c.Logger.With("target", t.Name)
	return &job{
		c: c, cfg: cfg, target: t,
		desire: withExtras(fromChart(ch, p.ChartDir, p.ValuesFiles, t, p.Image, func(h history) pipeline.SecretNames {
			// Names the bundle lacks stay as the last good revision has them,
			// or fall to the chart's defaults on a first install.
			return newNames.Over(secretNamesOf(h.lastGood()))
		}), recordExtras(p.Commit, "")),
		bundle: d.Secrets, timeout: p.Timeout, holder: p.Holder, verb: verbDeploy, opts: d.Options,
		verify: callsVerifier(c, t, d.Calls),
	}, nil
}

// callsVerifier places calls on t's pods after a rollout; nil when calls
// is nil.
func callsVerifier(c Clients, t targets.Target, calls *targets.Calls) func(context.Context, *Result) error {
	if calls == nil {
		return nil
	}
	return func(ctx context.Context, res *Result) error {
		c.Logger.Info("rollout done, placing synthetic calls", "release", t.Release, "path", calls.Path, "hold", calls.Hold)
		rep, err := ops.Calls(ctx, c.Config, c.Kube, t, ops.CallOptions{Calls: *calls, Logger: c.Logger})
		res.Calls = &rep
		return err
	}
}
