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
	"github.com/ringg/ringg-ci/ci/pipeline"
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

// New configures the module. Credentials given here serve every function:
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
	return publish(ctx, variants, t.Image, tagFor(commit, time.Now()), auth)
}

// Lint the chart and render it for every target; fails on any Helm lint error or warning.
// +check
func (m *RinggCi) LintChart(ctx context.Context) (string, error) {
	dir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return "", err
	}
	defer cleanup()
	var out strings.Builder
	for _, t := range targets.All() {
		computed := pipeline.ComputedValues(pipeline.Image{Repository: t.Image, Digest: "sha256:" + strings.Repeat("0", 64)}, pipeline.SecretNames{})
		if err := chart.Lint(dir, t.ValuesFiles, computed); err != nil {
			return "", err
		}
		ch, err := chart.Load(dir)
		if err != nil {
			return "", err
		}
		vals, err := chart.Values(dir, t.ValuesFiles, computed)
		if err != nil {
			return "", err
		}
		ms, err := chart.Render(ch, vals, chart.RenderOptions{Release: t.Release, Namespace: t.Namespace})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "%s: lint clean, renders %s\n", t.Name, strings.Join(ms.Kinds(), ", "))
	}
	return out.String(), nil
}

// Run the built image as a service and check that /pc/v1/healthcheck answers 200.
// +check
func (m *RinggCi) SmokeTest(ctx context.Context) (string, error) {
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
