package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/release"
	"github.com/ringg/ringg-ci/runner/secrets"
	"github.com/ringg/ringg-ci/tools/bench/internal/plans"
)

// upgradedMessage is the runner's Info line logged right after Helm's
// upgrade returned, before the rollout watch starts. The benchmark splits a
// run there: everything before it and after the watch is API work.
const upgradedMessage = "upgraded, watching rollout"

// phases are the times one run of the runner passed its milestones.
type phases struct {
	Start, Upgraded, WatchEnd, End time.Time
}

// api is the run's work excluding the rollout watch.
func (p phases) api() time.Duration { return p.Upgraded.Sub(p.Start) + p.End.Sub(p.WatchEnd) }

// complete says whether every milestone was seen.
func (p phases) complete() error {
	if p.Upgraded.IsZero() {
		return fmt.Errorf("the runner never logged %q: the benchmark splits runs on that line; update upgradedMessage", upgradedMessage)
	}
	if p.WatchEnd.IsZero() {
		return fmt.Errorf("the runner never reported the end of the rollout through Options.Progress")
	}
	return nil
}

// phaseRecorder is a slog handler and progress callback that note the
// milestones of one run.
type phaseRecorder struct {
	mu  sync.Mutex
	p   phases
	now func() time.Time
}

func (r *phaseRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *phaseRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *phaseRecorder) WithGroup(string) slog.Handler            { return r }
func (r *phaseRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == upgradedMessage {
		r.mu.Lock()
		r.p.Upgraded = rec.Time
		r.mu.Unlock()
	}
	return nil
}

func (r *phaseRecorder) options() release.Options {
	// One report only: the one at the end of the watch.
	return release.Options{ProgressInterval: time.Hour, Progress: func(release.Progress) {
		t := r.now()
		r.mu.Lock()
		r.p.WatchEnd = t
		r.mu.Unlock()
	}}
}

func (r *phaseRecorder) phases() phases {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// runner runs the runner's verbs (runner/release) in this process: what
// the tables call ours.
type runner struct {
	config   *rest.Config
	chartDir string
	ns       string
	now      func() time.Time
	// scale is release.Options.TimeScale: zero on the instant fake nodes.
	scale time.Duration
}

// options are the runner's options for one run recorded by rec.
func (e runner) options(rec *phaseRecorder) release.Options {
	o := rec.options()
	o.TimeScale = e.scale
	return o
}

func (e runner) clients(rec *phaseRecorder) release.Clients {
	return release.Clients{Config: e.config, Logger: slog.New(rec), Now: e.now}
}

// deployCanary deploys digest to the canary as a push to dv-main does;
// bundle is applied when not nil (the first install).
func (e runner) deployCanary(ctx context.Context, digest string, bundle *secrets.Bundle) (phases, error) {
	var names *pipeline.SecretNames
	if bundle != nil {
		n := bundle.Names()
		names = &pipeline.SecretNames{AppEnv: n.AppEnv, GCPCreds: n.GCPCreds}
	}
	plan, err := plans.Canary(e.ns, e.chartDir, digest, names)
	if err != nil {
		return phases{}, err
	}
	rec := &phaseRecorder{now: e.now}
	d := release.Deploy{Clients: e.clients(rec), Plan: plan, Secrets: bundle, Options: e.options(rec)}
	start := e.now()
	_, err = d.Run(ctx)
	p := rec.phases()
	p.Start, p.End = start, e.now()
	if err != nil {
		return p, fmt.Errorf("deploy canary %s: %w", digest, err)
	}
	return p, p.complete()
}

// promote promotes the canary to stable without a soak: the soak is a
// deliberate wait, not work.
func (e runner) promote(ctx context.Context) (phases, error) {
	plan, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: targets.Overrides{Namespace: e.ns}, ChartDir: e.chartDir,
		Soak: time.Millisecond, Timeout: plans.Timeout, Holder: plans.Holder})
	if err != nil {
		return phases{}, err
	}
	plan.Soak = 0
	rec := &phaseRecorder{now: e.now}
	pr := release.Promote{Clients: e.clients(rec), Plan: plan, Options: e.options(rec)}
	start := e.now()
	_, err = pr.Run(ctx)
	p := rec.phases()
	p.Start, p.End = start, e.now()
	if err != nil {
		return p, fmt.Errorf("promote: %w", err)
	}
	return p, p.complete()
}

// planAll runs release.Plan (render, server-side dry run, diff) for every
// target; staging gets its own namespace, as it has its own cluster.
func (e runner) planAll(ctx context.Context, stagingNS, digest string) error {
	for _, t := range targets.All() {
		ns := e.ns
		if t.Name == targets.Staging {
			ns = stagingNS
		}
		var plan pipeline.DeployPlan
		var err error
		if t.Branch != "" {
			plan, err = pipeline.NewDeploy(pipeline.DeployInput{Branch: t.Branch, Overrides: targets.Overrides{Namespace: ns},
				ChartDir: e.chartDir, Image: digest, Holder: plans.Holder})
		} else {
			plan, err = plans.Stable(ns, e.chartDir, digest)
		}
		if err != nil {
			return err
		}
		p := release.Plan{Clients: release.Clients{Config: e.config, Now: e.now}, Plan: plan}
		if _, err := p.Run(ctx); err != nil {
			return fmt.Errorf("plan %s: %w", t.Name, err)
		}
	}
	return nil
}
