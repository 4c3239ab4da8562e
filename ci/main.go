// The ringg-ci Dagger module: build, publish, deploy, promote, roll back and
// inspect the ringg chatbot on GKE, the same on a laptop and in GitHub Actions.
// Images are built here; every cluster verb runs the runner (cmd/ringg-ci) in
// a container, its credentials mounted as Dagger secrets (docs/security.md).
package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/targets"
)

// Target is an environment the chatbot runs in.
type Target string

// The targets, one per entry of ci/targets (checks/daggerenum_test.go keeps
// them equal). Adding one is an entry there, a values file in the chart and a
// constant here.
const (
	// Staging: branch dv-stage, linux/amd64, desivocal-staging-cluster.
	Staging Target = "STAGING"
	// Canary: branch dv-main, linux/arm64, 2 replicas beside stable in production.
	Canary Target = "CANARY"
	// Stable: the 60 production replicas, reached only by promote.
	Stable Target = "STABLE"
)

// name is the target as ci/targets names it (a test checks the constants
// against targets.All()).
func (t Target) name() targets.Name { return targets.Name(strings.ToLower(string(t))) }

// flag is the target as the ringg-ci command takes it.
func (t Target) flag() string { return string(t.name()) }

// RinggCi builds and deploys the ringg chatbot.
type RinggCi struct {
	// +private
	Source *dagger.Directory
	// +private
	Dockerfile string
	// +private
	Chart *dagger.Directory
	// +private
	RunnerSource *dagger.Directory

	// +private
	Project string
	// +private
	ImageRepository string
	// +private
	ClusterName string
	// +private
	ClusterLocation string
	// +private
	Namespace string

	// +private
	OidcRequestUrl *dagger.Secret
	// +private
	OidcRequestToken *dagger.Secret
	// +private
	WorkloadIdentityProvider string
	// +private
	ServiceAccount string
	// +private
	CredentialsJson *dagger.Secret
	// +private
	AccessToken *dagger.Secret

	// +private
	RegistryUsername string
	// +private
	RegistryPassword *dagger.Secret

	// +private
	Kubeconfig *dagger.Secret
	// +private
	KubeContext string
	// +private
	Cluster *dagger.Service
	// +private
	ClusterTlsServerName string
	// The port of Cluster the runner dials when the service has several (the sandbox's); zero means its first.
	// +private
	ClusterPort int

	// +private
	ModuleRef string
	// +private
	SourceRef string
}

// Configure the module. Credentials given here serve every function: in GitHub Actions the OIDC pair, on a laptop an
// access token or a kubeconfig.
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
	// Source of the ringg-ci runner (cmd/ringg-ci, the Helm SDK verbs) that runs every cluster verb: this repository's root
	// Go module, limited to what builds cmd/ringg-ci.
	// +defaultPath="/"
	// +ignore=["**", "!go.mod", "!go.sum", "!cmd/ringg-ci/**", "!runner/**", "!ci/go.mod", "!ci/targets/**", "!ci/pipeline/**", "!ci/command/**", "!ci/scrub/**", "!tools/testcluster/controlplane/go.mod", "!examples/chatbot/go.mod", "**/*_test.go", "**/testdata/**"]
	runnerSource *dagger.Directory,
	// GCP project of the clusters, instead of desivocalprod01.
	// +optional
	project string,
	// Image repository to push to and deploy from, instead of the target's Artifact Registry repository; any OCI
	// registry, e.g. localhost:5001/ringg/dv-pipecat.
	// +optional
	imageRepository string,
	// GKE cluster name, instead of the target's.
	// +optional
	clusterName string,
	// GKE cluster location (zone or region), instead of the target's.
	// +optional
	clusterLocation string,
	// Kubernetes namespace, instead of the target's.
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
	// User name for pushing to a registry other than Artifact Registry (with --registry-password).
	// +optional
	registryUsername string,
	// Password or token for --registry-username, e.g. env://REGISTRY_TOKEN; without both, Artifact Registry gets a
	// Google access token and other registries no credentials.
	// +optional
	registryPassword *dagger.Secret,
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
	// How the caller named this module, e.g. github.com/ringg/ringg-ci@<commit>: the replay command of a run's record
	// names it (the workflows pass it).
	// +optional
	moduleRef string,
	// Where --source came from, e.g. https://github.com/ringg/dv-pipecat#<commit>: the replay command of a run's record
	// builds from it (the workflows pass it).
	// +optional
	sourceRef string,
) *RinggCi {
	return &RinggCi{
		Source: source, Dockerfile: dockerfile, Chart: chart, RunnerSource: runnerSource,
		Project: project, ImageRepository: imageRepository, ClusterName: clusterName, ClusterLocation: clusterLocation, Namespace: namespace,
		OidcRequestUrl: oidcRequestUrl, OidcRequestToken: oidcRequestToken,
		WorkloadIdentityProvider: workloadIdentityProvider, ServiceAccount: serviceAccount,
		CredentialsJson: credentialsJson, AccessToken: accessToken,
		RegistryUsername: registryUsername, RegistryPassword: registryPassword,
		Kubeconfig: kubeconfig, KubeContext: kubeContext, Cluster: cluster, ClusterTlsServerName: clusterTlsServerName,
		ModuleRef: moduleRef, SourceRef: sourceRef,
	}
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

// Publish the image of a target and print repository@sha256:digest.
// The repository is the target's Artifact Registry one unless --image-repository names another.
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
	if err := pipeline.ValidateCommit(commit); commit != "" && err != nil {
		return "", err
	}
	t, _, err := m.resolve(ctx, target.name(), "")
	if err != nil {
		return "", err
	}
	return m.publish(ctx, t, commit)
}

// Publish the ringg-ci runner image for linux/amd64 and linux/arm64 and print its pin.
// The release workflow runs this; committing the printed pin lets every run whose runner source matches pull the
// image instead of compiling the runner (docs/benchmarks.md). Give --registry-username/--registry-password for the
// registry.
// +cache="never"
func (m *RinggCi) PublishRunner(
	ctx context.Context,
	// Where to push, with a tag, e.g. ghcr.io/ringg/ringg-ci-runner:v1.2.0.
	address string,
) (string, error) {
	var variants []*dagger.Container
	for _, p := range []dagger.Platform{"linux/amd64", "linux/arm64"} {
		variants = append(variants, runnerImage(p, m.runnerBinary(p)))
	}
	first, _, err := m.withCredentials(variants[0], registryHost(address))
	if err != nil {
		return "", err
	}
	pushed, err := push(ctx, append([]*dagger.Container{first}, variants[1:]...), address, nil)
	if err != nil {
		return "", fmt.Errorf("publish the runner: %w", err)
	}
	digest, err := m.builtFrom(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("var runnerRelease = struct{ image, sourceDigest string }{\n\t%q,\n\t%q,\n}\n", pushed, digest), nil
}

// Lint the chart and render it for every target; fails on any Helm lint error or warning.
// +check
func (m *RinggCi) LintChart(ctx context.Context) error {
	_, err := m.run(ctx, call{args: []string{command.LintChart}})
	return err
}

// Run the built image as a service and check that /pc/v1/healthcheck answers 200.
// +check
func (m *RinggCi) SmokeTest(ctx context.Context) error {
	_, err := m.smoke(ctx)
	return err
}

// Deploy a branch: dv-stage to staging, dv-main to the production canary.
// Builds and publishes the image (unless --image is given), applies the Secrets from --secrets-json / --creds-json,
// upgrades the release, waits for every pod and rolls back if the rollout fails. Prints the run's record, whether it
// succeeds or fails: what was deployed where, the rollout over time, why it failed (the pods' events and the app's last
// lines) and the commands that reproduce it.
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
	// Application environment variables as a JSON object, e.g. env://SECRETS_JSON; without it the release keeps its
	// current Secret.
	// +optional
	secretsJson *dagger.Secret,
	// GCP credentials JSON mounted at /app/creds.json, e.g. env://CREDS_JSON; without it the release keeps its current
	// Secret.
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
	// Print the record as JSON instead of Markdown.
	// +optional
	asJson bool,
	// YAML or JSON replacing the target's synthetic calls placed after the rollout (calls: path, send, expect, hold).
	// +optional
	verification *dagger.File,
) (string, error) {
	if err := pipeline.ValidateCommit(commit); commit != "" && err != nil {
		return "", err
	}
	if dryRun {
		return m.Plan(ctx, branch, image, secretsJson, credsJson)
	}
	docs := documents{secretsJSON: secretsJson, credsJSON: credsJson}
	// Everything that can be checked is checked before the slow build and
	// push: the target here, the secret documents and the chart's render by
	// the runner.
	t, standIn, err := m.resolve(ctx, "", branch)
	if err != nil {
		return "", err
	}
	var standInFlag []string
	if standIn && image == "" {
		standInFlag = []string{command.Arg(command.StandIn)}
	}
	if _, err := m.run(ctx, call{args: append([]string{command.Target, command.Arg(command.Branch), branch, command.Arg(command.Check)}, standInFlag...), docs: docs}); err != nil {
		return "", err
	}
	args := append([]string{command.Deploy, command.Arg(command.Branch), branch}, standInFlag...)
	if image == "" {
		if image, err = m.publish(ctx, t, commit); err != nil {
			return "", err
		}
	}
	args = append(args, command.Arg(command.Image), image)
	args = appendFlag(args, command.Arg(command.Commit), commit)
	args = appendFlag(args, command.Arg(command.Timeout), timeout)
	args = appendFlag(args, command.Arg(command.Holder), holder)
	args = append(args, m.reproduceFlags(ctx, pipeline.Call{Verb: command.Deploy, Target: t.Name, Branch: branch, Commit: commit, StandIn: standIn && image == ""}, docs)...)
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true, docs: docs, verification: verification})
}

// Show what a deploy of a branch would change, and change nothing.
// Renders the manifests, dry-runs them on the live cluster and diffs them against the live release. Secrets show only
// as changed or unchanged.
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
	args := appendFlag([]string{command.Plan, command.Arg(command.Branch), branch}, command.Arg(command.Image), image)
	return m.run(ctx, call{args: args, cluster: true, docs: documents{secretsJSON: secretsJson, credsJSON: credsJson}})
}

// Promote the production canary to stable.
// Checks that the canary is available and runs one digest, then soaks it: no container may restart, every round of
// synthetic calls on its pods must pass and its metrics must stay within their thresholds of stable's; then upgrades
// stable (60 replicas) to exactly that digest and the canary's Secrets. A refusal prints the calls per pod and the
// metrics' verdict table.
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
	// Print the record as JSON instead of Markdown.
	// +optional
	asJson bool,
	// Wait up to 30 minutes for a canary that is still settling (its rollout, its readiness, the expected digest)
	// instead of refusing it; the soak starts once it has.
	// +optional
	waitUntilHealthy bool,
	// YAML or JSON replacing the canary's synthetic calls (calls:) and metric queries (metrics:).
	// +optional
	verification *dagger.File,
	// A Prometheus API on the caller's machine to read the metrics from, e.g. tcp://localhost:9090 (default: the
	// verification's url, or Google Managed Service for Prometheus with the run's Google token).
	// +optional
	prometheus *dagger.Service,
) (string, error) {
	args := []string{command.Promote, command.Arg(command.Soak), soak}
	args = appendFlag(args, command.Arg(command.ExpectedDigest), expectedDigest)
	if dryRun {
		args = append(args, command.Arg(command.DryRun))
	}
	if waitUntilHealthy {
		args = append(args, command.Arg(command.WaitUntilHealthy))
	}
	args = appendFlag(args, command.Arg(command.Timeout), timeout)
	args = appendFlag(args, command.Arg(command.Holder), holder)
	args = append(args, m.reproduceFlags(ctx, pipeline.Call{Verb: command.Promote, Target: targets.Stable}, documents{})...)
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true, verification: verification, prometheus: prometheus})
}

// Place a synthetic call on every pod of a target, and compare its metrics with the target it promotes to.
// Each call opens the app's WebSocket through the API server (port-forward: no Service, so no other pod gets it),
// holds it with the exchange the target's verification names and closes it; per pod: handshake, first answer, held or
// closed early. Fails if any call or metric fails.
// +cache="never"
func (m *RinggCi) Verify(
	ctx context.Context,
	// Target whose pods to call.
	target Target,
	// YAML or JSON replacing the target's synthetic calls (calls:) and metric queries (metrics:).
	// +optional
	verification *dagger.File,
	// A Prometheus API on the caller's machine to read the metrics from, e.g. tcp://localhost:9090.
	// +optional
	prometheus *dagger.Service,
	// How far back the metrics are compared, e.g. 10m.
	// +default="10m"
	window string,
	// Print JSON instead of tables.
	// +optional
	asJson bool,
) (string, error) {
	args := []string{command.Verify, command.Arg(command.TargetName), target.flag(), command.Arg(command.Window), window}
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true, verification: verification, prometheus: prometheus})
}

// Show every revision Helm keeps of each target, and its delivery measures.
// Per revision: who ran it, the image digest, commit and Secrets, when, how long its rollout took, its outcome
// (proven, failed, rolled back, interrupted) and for a promote what the gate checked; per target: deploy frequency,
// change failure rate and time to restore.
// +cache="never"
func (m *RinggCi) History(
	ctx context.Context,
	// Target to show (default: all of them).
	// +optional
	target Target,
	// Only revisions applied within this long, e.g. 30d or 12h (default: every revision Helm keeps).
	// +optional
	since string,
	// Print JSON instead of text.
	// +optional
	asJson bool,
) (string, error) {
	args := []string{command.History}
	if target != "" {
		args = append(args, command.Arg(command.TargetName), target.flag())
	}
	args = appendFlag(args, command.Arg(command.Since), since)
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true})
}

// Roll a target back to a known good state.
// Stable (or staging) returns to its previous or a given revision, the canary to the image stable runs. Works when an
// interrupted run left the release pending.
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
	// Print the record as JSON instead of Markdown.
	// +optional
	asJson bool,
) (string, error) {
	args := []string{command.Rollback, command.Arg(command.TargetName), target.flag()}
	if revision != 0 {
		args = append(args, command.Arg(command.Revision), strconv.Itoa(revision))
	}
	args = appendFlag(args, command.Arg(command.Timeout), timeout)
	args = appendFlag(args, command.Arg(command.Holder), holder)
	args = append(args, m.reproduceFlags(ctx, pipeline.Call{Verb: command.Rollback, Target: target.name()}, documents{})...)
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true})
}

// Take over a release the old pipeline wrote: report, then delete its old records.
// Shows which revision runs and who wrote it, the old pipeline's revisions history still keeps (their values may hold
// secrets, never printed), the fixed-name Secrets and what still reads them. With --delete-old-records it deletes those
// revisions, refused until a ringg-ci revision is the deployed one (docs/operations.md, "First run in production").
// +cache="never"
func (m *RinggCi) Takeover(
	ctx context.Context,
	// Target whose release to look at.
	target Target,
	// Delete the revisions the old pipeline wrote; without it, a dry run that changes nothing.
	// +optional
	deleteOldRecords bool,
	// Who runs this, shown to a concurrent run that finds the release locked.
	// +optional
	holder string,
	// Print JSON instead of text.
	// +optional
	asJson bool,
) (string, error) {
	args := []string{command.Takeover, command.Arg(command.TargetName), target.flag()}
	if deleteOldRecords {
		args = append(args, command.Arg(command.DeleteOldRecords))
	}
	args = appendFlag(args, command.Arg(command.Holder), holder)
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true})
}

// Show what each target runs.
// Per target: the release revision and state, the digest it runs and pods ready/total; and whether canary and stable
// run the same digest.
// +cache="never"
func (m *RinggCi) Status(
	ctx context.Context,
	// Target to show (default: all of them).
	// +optional
	target Target,
	// Print JSON instead of text.
	// +optional
	asJson bool,
) (string, error) {
	args := []string{command.Status}
	if target != "" {
		args = append(args, command.Arg(command.TargetName), target.flag())
	}
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true})
}

// Check the health endpoint of every pod of a target.
// Each pod's /pc/v1/healthcheck is called through the API server (port-forward, no kubectl); fails if any pod does not
// answer 200.
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
	asJson bool,
) (string, error) {
	args := []string{command.Health, command.Arg(command.TargetName), target.flag(), command.Arg(command.Timeout), timeout}
	return m.run(ctx, call{args: withJSON(args, asJson), cluster: true})
}

// Show recent logs of a target's pods.
// Each line is prefixed with its pod; canary and stable are told apart by their version label. Output is bounded (last
// 500 lines per pod, 256 KiB in all).
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
	args := []string{command.Logs, command.Arg(command.TargetName), target.flag()}
	args = appendFlag(args, command.Arg(command.Since), since)
	args = appendFlag(args, command.Arg(command.Pod), pod)
	return m.run(ctx, call{args: args, cluster: true})
}

// Scale a target by hand until the next deploy or promote.
// Runs under the release's lock. The next deploy or promote restores the chart's replica count. Refused while an
// autoscaler manages the Deployment, on the canary beyond 5 replicas, below the PodDisruptionBudget's floor, and for a
// cut of more than a quarter of the pods without --force.
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
	// Allow removing more than a quarter of the pods in one step.
	// +optional
	force bool,
	// Who runs this, shown to a concurrent run that finds the release locked.
	// +optional
	holder string,
) (string, error) {
	args := []string{command.Scale, command.Arg(command.TargetName), target.flag(), command.Arg(command.Replicas), strconv.Itoa(replicas), command.Arg(command.Wait), wait}
	if force {
		args = append(args, command.Arg(command.Force))
	}
	args = appendFlag(args, command.Arg(command.Holder), holder)
	return m.run(ctx, call{args: args, cluster: true})
}

// Run the whole pipeline against throwaway services, with no cloud and no credentials.
// Builds the image, smoke-tests it, starts a throwaway registry and Kubernetes cluster (the official kube-apiserver,
// kube-controller-manager and etcd images, with fake nodes), then deploys staging and the canary, promotes, deploys a
// new canary, rolls it back, checks health and reads logs, printing status after each step, all with the real release
// engine. No container really runs: fake nodes play the stand-in chatbot with each pod's environment. With --branch it
// deploys one branch as CI does (`replay` also runs the app for real).
// +cache="never"
func (m *RinggCi) Sandbox(
	ctx context.Context,
	// Repository root holding the sandbox cluster's launcher (default: this repository).
	// +defaultPath="/"
	// +ignore=["**", "!go.mod", "!go.sum", "!ci/go.mod", "!cmd/sandbox-cluster/**", "!testcluster/fakenode/**", "!testcluster/fakekubelet/**", "!testcluster/standin/**", "!examples/chatbot/go.mod", "!examples/chatbot/go.sum", "!examples/chatbot/server/**", "!tools/testcluster/controlplane/**", "**/*_test.go", "**/testdata/**"]
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
	return m.sandbox(ctx, repo, branch, secretsJson, credsJson, commit)
}

// Replay a deploy on this machine with no cloud: the app really running, and the release on fake nodes.
// Runs the image built from --source for this machine's platform as the chart configures the pod for the branch's
// target (its env, every key of --secrets-json as a variable, --creds-json at /app/creds.json, its port, its readiness
// and liveness probes with their paths and timing) and reports what the kubelet would see: ready, not ready with the
// probe's answer, or crashed with its exit code and last lines; then deploys it to a throwaway cluster on fake nodes as
// the run did. With -i, an app that does not become ready leaves a shell in its container. A failed deploy's record
// prints this command.
// +cache="never"
func (m *RinggCi) Replay(
	ctx context.Context,
	// Repository root holding the sandbox cluster's launcher (default: this repository).
	// +defaultPath="/"
	// +ignore=["**", "!go.mod", "!go.sum", "!ci/go.mod", "!cmd/sandbox-cluster/**", "!testcluster/fakenode/**", "!testcluster/fakekubelet/**", "!testcluster/standin/**", "!examples/chatbot/go.mod", "!examples/chatbot/go.sum", "!examples/chatbot/server/**", "!tools/testcluster/controlplane/**", "**/*_test.go", "**/testdata/**"]
	repo *dagger.Directory,
	// Branch whose deploy to replay: dv-stage or dv-main.
	branch string,
	// Commit SHA of the run, used as the image tag.
	// +optional
	commit string,
	// The run's application environment JSON, from a local file (never fetched from anywhere).
	// +optional
	secretsJson *dagger.Secret,
	// The run's GCP credentials JSON, from a local file.
	// +optional
	credsJson *dagger.Secret,
	// How long one second of the probes' numbers lasts, e.g. 100ms to run them ten times faster (default: a second).
	// +optional
	timeScale string,
) (string, error) {
	return m.replay(ctx, repo, branch, commit, secretsJson, credsJson, timeScale)
}

// The app's image configured as the chart configures the pod for a branch's target, for a shell or a service.
// Its env, every key of --secrets-json as a variable, --creds-json at /app/creds.json and its port, built for this
// machine's platform. Chain it: `pod --branch dv-main --secrets-json file://s.json terminal`, `pod … as-service up
// --ports 8765:8765`.
func (m *RinggCi) Pod(
	ctx context.Context,
	// Branch whose target's pod to configure: dv-stage or dv-main.
	branch string,
	// Application environment JSON, from a local file.
	// +optional
	secretsJson *dagger.Secret,
	// GCP credentials JSON, from a local file.
	// +optional
	credsJson *dagger.Secret,
) (*dagger.Container, error) {
	ctr, _, err := m.pod(ctx, branch, secretsJson, credsJson)
	return ctr, err
}

// appendFlag appends name and value unless value is empty.
func appendFlag(args []string, name, value string) []string {
	if value == "" {
		return args
	}
	return append(args, name, value)
}

// withJSON appends --json when asked.
func withJSON(args []string, asJSON bool) []string {
	if asJSON {
		return append(args, command.Arg(command.JSON))
	}
	return args
}
