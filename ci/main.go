// The ringg-ci Dagger module: build, publish, deploy, promote, roll back and
// inspect the ringg chatbot on GKE, the same on a laptop and in GitHub Actions.
//
// Every function here is thin: it checks its arguments, builds a plan
// (package pipeline), hands it to one executor (packages release, secrets) and
// returns a summary. Nothing below package main sees a Dagger type.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/chart"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/ops"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/release"
	"github.com/ringg/ringg-ci/ci/targets"
)

// Target is an environment the chatbot runs in.
type Target string

// The targets. Adding one is an entry in ci/targets, a values file in the
// chart and a constant here.
const (
	// Staging: branch dv-stage, linux/amd64, desivocal-staging-cluster.
	Staging Target = "STAGING"
	// Canary: branch dv-main, linux/arm64, 2 replicas beside stable in production.
	Canary Target = "CANARY"
	// Stable: the 60 production replicas, reached only by promote.
	Stable Target = "STABLE"
)

func (t Target) name() targets.Name { return targets.Name(strings.ToLower(string(t))) }

// RinggCi builds and deploys the ringg chatbot.
type RinggCi struct {
	// Application source: the directory holding the Dockerfile.
	Source *dagger.Directory
	// Path of the Dockerfile inside the source.
	Dockerfile string
	// The Helm chart.
	Chart *dagger.Directory

	// Overrides of the targets' GCP project, image repository, GKE cluster and namespace.
	Project, Image, ClusterName, ClusterLocation, Namespace string

	// Google credentials: GitHub OIDC request URL and token, a credentials JSON, or an access token.
	OidcRequestUrl, OidcRequestToken *dagger.Secret
	WorkloadIdentityProvider         string
	ServiceAccount                   string
	CredentialsJson                  *dagger.Secret
	AccessToken                      *dagger.Secret

	// A kubeconfig for clusters other than GKE, with an optional tunnel to an API server on the caller's machine.
	Kubeconfig           *dagger.Secret
	KubeContext          string
	Cluster              *dagger.Service
	ClusterTlsServerName string
}

// Configure the module. Credentials given here serve every function:
// in GitHub Actions the OIDC pair, on a laptop an access token or a
// kubeconfig.
func New(
	// Application source, the directory holding the Dockerfile (default: the stand-in chatbot in this repository).
	// +defaultPath="/examples/chatbot"
	// +ignore=[".git", "**/*_test.go", "**/testdata"]
	source *dagger.Directory,
	// Dockerfile path inside the source.
	// +default="Dockerfile"
	dockerfile string,
	// Helm chart of the chatbot.
	// +defaultPath="/deploy/chart"
	chart *dagger.Directory,
	// GCP project of the clusters, instead of desivocalprod01.
	// +optional
	project string,
	// Image repository to push to and deploy from, instead of the target's Artifact Registry repository.
	// +optional
	image string,
	// GKE cluster name, instead of the target's.
	// +optional
	clusterName string,
	// GKE cluster location (zone or region), instead of the target's.
	// +optional
	clusterLocation string,
	// Kubernetes namespace, instead of default.
	// +optional
	namespace string,
	// GitHub Actions OIDC request URL: env://ACTIONS_ID_TOKEN_REQUEST_URL (the job needs permissions id-token: write).
	// +optional
	oidcRequestUrl *dagger.Secret,
	// GitHub Actions OIDC request token: env://ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	// +optional
	oidcRequestToken *dagger.Secret,
	// Workload Identity provider the OIDC token is exchanged with (projects/N/locations/global/workloadIdentityPools/P/providers/X).
	// +optional
	workloadIdentityProvider string,
	// Service account to impersonate after the exchange.
	// +optional
	serviceAccount string,
	// Google credentials JSON (service account key, authorized_user, or external_account), e.g. file://creds.json.
	// +optional
	credentialsJson *dagger.Secret,
	// Google access token, e.g. cmd://"gcloud auth print-access-token" (not refreshed: lasts about an hour).
	// +optional
	accessToken *dagger.Secret,
	// Kubeconfig for a cluster that is not reached through the GKE API, e.g. file://$HOME/.kube/config.
	// +optional
	kubeconfig *dagger.Secret,
	// Kubeconfig context to use instead of its current context.
	// +optional
	kubeContext string,
	// API server on the caller's machine, e.g. tcp://localhost:6443; every kubeconfig server is rewritten to reach it.
	// +optional
	cluster *dagger.Service,
	// Name the API server's certificate is checked against when --cluster is used (default: the kubeconfig server's host).
	// +optional
	clusterTlsServerName string,
) *RinggCi {
	return &RinggCi{
		Source: source, Dockerfile: dockerfile, Chart: chart,
		Project: project, Image: image, ClusterName: clusterName, ClusterLocation: clusterLocation, Namespace: namespace,
		OidcRequestUrl: oidcRequestUrl, OidcRequestToken: oidcRequestToken,
		WorkloadIdentityProvider: workloadIdentityProvider, ServiceAccount: serviceAccount,
		CredentialsJson: credentialsJson, AccessToken: accessToken,
		Kubeconfig: kubeconfig, KubeContext: kubeContext, Cluster: cluster, ClusterTlsServerName: clusterTlsServerName,
	}
}

func (m *RinggCi) overrides() targets.Overrides {
	return targets.Overrides{
		Project: m.Project, Image: m.Image, ClusterName: m.ClusterName,
		ClusterLocation: m.ClusterLocation, Namespace: m.Namespace,
	}
}

func (m *RinggCi) target(t Target) (targets.Target, error) {
	tg, err := targets.Get(t.name())
	if err != nil {
		return targets.Target{}, err
	}
	tg = tg.With(m.overrides())
	return tg, tg.Validate()
}

// logger writes progress to the function's output, which Dagger shows live.
func logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// Build the chatbot image for one platform (default: the engine's own).
// Chain it: `build terminal`, `build as-service up --ports 8765:8765`, `build export --path image.tar`.
func (m *RinggCi) Build(
	ctx context.Context,
	// OCI platform, e.g. linux/amd64 (staging) or linux/arm64 (production).
	// +optional
	platform dagger.Platform,
) (*dagger.Container, error) {
	return m.container(ctx, platform)
}

// Publish the image of a target to its Artifact Registry repository and print repository@sha256:digest.
// +cache="never"
func (m *RinggCi) Publish(
	ctx context.Context,
	// Target whose platforms and repository are used.
	// +default="STAGING"
	target Target,
	// Commit SHA to tag the image with (default: manual-<time>).
	// +optional
	commit string,
) (string, error) {
	t, err := m.target(target)
	if err != nil {
		return "", err
	}
	return m.publishTarget(ctx, t, commit)
}

func (m *RinggCi) publishTarget(ctx context.Context, t targets.Target, commit string) (string, error) {
	variants, err := m.variants(ctx, t.Platforms)
	if err != nil {
		return "", err
	}
	auth, err := m.artifactRegistryAuth(ctx, t.Image)
	if err != nil {
		return "", err
	}
	log := logger().With("target", t.Name)
	log.Info("build and push", "platforms", strings.Join(t.Platforms, ","), "repository", t.Image)
	ref, err := publish(ctx, variants, t.Image, tagFor(commit, time.Now()), auth)
	if err != nil {
		return "", err
	}
	log.Info("pushed", "image", ref)
	return ref, nil
}

// Lint the chart and render it for every target; fails on any Helm lint error or warning.
// +check
func (m *RinggCi) LintChart(ctx context.Context) error {
	dir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	ch, err := chart.Load(dir)
	if err != nil {
		return err
	}
	log := logger()
	for _, t := range targets.All() {
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
		log.Info("chart lint clean", "target", t.Name, "renders", strings.Join(ms.Kinds(), ", "))
	}
	return nil
}

// Run the built image as a service and check that /pc/v1/healthcheck answers 200.
// +check
func (m *RinggCi) SmokeTest(ctx context.Context) error {
	_, err := m.smoke(ctx)
	return err
}

// smoke runs the smoke test and returns the health check's answer.
func (m *RinggCi) smoke(ctx context.Context) (string, error) {
	app, err := m.container(ctx, "")
	if err != nil {
		return "", err
	}
	svc := app.WithExposedPort(8765).AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	out, err := dag.Container().
		From("curlimages/curl:8.11.1").
		WithServiceBinding("chatbot", svc).
		WithExec([]string{"curl", "-fsS", "--retry", "10", "--retry-connrefused", "--retry-delay", "1",
			"http://chatbot:8765/pc/v1/healthcheck"}).
		Stdout(ctx)
	if err != nil {
		return "", fmt.Errorf("smoke test: GET /pc/v1/healthcheck of the built image failed: %w", err)
	}
	return "healthcheck ok: " + out, nil
}

// chartDir writes the chart argument to a temporary directory for the Helm SDK.
func (m *RinggCi) chartDir(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "chart-")
	if err != nil {
		return "", nil, fmt.Errorf("make a directory for the chart: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	if _, err := m.Chart.Export(ctx, dir); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("export the chart: %w", err)
	}
	return dir, cleanup, nil
}

// Deploy a branch: dv-stage → staging, dv-main → the production canary. Builds and publishes the image (unless --image
// is given), applies the Secrets from --secrets-json / --creds-json, upgrades the release, waits for every pod and rolls
// back if the rollout fails. Prints what was deployed where.
// +cache="never"
func (m *RinggCi) Deploy(
	ctx context.Context,
	// Branch that was pushed: dv-stage or dv-main.
	branch string,
	// Commit SHA, used as the image tag.
	// +optional
	commit string,
	// Deploy this already published image (repository@sha256:…) instead of building one.
	// +optional
	image string,
	// Application environment variables as a JSON object of strings, e.g. env://SECRETS_JSON; without it the release keeps its current Secret.
	// +optional
	secretsJson *dagger.Secret,
	// GCP credentials JSON mounted at /app/creds.json, e.g. env://CREDS_JSON; without it the release keeps its current Secret.
	// +optional
	credsJson *dagger.Secret,
	// Show what would change (rendered manifests, server-side dry run, diff) and change nothing.
	// +optional
	dryRun bool,
	// How long to wait for the rollout before rolling back, e.g. 20m (default: computed from replicas, probes and drain).
	// +optional
	timeout string,
	// Who runs this, shown to a concurrent deploy that finds the release locked (default: ringg-ci@<function host>).
	// +optional
	holder string,
) (string, error) {
	if dryRun {
		return m.Plan(ctx, branch, image, secretsJson, credsJson)
	}
	wait, err := parseDuration("--timeout", timeout)
	if err != nil {
		return "", err
	}
	target, err := targets.ForBranch(branch)
	if err != nil {
		return "", err
	}
	bundle, names, err := m.secretBundle(ctx, secretsJson, credsJson, target.With(m.overrides()).Namespace)
	if err != nil {
		return "", err
	}
	chartDir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return "", err
	}
	defer cleanup()
	in := pipeline.DeployInput{
		Branch: branch, Overrides: m.overrides(), ChartDir: chartDir, Image: image,
		NewSecrets: names, Timeout: wait, Holder: holderOr(holder),
	}
	if image == "" {
		// Validate everything that can be checked before the slow build and push.
		in.Image = pipeline.PlaceholderDigest
	}
	plan, err := pipeline.NewDeploy(in)
	if err != nil {
		return "", err
	}
	if image == "" {
		ref, err := m.publishTarget(ctx, plan.Target, commit)
		if err != nil {
			return "", err
		}
		in.Image = ref
		if plan, err = pipeline.NewDeploy(in); err != nil {
			return "", err
		}
	}
	return m.execute(ctx, plan.Target, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Deployer{Clients: c, Plan: plan, Secrets: bundle, Options: o}).Run(ctx)
	})
}

// Promote the production canary to stable: check that the canary is available, runs one digest and did not restart
// during the soak, then upgrade stable (60 replicas) to exactly that digest and the canary's Secrets.
// +cache="never"
func (m *RinggCi) Promote(
	ctx context.Context,
	// Refuse unless the canary runs this digest (sha256:…), e.g. the one a reviewer approved.
	// +optional
	expectedDigest string,
	// How long the canary must run without a container restart, e.g. 2m.
	// +default="2m"
	soak string,
	// Show the gate's findings and the change to stable, and change nothing.
	// +optional
	dryRun bool,
	// How long to wait for stable's rollout before rolling back (default: computed).
	// +optional
	timeout string,
	// Who runs this, shown to a concurrent run that finds the release locked.
	// +optional
	holder string,
) (string, error) {
	soakFor, err := parseDuration("--soak", soak)
	if err != nil {
		return "", err
	}
	wait, err := parseDuration("--timeout", timeout)
	if err != nil {
		return "", err
	}
	chartDir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return "", err
	}
	defer cleanup()
	plan, err := pipeline.NewPromote(pipeline.PromoteInput{
		Overrides: m.overrides(), ChartDir: chartDir, ExpectedDigest: expectedDigest,
		Soak: soakFor, Timeout: wait, Holder: holderOr(holder), DryRun: dryRun,
	})
	if err != nil {
		return "", err
	}
	return m.execute(ctx, plan.To, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Promoter{Clients: c, Plan: plan, Options: o}).Run(ctx)
	})
}

// Roll a target back: stable (or staging) to its previous or a given revision, the canary to the image stable runs.
// Works when an interrupted run left the release pending.
// +cache="never"
func (m *RinggCi) Rollback(
	ctx context.Context,
	// Target to roll back.
	target Target,
	// Revision to return to (default: the previous one; for the canary: stable's image).
	// +optional
	revision int,
	// How long to wait for the rollout (default: computed).
	// +optional
	timeout string,
	// Who runs this, shown to a concurrent run that finds the release locked.
	// +optional
	holder string,
) (string, error) {
	wait, err := parseDuration("--timeout", timeout)
	if err != nil {
		return "", err
	}
	chartDir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return "", err
	}
	defer cleanup()
	plan, err := pipeline.NewRollback(pipeline.RollbackInput{
		Target: target.name(), Overrides: m.overrides(), Revision: revision,
		ChartDir: chartDir, Timeout: wait, Holder: holderOr(holder),
	})
	if err != nil {
		return "", err
	}
	return m.execute(ctx, plan.Target, func(c release.Clients, o release.Options) (summarizer, error) {
		return (&release.Rollbacker{Clients: c, Plan: plan, Options: o}).Run(ctx)
	})
}

// Show each target's release revision and state, the digest it runs, pods ready/total, and whether canary and stable
// run the same digest.
// +cache="never"
func (m *RinggCi) Status(
	ctx context.Context,
	// Target to show (default: all of them).
	// +optional
	target Target,
	// Print JSON instead of text.
	// +optional
	json bool,
) (string, error) {
	// Staging and production live in different clusters: read each cluster's
	// targets through its own connection.
	var wanted []targets.Target
	for _, t := range targets.All() {
		if target == "" || t.Name == target.name() {
			wanted = append(wanted, t.With(m.overrides()))
		}
	}
	if len(wanted) == 0 {
		_, err := targets.Get(target.name())
		return "", err
	}
	st := &release.Status{}
	for _, group := range byCluster(wanted) {
		names := make([]targets.Name, len(group))
		for i, t := range group {
			names[i] = t.Name
		}
		plan, err := pipeline.NewStatus(names, m.overrides())
		if err != nil {
			return "", err
		}
		clients, err := m.clients(ctx, plan.Targets[0])
		if err != nil {
			return "", err
		}
		part, err := (&release.Statuser{Clients: clients, Plan: plan}).Run(ctx)
		if err != nil {
			return "", err
		}
		st.Merge(part)
	}
	if json {
		return jsonText(st)
	}
	return st.String(), nil
}

// Plan a deploy of a branch: render the manifests, dry-run them on the live cluster and diff against the live release.
// Secrets show only as changed or unchanged. Changes nothing.
// +cache="never"
func (m *RinggCi) Plan(
	ctx context.Context,
	// Branch to plan: dv-stage or dv-main.
	branch string,
	// Image (repository@sha256:…) to plan with (default: the digest the release runs now).
	// +optional
	image string,
	// Application environment JSON to compare with the live Secret.
	// +optional
	secretsJson *dagger.Secret,
	// GCP credentials JSON to compare with the live Secret.
	// +optional
	credsJson *dagger.Secret,
) (string, error) {
	target, err := targets.ForBranch(branch)
	if err != nil {
		return "", err
	}
	target = target.With(m.overrides())
	bundle, names, err := m.secretBundle(ctx, secretsJson, credsJson, target.Namespace)
	if err != nil {
		return "", err
	}
	chartDir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return "", err
	}
	defer cleanup()
	clients, err := m.clients(ctx, target)
	if err != nil {
		return "", err
	}
	if image == "" {
		if image, err = release.RunningImage(ctx, clients, target); err != nil {
			return "", err
		}
	}
	plan, err := pipeline.NewDeploy(pipeline.DeployInput{
		Branch: branch, Overrides: m.overrides(), ChartDir: chartDir, Image: image, NewSecrets: names,
	})
	if err != nil {
		return "", err
	}
	res, err := (&release.Planner{Clients: clients, Plan: plan, Secrets: bundle}).Run(ctx)
	if err != nil {
		return "", err
	}
	return res.String(), nil
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

// Run the whole pipeline with no cloud and no credentials: build the image, smoke-test it, start a throwaway registry
// and Kubernetes API server as services, then deploy staging and the canary, promote, roll back, and print status
// after each step, all with the real release engine. Pods are made Ready by a fake node: no container really runs.
// With --branch it replays one CI deploy (the commit's source via `dagger -m <repo>@<sha>`, the run's secrets files).
// +cache="never"
func (m *RinggCi) Sandbox(
	ctx context.Context,
	// Repository root with the test cluster's sources (default: this repository).
	// +defaultPath="/"
	// +ignore=["**", "!go.mod", "!go.sum", "!ci/**", "!testcluster/**", "!cmd/**", "!tools/testcluster/**", "ci/internal/**", "ci/dagger.gen.go", "**/testdata/**"]
	repo *dagger.Directory,
	// Replay one deploy of this branch (dv-stage or dv-main) instead of the whole tour.
	// +optional
	branch string,
	// Application environment JSON for the deploys (default: a harmless sample).
	// +optional
	secretsJson *dagger.Secret,
	// GCP credentials JSON for the deploys (default: none; the release keeps the chart's Secret name).
	// +optional
	credsJson *dagger.Secret,
	// Commit SHA used as the image tag.
	// +optional
	commit string,
) (string, error) {
	return m.sandbox(ctx, sandboxInput{repo: repo, branch: branch, secretsJson: secretsJson, credsJson: credsJson, commit: commit})
}

// Check the health endpoint of every pod of a target through the API server (port-forward, no kubectl); fails if any
// pod does not answer 200.
// +cache="never"
func (m *RinggCi) Health(
	ctx context.Context,
	// Target whose pods to check.
	target Target,
	// Time each pod gets to answer, port-forward included, e.g. 5s.
	// +default="10s"
	timeout string,
	// Print JSON instead of a table.
	// +optional
	json bool,
) (string, error) {
	t, wait, clients, err := m.operate(ctx, target, "--timeout", timeout)
	if err != nil {
		return "", err
	}
	rep, err := ops.Health(ctx, clients.Config, clients.Kube, t, ops.HealthOptions{Timeout: wait, Logger: clients.Logger})
	out := rep.String()
	if json {
		out, _ = jsonText(rep)
	}
	if err != nil {
		// The table says which pods failed and how; the error makes the call fail.
		return "", fmt.Errorf("%w\n%s", err, out)
	}
	return out, nil
}

// Show recent logs of a target's pods, each line prefixed with its pod; canary and stable are told apart by their
// version label. Output is bounded (last 500 lines per pod, 256 KiB in all).
// +cache="never"
func (m *RinggCi) Logs(
	ctx context.Context,
	// Target whose pods to read.
	target Target,
	// Only lines logged within this long, e.g. 10m (default: what the container still has).
	// +optional
	since string,
	// Only this pod (one of the target's).
	// +optional
	pod string,
) (string, error) {
	t, d, clients, err := m.operate(ctx, target, "--since", since)
	if err != nil {
		return "", err
	}
	rep, err := ops.Logs(ctx, clients.Kube, t, ops.LogOptions{Since: d, Pod: pod})
	if err != nil {
		return "", err
	}
	return rep.String(), nil
}

// Scale a target's Deployment by hand until the next deploy or promote restores the chart's replica count. Refused
// while an autoscaler manages it, and on the canary beyond 5 replicas.
// +cache="never"
func (m *RinggCi) Scale(
	ctx context.Context,
	// Target to scale.
	target Target,
	// Replica count to set.
	replicas int,
	// How long to wait for the replicas to be ready, e.g. 5m; 0s returns at once.
	// +default="5m"
	wait string,
) (string, error) {
	t, d, clients, err := m.operate(ctx, target, "--wait", wait)
	if err != nil {
		return "", err
	}
	res, err := ops.Scale(ctx, clients.Kube, t, replicas, ops.ScaleOptions{Wait: d, Logger: clients.Logger})
	if err != nil {
		return "", err
	}
	return res.String(), nil
}
