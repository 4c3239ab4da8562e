package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	helmchart "helm.sh/helm/v3/pkg/chart"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
	"github.com/ringg/ringg-ci/runner/chart"
	"github.com/ringg/ringg-ci/runner/gcpauth"
	"github.com/ringg/ringg-ci/runner/ops"
	"github.com/ringg/ringg-ci/runner/release"
)

// summarizer is the result of a release verb.
type summarizer interface{ Summary() string }

// execute connects to t's cluster, runs one release verb with progress
// logged at a steady pace, and prints its record (Markdown, or JSON) whether
// it succeeded or failed.
func (r *runner) execute(ctx context.Context, verb string, t targets.Target, run func(release.Clients, release.Options) (summarizer, error)) error {
	tl := &release.Timeline{}
	clients, err := r.clients(ctx, t)
	if err != nil {
		return r.record(release.RecordInput{Verb: verb, Target: t, Err: err})
	}
	res, err := run(clients, r.progressOptions(tl))
	return r.record(release.RecordInput{Verb: verb, Target: t, Result: res, Err: err, Timeline: tl})
}

// record prints the record of a mutating verb and returns its error. The
// explanation of a failed rollout also goes to the log, in full.
func (r *runner) record(in release.RecordInput) error {
	in.Reproduce = r.reproduce
	if len(in.Reproduce) == 0 && in.Target.Name != "" {
		in.Reproduce = runnerReproduce(in.Verb, in.Target)
	}
	rec := release.NewRecord(in)
	rec.Error = r.words(rec.Error)
	for _, f := range rec.Failures {
		if f.Explanation != nil {
			fmt.Fprintf(r.env.Stderr, "why the %s of deployment %s failed:\n%s", f.Phase, f.Deployment, f.Explanation.Text())
		}
	}
	if perr := r.print(rec.Markdown(), rec); perr != nil && in.Err == nil {
		return perr
	}
	return in.Err
}

// runnerReproduce are the commands that show a run's target, as this
// command takes them; the Dagger module passes its own (--reproduce).
func runnerReproduce(verb string, t targets.Target) []string {
	target := "--target " + string(t.Name)
	out := []string{
		"ringg-ci " + command.Status + " " + target,
		"ringg-ci " + command.Logs + " " + target + " --since 30m",
	}
	if verb == command.Deploy && t.Branch != "" {
		out = append(out, "ringg-ci "+command.Plan+" --branch "+t.Branch)
	}
	return out
}

func runDeploy(ctx context.Context, r *runner, args []string) error {
	var branch, image, holder, commit string
	var sf secretFiles
	var timeout time.Duration
	var standIn bool
	f := r.flags(command.Deploy).target().cluster().chart().verification().output()
	f.standIn(&standIn)
	f.StringVar(&branch, command.Branch, "", "branch that was pushed: "+strings.Join(targets.Branches(), " or "))
	f.StringVar(&image, command.Image, "", "image to deploy, repository@sha256:… as printed by publish")
	f.StringVar(&commit, command.Commit, "", "commit the image was built from, recorded with the release (history shows it)")
	f.secrets(&sf)
	f.duration(&timeout, command.Timeout, 0, "how long to wait for the rollout before rolling back (default: computed from replicas, probes and drain)")
	f.holder(&holder)
	f.reproduceFlag()
	if err := f.parse(args); err != nil {
		return err
	}
	target, err := targets.ForBranch(branch)
	if err != nil {
		return r.record(release.RecordInput{Verb: command.Deploy, Err: err})
	}
	bundle, names, err := r.bundle(sf, target.With(r.overrides).Namespace)
	if err != nil {
		return r.record(release.RecordInput{Verb: command.Deploy, Err: err})
	}
	plan, err := pipeline.NewDeploy(pipeline.DeployInput{
		Branch: branch, Overrides: r.overrides, ChartDir: r.chartDir, Image: image,
		NewSecrets: names, Timeout: timeout, Holder: r.holderOr(holder), StandIn: standIn, Commit: commit,
	})
	if err != nil {
		return r.record(release.RecordInput{Verb: command.Deploy, Err: err})
	}
	return r.execute(ctx, command.Deploy, plan.Target, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Deploy{Clients: c, Plan: plan, Secrets: bundle, Options: o, Calls: plan.Target.Verification.Calls}).Run(ctx)
	})
}

func runPlan(ctx context.Context, r *runner, args []string) error {
	var branch, image string
	var sf secretFiles
	f := r.flags(command.Plan).target().cluster().chart().output()
	f.StringVar(&branch, command.Branch, "", "branch to plan: "+strings.Join(targets.Branches(), " or "))
	f.StringVar(&image, command.Image, "", "image (repository@sha256:…) to plan with (default: the digest the release runs now)")
	f.secrets(&sf)
	if err := f.parse(args); err != nil {
		return err
	}
	target, err := targets.ForBranch(branch)
	if err != nil {
		return err
	}
	target = target.With(r.overrides)
	bundle, names, err := r.bundle(sf, target.Namespace)
	if err != nil {
		return err
	}
	clients, err := r.clients(ctx, target)
	if err != nil {
		return err
	}
	if image == "" {
		if image, err = release.RunningImage(ctx, clients, target); err != nil {
			return err
		}
	}
	plan, err := pipeline.NewDeploy(pipeline.DeployInput{
		Branch: branch, Overrides: r.overrides, ChartDir: r.chartDir, Image: image, NewSecrets: names,
	})
	if err != nil {
		return err
	}
	res, err := (&release.Plan{Clients: clients, Plan: plan, Secrets: bundle}).Run(ctx)
	if err != nil {
		return err
	}
	return r.print(res.String(), res)
}

func runPromote(ctx context.Context, r *runner, args []string) error {
	var expected, holder string
	var soak, timeout time.Duration
	var dryRun, wait bool
	f := r.flags(command.Promote).target().cluster().chart().verification().output()
	f.BoolVar(&wait, command.WaitUntilHealthy, false, fmt.Sprintf("wait up to %s for a canary still settling (rollout, readiness, the expected digest) instead of refusing it; then soak, place calls and compare metrics, and promote only if all passed", pipeline.HealthyWait))
	f.StringVar(&expected, command.ExpectedDigest, "", "refuse unless the canary runs this digest (sha256:…)")
	f.duration(&soak, command.Soak, pipeline.DefaultSoak, "how long the canary must run without a container restart")
	f.BoolVar(&dryRun, command.DryRun, false, "show the gate's findings and the change to stable, and change nothing")
	f.duration(&timeout, command.Timeout, 0, "how long to wait for stable's rollout before rolling back (default: computed)")
	f.holder(&holder)
	f.reproduceFlag()
	if err := f.parse(args); err != nil {
		return err
	}
	plan, err := pipeline.NewPromote(pipeline.PromoteInput{
		Overrides: r.overrides, ChartDir: r.chartDir, ExpectedDigest: expected,
		Soak: soak, Timeout: timeout, Holder: r.holderOr(holder), DryRun: dryRun, WaitUntilHealthy: wait,
	})
	if err != nil {
		return r.record(release.RecordInput{Verb: command.Promote, Err: err})
	}
	var metrics *release.MetricsCheck
	if !dryRun {
		if metrics, err = r.metricsCheck(ctx, plan.From, plan.To); err != nil {
			return r.record(release.RecordInput{Verb: command.Promote, Target: plan.To, Err: err})
		}
	}
	return r.execute(ctx, command.Promote, plan.To, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Promote{Clients: c, Plan: plan, Options: o, Calls: plan.From.Verification.Calls, Metrics: metrics}).Run(ctx)
	})
}

func runRollback(ctx context.Context, r *runner, args []string) error {
	var target, holder string
	var revision int
	var timeout time.Duration
	f := r.flags(command.Rollback).target().cluster().chart().output()
	f.StringVar(&target, command.TargetName, "", "target to roll back: staging, canary or stable")
	f.IntVar(&revision, command.Revision, 0, "revision to return to (default: the previous one; for the canary: stable's image)")
	f.duration(&timeout, command.Timeout, 0, "how long to wait for the rollout (default: computed)")
	f.holder(&holder)
	f.reproduceFlag()
	if err := f.parse(args); err != nil {
		return err
	}
	plan, err := pipeline.NewRollback(pipeline.RollbackInput{
		Target: targetName(target), Overrides: r.overrides, Revision: revision,
		ChartDir: r.chartDir, Timeout: timeout, Holder: r.holderOr(holder),
	})
	if err != nil {
		return r.record(release.RecordInput{Verb: command.Rollback, Err: err})
	}
	return r.execute(ctx, command.Rollback, plan.Target, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Rollback{Clients: c, Plan: plan, Options: o}).Run(ctx)
	})
}

func runStatus(ctx context.Context, r *runner, args []string) error {
	var names []targets.Name
	f := r.flags(command.Status).target().cluster().output()
	f.targets(&names)
	if err := f.parse(args); err != nil {
		return err
	}
	st := &release.StatusReport{}
	err := r.perCluster(ctx, names, func(c release.Clients, plan pipeline.StatusPlan) error {
		part, err := (&release.Status{Clients: c, Plan: plan}).Run(ctx)
		if err == nil {
			st.Merge(part)
		}
		return err
	})
	if err != nil {
		return err
	}
	return r.print(st.String(), st)
}

// perCluster runs read on the named targets (all of them when none is
// named) through one connection per cluster: staging and production live in
// different clusters.
func (r *runner) perCluster(ctx context.Context, names []targets.Name, read func(release.Clients, pipeline.StatusPlan) error) error {
	var wanted []targets.Target
	for _, t := range targets.All() {
		if len(names) == 0 || slices.Contains(names, t.Name) {
			wanted = append(wanted, t.With(r.overrides))
		}
	}
	for _, group := range byCluster(wanted) {
		ns := make([]targets.Name, len(group))
		for i, t := range group {
			ns[i] = t.Name
		}
		plan, err := pipeline.NewStatus(ns, r.overrides)
		if err != nil {
			return err
		}
		clients, err := r.clients(ctx, plan.Targets[0])
		if err != nil {
			return err
		}
		if err := read(clients, plan); err != nil {
			return err
		}
	}
	return nil
}

// byCluster groups targets by the cluster they run in, keeping their order.
func byCluster(ts []targets.Target) [][]targets.Target {
	var groups [][]targets.Target
	index := map[targets.Cluster]int{}
	for _, t := range ts {
		i, ok := index[t.Cluster]
		if !ok {
			i = len(groups)
			index[t.Cluster] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], t)
	}
	return groups
}

// operation parses the flags of health, logs and scale (a --target and the
// verb's own) and connects to the target's cluster.
func (r *runner) operation(ctx context.Context, f flags, target *string, args []string) (targets.Target, release.Clients, error) {
	if err := f.parse(args); err != nil {
		return targets.Target{}, release.Clients{}, err
	}
	t, err := targets.Get(targetName(*target))
	if err != nil {
		return t, release.Clients{}, err
	}
	t = t.With(r.overrides)
	if err := t.Validate(); err != nil {
		return t, release.Clients{}, err
	}
	c, err := r.kubeClients(ctx, t)
	return t, c, err
}

func runHealth(ctx context.Context, r *runner, args []string) error {
	var target string
	var timeout time.Duration
	f := r.flags(command.Health).target().cluster().output()
	f.StringVar(&target, command.TargetName, "", "target whose pods to check: staging, canary or stable")
	f.duration(&timeout, command.Timeout, 10*time.Second, "time each pod gets to answer, port-forward included")
	t, c, err := r.operation(ctx, f, &target, args)
	if err != nil {
		return err
	}
	rep, err := ops.Health(ctx, c.Config, c.Kube, t, ops.HealthOptions{Timeout: timeout, Logger: c.Logger})
	if perr := r.print(rep.String(), rep); perr != nil {
		return perr
	}
	return err
}

func runLogs(ctx context.Context, r *runner, args []string) error {
	var target, pod string
	var since time.Duration
	var tail int64
	f := r.flags(command.Logs).target().cluster()
	f.StringVar(&target, command.TargetName, "", "target whose pods to read: staging, canary or stable")
	f.Int64Var(&tail, command.Tail, 0, "at most this many last lines per pod (default 500)")
	f.duration(&since, command.Since, 0, "only lines logged within this long (default: what the container still has)")
	f.StringVar(&pod, command.Pod, "", "only this pod (one of the target's)")
	t, c, err := r.operation(ctx, f, &target, args)
	if err != nil {
		return err
	}
	rep, err := ops.Logs(ctx, c.Kube, t, ops.LogOptions{Since: since, Pod: pod, TailLines: tail})
	if err != nil {
		return err
	}
	return r.print(rep.String(), rep)
}

func runScale(ctx context.Context, r *runner, args []string) error {
	var target, holder string
	var replicas int
	var wait time.Duration
	var force bool
	f := r.flags(command.Scale).target().cluster()
	f.StringVar(&target, command.TargetName, "", "target to scale: staging, canary or stable")
	f.IntVar(&replicas, command.Replicas, -1, "replica count to set")
	f.duration(&wait, command.Wait, 5*time.Minute, "how long to wait for the replicas to be ready; 0s returns at once")
	f.BoolVar(&force, command.Force, false, "allow removing more than a quarter of the pods in one step")
	f.holder(&holder)
	t, c, err := r.operation(ctx, f, &target, args)
	if err != nil {
		return err
	}
	if replicas < 0 {
		return fmt.Errorf("%w: --replicas is required: pass the replica count to set", ErrUsage)
	}
	sc := release.Scale{Clients: c, Target: t, Replicas: replicas, Force: force, Holder: r.holderOr(holder), Scale: ops.ScaleOptions{Wait: wait}}
	res, err := sc.Run(ctx)
	if err != nil {
		return err
	}
	return r.print(res.String(), res)
}

// targetInfo is what `target` prints: what a caller needs to build and push
// a target's image before deploying it.
type targetInfo struct {
	Name      targets.Name `json:"name"`
	Branch    string       `json:"branch,omitempty"`
	Platforms []string     `json:"platforms"`
	Image     string       `json:"image"`
	// RegistryHost is set when Image is in Artifact Registry: push with a
	// Google access token (registry-login).
	RegistryHost string `json:"artifactRegistryHost,omitempty"`
	Release      string `json:"release"`
	Namespace    string `json:"namespace"`
}

func runTarget(_ context.Context, r *runner, args []string) error {
	var branch, target, out string
	var check, standIn bool
	var sf secretFiles
	r.asJSON = true
	f := r.flags(command.Target).target().chart()
	f.StringVar(&out, command.Out, "", "write the JSON to this file instead of standard output (a program reading it then sees it unscrubbed)")
	f.StringVar(&branch, command.Branch, "", "the target a push of this branch deploys")
	f.StringVar(&target, command.TargetName, "", "the target called so: staging, canary or stable")
	f.BoolVar(&check, command.Check, false, "validate a deploy of --branch before anything is built: the Secret documents, the overrides and the chart's render")
	f.secrets(&sf)
	f.standIn(&standIn)
	if err := f.parse(args); err != nil {
		return err
	}
	var t targets.Target
	var err error
	switch {
	case branch != "" && target != "":
		return fmt.Errorf("%w: pass --branch or --target, not both", ErrUsage)
	case branch != "":
		t, err = targets.ForBranch(branch)
	default:
		t, err = targets.Get(targetName(target))
	}
	if err != nil {
		return err
	}
	t = t.With(r.overrides)
	if err := t.Validate(); err != nil {
		return err
	}
	if standIn {
		if err := pipeline.RefuseStandIn(t); err != nil {
			return err
		}
	}
	if check {
		if branch == "" {
			return fmt.Errorf("%w: --check validates a deploy: pass --branch", ErrUsage)
		}
		if err := r.checkDeploy(branch, t.Namespace, sf); err != nil {
			return err
		}
	}
	info := targetInfo{Name: t.Name, Branch: t.Branch, Platforms: t.Platforms, Image: t.Image, Release: t.Release, Namespace: t.Namespace}
	if host, err := targets.RegistryHost(t.Image); err == nil {
		info.RegistryHost = host
	}
	if out == "" {
		return r.print("", info)
	}
	text, err := jsonText(info)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write the target to %s: %w", out, err)
	}
	_, err = fmt.Fprintf(r.env.Stdout, "target %s: %s for %s\n", t.Name, t.Image, strings.Join(t.Platforms, ", "))
	return err
}

// checkDeploy validates everything of a deploy that can be checked before
// the image exists: the Secret documents, the plan and the chart's render
// with a placeholder digest.
func (r *runner) checkDeploy(branch, namespace string, sf secretFiles) error {
	_, names, err := r.bundle(sf, namespace)
	if err != nil {
		return err
	}
	plan, err := pipeline.NewDeploy(pipeline.DeployInput{
		Branch: branch, Overrides: r.overrides, ChartDir: r.chartDir, Image: pipeline.PlaceholderDigest, NewSecrets: names,
	})
	if err != nil {
		return err
	}
	ch, err := chart.Load(r.chartDir)
	if err != nil {
		return err
	}
	return lintTarget(r.chartDir, ch, plan.Target, nil)
}

func runLintChart(_ context.Context, r *runner, args []string) error {
	f := r.flags(command.LintChart).chart()
	if err := f.parse(args); err != nil {
		return err
	}
	ch, err := chart.Load(r.chartDir)
	if err != nil {
		return err
	}
	for _, t := range targets.All() {
		if err := lintTarget(r.chartDir, ch, t, r.log); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(r.env.Stdout, "chart %s: lint clean for %d targets\n", r.chartDir, len(targets.All()))
	return err
}

// lintTarget lints and renders the chart in dir, loaded as ch, with t's
// values and a placeholder image; log, when set, hears what rendered.
func lintTarget(dir string, ch *helmchart.Chart, t targets.Target, log interface{ Info(string, ...any) }) error {
	computed := pipeline.ComputedValues(pipeline.Image{Repository: t.Image, Digest: pipeline.PlaceholderDigest}, pipeline.SecretNames{})
	if err := chart.Lint(dir, t.ValuesFiles, computed); err != nil {
		return err
	}
	vals, err := chart.Values(dir, t.ValuesFiles, computed)
	if err != nil {
		return err
	}
	ms, err := chart.Render(ch, vals, chart.RenderOptions{Release: t.Release, Namespace: t.Namespace})
	if err != nil {
		return err
	}
	if log != nil {
		log.Info("chart lint clean", "target", t.Name, "renders", strings.Join(ms.Kinds(), ", "))
	}
	return nil
}

func runRegistryLogin(ctx context.Context, r *runner, args []string) error {
	var target, out string
	f := r.flags(command.RegistryLogin).target().google()
	f.StringVar(&target, command.TargetName, "", "target whose Artifact Registry repository is pushed to, with its identity: staging, canary or stable")
	f.StringVar(&out, command.PasswordFile, "", "file to write the password to (never printed)")
	if err := f.parse(args); err != nil {
		return err
	}
	if out == "" {
		return fmt.Errorf("%w: --password-file is required: the password is never printed", ErrUsage)
	}
	t, err := targets.Get(targetName(target))
	if err != nil {
		return err
	}
	t = t.With(r.overrides)
	host, err := targets.RegistryHost(t.Image)
	if err != nil {
		return err
	}
	ts, err := r.tokenSource(ctx, t)
	if err != nil {
		return err
	}
	user, password, err := gcpauth.RegistryCredentials(ts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(password), 0o600); err != nil {
		return fmt.Errorf("write the registry password: %w", err)
	}
	_, err = fmt.Fprintf(r.env.Stdout, "%s %s\n", host, user)
	return err
}
