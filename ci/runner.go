package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/scrub"
	"github.com/ringg/ringg-ci/ci/targets"
)

const (
	// goImage builds the runner (go.mod asks for Go 1.26.1 or later). The
	// runner image itself has no base: the binary carries its TLS roots.
	goImage      = "golang:1.26.8-bookworm"
	goModCache   = "/go/pkg/mod"
	goBuildCache = "/root/.cache/go-build"

	// chartPath is where the chart is mounted in the runner.
	chartPath = "/work/chart"
	// clusterAlias is the host name --cluster is bound under in the runner.
	clusterAlias = "cluster"
	// prometheusAlias is the host name --prometheus is bound under.
	prometheusAlias = "prometheus"
	// verificationPath is where a --verification document is mounted.
	verificationPath = "/work/verification.yaml"
)

// goBuilder is the Go toolchain with module and build caches in cache
// volumes, so a second run compiles nothing that did not change. The same
// flags for every Go build in the module let them share compiled packages.
func goBuilder() *dagger.Container {
	return dag.Container().From(goImage).
		WithMountedCache(goModCache, dag.CacheVolume("ringg-ci-go-mod")).
		WithMountedCache(goBuildCache, dag.CacheVolume("ringg-ci-go-build")).
		WithEnvVariable("GOCACHE", goBuildCache).
		WithEnvVariable("GOFLAGS", "-trimpath").
		WithEnvVariable("CGO_ENABLED", "0")
}

// runnerRelease is the ringg-ci runner image the release workflow
// (.github/workflows/release.yml) published for every platform, pinned by
// digest, with the digest of what it was built from: the runner source and
// the recipe that builds it (runnerRecipe). A run whose source and recipe
// have exactly that digest pulls it (seconds); any other, an unreleased
// commit, a local edit or a changed recipe, builds the runner from source,
// which costs a cold engine about two minutes once (docs/benchmarks.md).
// Empty until the first release.
var runnerRelease = struct{ image, sourceDigest string }{}

// runnerRecipe is how the runner image is made, as it enters the pin's
// digest: change the build and the pin no longer matches.
const runnerRecipe = "builder " + goImage + "; CGO_ENABLED=0 GOFLAGS=-trimpath go build -ldflags=-s -w ./cmd/ringg-ci; " +
	"image: the binary alone at /usr/local/bin/ringg-ci, HOME=/tmp, entrypoint the binary"

// builtFrom is the digest a runner pin names: of the runner source and the
// recipe together.
func (m *RinggCi) builtFrom(ctx context.Context) (string, error) {
	digest, err := dag.Directory().
		WithDirectory("source", m.RunnerSource).
		WithNewFile("recipe", runnerRecipe).
		Digest(ctx)
	if err != nil {
		return "", fmt.Errorf("hash the runner source and recipe: %w", err)
	}
	return digest, nil
}

// runnerBinary compiles the ringg-ci command from the runner source for a
// platform: natively or cross-compiled, never emulated (pure Go, no cgo).
func (m *RinggCi) runnerBinary(platform dagger.Platform) *dagger.File {
	goos, goarch, _ := strings.Cut(string(platform), "/")
	goarch, _, _ = strings.Cut(goarch, "/")
	return goBuilder().
		WithDirectory("/src", m.RunnerSource).
		WithWorkdir("/src").
		WithEnvVariable("GOOS", goos).
		WithEnvVariable("GOARCH", goarch).
		WithExec([]string{"go", "build", "-ldflags=-s -w", "-o", "/out/ringg-ci", "./cmd/ringg-ci"}).
		File("/out/ringg-ci")
}

// runnerImage is the ringg-ci command alone, on no base image: what the
// release publishes.
func runnerImage(platform dagger.Platform, bin *dagger.File) *dagger.Container {
	return dag.Container(dagger.ContainerOpts{Platform: platform}).
		WithFile("/usr/local/bin/ringg-ci", bin).
		WithEnvVariable("PATH", "/usr/local/bin").
		// Helm keeps its cache and config under $HOME.
		WithEnvVariable("HOME", "/tmp").
		WithEntrypoint([]string{"/usr/local/bin/ringg-ci"}).
		WithLabel("org.opencontainers.image.title", "ringg-ci").
		WithLabel("org.opencontainers.image.description", "the ringg-ci runner: the cluster verbs of the ringg-ci Dagger module")
}

// runner is a container with the ringg-ci command, the released image when
// it was built from this runner source, else built from it, and the chart at
// chartPath.
func (m *RinggCi) runner(ctx context.Context) (*dagger.Container, error) {
	var ctr *dagger.Container
	if runnerRelease.image != "" {
		digest, err := m.builtFrom(ctx)
		if err != nil {
			return nil, err
		}
		if digest == runnerRelease.sourceDigest {
			ctr = dag.Container().From(runnerRelease.image)
		} else {
			logf("the pinned runner %s was built from source and recipe %s; this run's are %s: building the runner from source (a few minutes, once per engine)",
				runnerRelease.image, runnerRelease.sourceDigest, digest)
		}
	}
	if ctr == nil {
		native, err := dag.DefaultPlatform(ctx)
		if err != nil {
			return nil, fmt.Errorf("read the engine's platform: %w", err)
		}
		ctr = runnerImage(native, m.runnerBinary(native))
	}
	return ctr.
		// A plain directory, not a tmpfs: the files the runner writes for the
		// module (the target, a registry password) are read back from it.
		WithDirectory("/tmp", dag.Directory()).
		WithDirectory(chartPath, m.Chart).
		WithWorkdir("/work"), nil
}

// documents are the secret documents a verb applies or compares.
type documents struct {
	secretsJSON, credsJSON *dagger.Secret
}

// call is one run of the ringg-ci command.
type call struct {
	// args are the verb and its own flags.
	args []string
	// cluster: the verb talks to a cluster (kubeconfig or GKE).
	cluster bool
	// google: the verb needs Google credentials but no cluster.
	google bool
	docs   documents
	// verification is a document replacing the target's calls and metrics.
	verification *dagger.File
	// prometheus is a Prometheus API on the caller's machine.
	prometheus *dagger.Service
}

// run runs the ringg-ci command and returns what it printed on standard
// output; a failure returns its error lines (its progress is in the log).
func (m *RinggCi) run(ctx context.Context, c call) (string, error) {
	ctr, err := m.exec(ctx, c)
	if err != nil {
		return "", err
	}
	return ctr.Stdout(ctx)
}

// exec runs the ringg-ci command and returns the container after it, once
// it exited 0.
func (m *RinggCi) exec(ctx context.Context, c call) (*dagger.Container, error) {
	s := newScrubber()
	ctr, err := m.runner(ctx)
	if err != nil {
		return nil, err
	}
	// Every run is a new run: never reuse the output of an earlier one.
	// Its errors name this module's flags, not the runner's.
	ctr = ctr.WithEnvVariable("RINGG_CI_RUN", s.run).WithEnvVariable(command.EnvCaller, command.CallerModule)
	args := append([]string{"ringg-ci"}, c.args...)
	if c.args[0] != command.LintChart {
		args = append(args, m.overrideFlags()...)
	}
	switch c.args[0] {
	case command.Deploy, command.Plan, command.Promote, command.Rollback, command.Target, command.LintChart, command.Takeover, command.PodSpec:
		args = append(args, command.Arg(command.Chart), chartPath)
	}
	if c.cluster || c.google {
		if ctr, args, err = m.withGoogle(ctx, ctr, args, s); err != nil {
			return nil, err
		}
	}
	if c.cluster {
		if ctr, args, err = m.withCluster(ctx, ctr, args, s); err != nil {
			return nil, err
		}
	}
	if c.verification != nil {
		ctr = ctr.WithFile(verificationPath, c.verification)
		args = append(args, command.Arg(command.Verification), verificationPath)
	}
	if c.prometheus != nil {
		endpoint, err := c.prometheus.Endpoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("reach --prometheus: %w; pass it as tcp://localhost:PORT of the Prometheus API", err)
		}
		_, port, err := net.SplitHostPort(endpoint)
		if err != nil {
			return nil, fmt.Errorf("reach --prometheus: endpoint %q has no port: %w", endpoint, err)
		}
		ctr = ctr.WithServiceBinding(prometheusAlias, c.prometheus)
		args = append(args, command.Arg(command.PrometheusURL), "http://"+net.JoinHostPort(prometheusAlias, port))
	}
	for _, d := range []struct {
		flag   string
		secret *dagger.Secret
		leaves func(string) []string
	}{{command.SecretsJSON, c.docs.secretsJSON, scrub.AppEnvValues}, {command.CredsJSON, c.docs.credsJSON, scrub.CredentialValues}} {
		if d.secret == nil {
			continue
		}
		if ctr, args, err = s.file(ctx, ctr, args, d.flag, d.secret, d.leaves); err != nil {
			return nil, err
		}
	}
	ctr = ctr.WithExec(args, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
	code, err := ctr.ExitCode(ctx)
	if err != nil {
		return nil, fmt.Errorf("run ringg-ci %s: %w", c.args[0], err)
	}
	if code != 0 {
		stderr, _ := ctr.Stderr(ctx)
		stdout, _ := ctr.Stdout(ctx)
		return nil, commandError(c.args[0], code, stdout, stderr)
	}
	return ctr, nil
}

// The lines around what a failed run printed as its result (a record, a
// health table) in the module's error: a workflow finds the record there
// (deploy/app-repository/.github/workflows).
const (
	recordBegin = "<!-- ringg-ci:record -->"
	recordEnd   = "<!-- ringg-ci:end -->"
)

// commandError is the error of a failed ringg-ci run: its own error lines
// (progress was logged as it ran) and, between recordBegin and recordEnd,
// what it printed as a result: the run's record, the health table that says
// which pods failed.
func commandError(verb string, code int, stdout, stderr string) error {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "ringg-ci") || len(lines) > 0 {
			lines = append(lines, line)
		}
	}
	msg := strings.TrimSpace(strings.Join(lines, "\n"))
	if msg == "" {
		msg = fmt.Sprintf("ringg-ci %s exited %d; its log is above (--progress plain shows all of it)", verb, code)
	}
	if out := strings.TrimSpace(stdout); out != "" {
		msg += "\n\n" + recordBegin + "\n" + out + "\n" + recordEnd
	}
	return fmt.Errorf("%s", msg)
}

// overrideFlags passes the target overrides on.
func (m *RinggCi) overrideFlags() []string {
	var args []string
	args = appendFlag(args, command.Arg(command.Project), m.Project)
	args = appendFlag(args, command.Arg(command.ImageRepository), m.ImageRepository)
	args = appendFlag(args, command.Arg(command.ClusterName), m.ClusterName)
	args = appendFlag(args, command.Arg(command.ClusterLocation), m.ClusterLocation)
	args = appendFlag(args, command.Arg(command.Namespace), m.Namespace)
	return args
}

// withGoogle mounts the Google credentials.
func (m *RinggCi) withGoogle(ctx context.Context, ctr *dagger.Container, args []string, s *scrubber) (*dagger.Container, []string, error) {
	var err error
	for _, c := range []struct {
		flag   string
		secret *dagger.Secret
		leaves func(string) []string
	}{
		{command.AccessTokenFile, m.AccessToken, nil},
		{command.CredentialsJSON, m.CredentialsJson, scrub.CredentialValues},
	} {
		if c.secret == nil {
			continue
		}
		if ctr, args, err = s.file(ctx, ctr, args, c.flag, c.secret, c.leaves); err != nil {
			return nil, nil, err
		}
	}
	// GitHub's names for the OIDC request, which the runner reads as GitHub
	// Actions sets them.
	if m.OidcRequestUrl != nil {
		ctr = ctr.WithSecretVariable(command.EnvOIDCRequestURL, m.OidcRequestUrl)
	}
	if m.OidcRequestToken != nil {
		ctr = ctr.WithSecretVariable(command.EnvOIDCRequestToken, m.OidcRequestToken)
	}
	args = appendFlag(args, command.Arg(command.WorkloadIdentityProvider), m.WorkloadIdentityProvider)
	args = appendFlag(args, command.Arg(command.ServiceAccount), m.ServiceAccount)
	return ctr, args, nil
}

// withCluster mounts the kubeconfig and binds --cluster.
func (m *RinggCi) withCluster(ctx context.Context, ctr *dagger.Container, args []string, s *scrubber) (*dagger.Container, []string, error) {
	if m.Kubeconfig == nil {
		if m.Cluster != nil {
			return nil, nil, fmt.Errorf("--cluster needs --kubeconfig: pass the kubeconfig of the API server it tunnels to")
		}
		return ctr, args, nil
	}
	ctr, args, err := s.file(ctx, ctr, args, command.Kubeconfig, m.Kubeconfig, scrub.KubeconfigValues)
	if err != nil {
		return nil, nil, err
	}
	args = appendFlag(args, command.Arg(command.Context), m.KubeContext)
	if m.Cluster != nil {
		endpoint, err := m.Cluster.Endpoint(ctx, dagger.ServiceEndpointOpts{Port: m.ClusterPort})
		if err != nil {
			return nil, nil, fmt.Errorf("reach --cluster: %w; pass it as tcp://localhost:PORT of the API server", err)
		}
		_, port, err := net.SplitHostPort(endpoint)
		if err != nil {
			return nil, nil, fmt.Errorf("reach --cluster: endpoint %q has no port: %w", endpoint, err)
		}
		ctr = ctr.WithServiceBinding(clusterAlias, m.Cluster)
		args = append(args, command.Arg(command.Server), net.JoinHostPort(clusterAlias, port))
		args = appendFlag(args, command.Arg(command.TLSServerName), m.ClusterTlsServerName)
	}
	return ctr, args, nil
}

// overrides are the constructor's replacements of the targets' defaults.
func (m *RinggCi) overrides() targets.Overrides {
	return targets.Overrides{
		Project: m.Project, Image: m.ImageRepository, ClusterName: m.ClusterName, ClusterLocation: m.ClusterLocation, Namespace: m.Namespace,
		Identity: targets.Identity{Provider: m.WorkloadIdentityProvider, ServiceAccount: m.ServiceAccount},
	}
}

// resolve finds a target by name, or by the branch that deploys it, with
// the overrides applied, in process: building and publishing never need the
// runner. It says whether the source is the stand-in chatbot, which is
// refused for a target's own repository.
func (m *RinggCi) resolve(ctx context.Context, name targets.Name, branch string) (targets.Target, bool, error) {
	var t targets.Target
	var err error
	if branch != "" {
		t, err = targets.ForBranch(branch)
	} else {
		t, err = targets.Get(name)
	}
	if err != nil {
		return t, false, err
	}
	t = t.With(m.overrides())
	if err := t.Validate(); err != nil {
		return t, false, err
	}
	standIn, err := m.Source.Exists(ctx, standInMarker)
	if err != nil {
		return t, false, fmt.Errorf("look for %s in --source: %w", standInMarker, err)
	}
	if standIn {
		if err := pipeline.RefuseStandIn(t); err != nil {
			return t, true, err
		}
	}
	return t, standIn, nil
}

// scrubber registers secret values with the engine under names unique to
// one run. Dagger v0.21 scrubs a value from an exec's output only when that
// exec has it as a secret variable or file, so every value that could be
// printed is mounted into the runner as its own secret variable.
type scrubber struct {
	run string
	n   int
}

func newScrubber() *scrubber { return &scrubber{run: strings.ToLower(rand.Text())} }

// secretsDir is where the runner finds the secret documents, as files: an
// environment variable holds at most 128 KiB on Linux, a document up to 1
// MiB.
const secretsDir = "/run/ringg-ci"

// file mounts secret as the file the runner's flag names, and each of the
// values leaves finds in it as a scrub-only variable: Dagger scrubs a
// secret mounted into an exec, file or variable, from what it prints.
func (s *scrubber) file(ctx context.Context, ctr *dagger.Container, args []string, flag string, secret *dagger.Secret, leaves func(string) []string) (*dagger.Container, []string, error) {
	path := secretsDir + "/" + flag
	ctr = ctr.WithMountedSecret(path, secret)
	args = append(args, command.Arg(flag), path)
	if leaves == nil {
		return ctr, args, nil
	}
	plain, err := secret.Plaintext(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("read --%s: %w", flag, err)
	}
	for _, v := range leaves(plain) {
		s.n++
		name := fmt.Sprintf("ringg-ci-%s-%s-%d", s.run, flag, s.n)
		ctr = ctr.WithSecretVariable(fmt.Sprintf("RINGG_CI_SCRUB_%d", s.n), dag.SetSecret(name, v))
	}
	return ctr, args, nil
}
