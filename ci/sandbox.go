package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/kube"
	"github.com/ringg/ringg-ci/ci/pipeline"
	"github.com/ringg/ringg-ci/ci/release"
	"github.com/ringg/ringg-ci/ci/targets"
)

// The sandbox's throwaway services. Images are pinned to full tags; the
// cluster needs nothing but the Go toolchain image.
const (
	// sandboxGoImage builds and runs the test cluster (go.mod asks for Go 1.26.1 or later).
	sandboxGoImage = "golang:1.26.8-bookworm"
	// sandboxRegistryImage is the throwaway registry the sandbox pushes to.
	sandboxRegistryImage = "registry:2.8.3"

	// sandboxClusterAlias is the host name the cluster's serving
	// certificate carries and the alias it is bound under.
	sandboxClusterAlias = "kube"
	sandboxAPIPort      = 6443
	// sandboxReadyPort opens only once the API server is ready and the fake
	// nodes are registered: Dagger's health check waits for it. It serves
	// GET /kubeconfig.
	sandboxReadyPort = 6444

	sandboxRegistryAlias = "registry"
	sandboxRegistryPort  = 5000
	// sandboxRegistryAddress is the registry as the engine's pusher is told
	// about it with ContainerPublishOpts.RegistryService: a localhost name,
	// because the engine speaks plain HTTP only to localhost registries
	// (registry:2 serves plain HTTP) and v0.21.9 has no option to ask for it.
	sandboxRegistryAddress = "localhost:5000"

	goModCache   = "/go/pkg/mod"
	goBuildCache = "/root/.cache/go-build"
)

// sandboxGoBuilder is the Go toolchain with module and build caches in cache
// volumes, so a second run compiles nothing that did not change.
func sandboxGoBuilder() *dagger.Container {
	return dag.Container().From(sandboxGoImage).
		WithMountedCache(goModCache, dag.CacheVolume("ringg-ci-go-mod")).
		WithMountedCache(goBuildCache, dag.CacheVolume("ringg-ci-go-build")).
		WithEnvVariable("GOCACHE", goBuildCache).
		WithEnvVariable("GOFLAGS", "-trimpath").
		WithEnvVariable("CGO_ENABLED", "0")
}

// sandboxClusterImage builds the testcluster helper (tools/testcluster, its
// own module, built alone so edits elsewhere do not relink its 200 MB) and
// cmd/sandbox-cluster (root module) from repo, and returns the Go image with
// both in /usr/local/bin.
func sandboxClusterImage(repo *dagger.Directory) *dagger.Container {
	// The same version stamp as testcluster.Build: without it /version
	// reports v0.0.0 and charts with a kubeVersion constraint are refused.
	const buildTestcluster = `set -eu
v="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
major="${v#v}"; major="${major%%.*}"
minor="${v#v*.}"; minor="${minor%%.*}"
go build -ldflags "-X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor" -o /out/testcluster .
`
	testcluster := sandboxGoBuilder().
		WithDirectory("/src", repo.Directory("tools/testcluster")).
		WithWorkdir("/src").
		WithEnvVariable("GOWORK", "off").
		WithExec([]string{"sh", "-c", buildTestcluster}).
		File("/out/testcluster")
	sandboxClusterBin := sandboxGoBuilder().
		WithDirectory("/src", repo).
		WithWorkdir("/src").
		WithExec([]string{"go", "build", "-o", "/out/sandbox-cluster", "./cmd/sandbox-cluster"}).
		File("/out/sandbox-cluster")
	return dag.Container().From(sandboxGoImage).
		WithFile("/usr/local/bin/testcluster", testcluster).
		WithFile("/usr/local/bin/sandbox-cluster", sandboxClusterBin)
}

// sandboxCluster builds the project's test cluster from repo (go.mod, go.sum,
// ci/, testcluster/, cmd/ and tools/testcluster/ are enough), starts it as a
// service bound under the alias "kube" (etcd, kube-apiserver,
// kube-controller-manager and fake nodes that make pods Ready), and returns
// the running service with an admin kubeconfig for use from this function:
// its server is the service's endpoint, and the certificate is checked
// against "kube", so verification stays complete. The kubeconfig holds the
// throwaway cluster's admin key: keep it out of logs and return values.
func sandboxCluster(ctx context.Context, repo *dagger.Directory) (*dagger.Service, []byte, error) {
	image := sandboxClusterImage(repo)
	// Every call gets its own cluster and credentials; the run id also keeps
	// Dagger from reusing a kubeconfig fetched from an earlier cluster.
	run := rand.Text()
	seed := dag.SetSecret("sandbox-pki-seed-"+run, rand.Text())
	svc, err := image.
		WithEnvVariable("SANDBOX_RUN", run).
		// Every instance started from this definition derives the same CA
		// and admin key, so the kubeconfig fits whichever one answers.
		WithSecretVariable("SANDBOX_PKI_SEED", seed).
		WithExposedPort(sandboxAPIPort).
		WithExposedPort(sandboxReadyPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{
			"/usr/local/bin/sandbox-cluster", "serve",
			"--testcluster", "/usr/local/bin/testcluster",
			"--bind-address", "0.0.0.0",
			"--api-port", strconv.Itoa(sandboxAPIPort),
			"--ready-port", strconv.Itoa(sandboxReadyPort),
			"--alias", sandboxClusterAlias,
		}}).
		Start(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("start the sandbox cluster: %w; run with --progress plain to see its log", err)
	}
	endpoint, err := svc.Endpoint(ctx, dagger.ServiceEndpointOpts{Port: sandboxAPIPort})
	if err != nil {
		return nil, nil, fmt.Errorf("find the sandbox cluster's address: %w", err)
	}
	const out = "/sandbox/kubeconfig"
	kubeconfig, err := image.
		WithServiceBinding(sandboxClusterAlias, svc).
		WithEnvVariable("SANDBOX_RUN", run).
		WithExec([]string{
			"/usr/local/bin/sandbox-cluster", "kubeconfig",
			"--url", "http://" + sandboxClusterAlias + ":" + strconv.Itoa(sandboxReadyPort) + "/kubeconfig",
			"--server", endpoint,
			"--tls-server-name", sandboxClusterAlias,
			"--out", out,
		}).
		File(out).
		Contents(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch the sandbox cluster's kubeconfig: %w", err)
	}
	return svc, []byte(kubeconfig), nil
}

// sandboxRegistry starts a throwaway registry (registry:2, plain HTTP, no
// auth) and returns it with the address to put in image references pushed
// by the engine: Publish(ctx, addr+"/ringg/chatbot:tag",
// ContainerPublishOpts{RegistryService: svc}). The registry keeps images only
// while the service runs; the sandbox's fake nodes never pull them.
func sandboxRegistry(ctx context.Context) (*dagger.Service, string, error) {
	svc, err := dag.Container().From(sandboxRegistryImage).
		WithExposedPort(sandboxRegistryPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"/bin/registry", "serve", "/etc/docker/registry/config.yml"}}).
		Start(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("start the sandbox registry: %w", err)
	}
	return svc, sandboxRegistryAddress, nil
}

// sandboxPush pushes the variants (one image, or an index for several) to the
// sandbox registry as repo:tag without the engine's pusher: crane pushes the
// OCI tarball from a container bound to the registry, over plain HTTP. repo
// is "<registry address>/<path>"; it returns repo@sha256:… . It is the
// fallback for when Publish with RegistryService cannot reach the registry.
func sandboxPush(ctx context.Context, registry *dagger.Service, variants []*dagger.Container, repo, tag string) (string, error) {
	if len(variants) == 0 {
		return "", fmt.Errorf("push %s to the sandbox registry: no platform to push", repo)
	}
	_, path, ok := strings.Cut(repo, "/")
	if !ok || path == "" {
		return "", fmt.Errorf("push %s to the sandbox registry: want <registry>/<path>", repo)
	}
	tarball := variants[0].AsTarball(dagger.ContainerAsTarballOpts{PlatformVariants: variants[1:]})
	crane := sandboxGoBuilder().
		WithEnvVariable("GOBIN", "/out").
		WithExec([]string{"go", "install", "github.com/google/go-containerregistry/cmd/crane@v0.22.1"}).
		File("/out/crane")
	target := sandboxRegistryAlias + ":" + strconv.Itoa(sandboxRegistryPort) + "/" + path + ":" + tag
	pushed, err := dag.Container().From(sandboxGoImage).
		WithFile("/usr/local/bin/crane", crane).
		WithFile("/image.tar", tarball).
		WithServiceBinding(sandboxRegistryAlias, registry).
		// The registry lives only as long as its service: never reuse a
		// push made to an earlier one.
		WithEnvVariable("SANDBOX_RUN", rand.Text()).
		WithExec([]string{"sh", "-c", `set -eu; mkdir /image; tar -xf /image.tar -C /image; crane push --insecure /image "$0"`, target}).
		Stdout(ctx)
	if err != nil {
		return "", fmt.Errorf("push %s to the sandbox registry: %w", target, err)
	}
	_, digest, ok := strings.Cut(strings.TrimSpace(pushed), "@")
	if !ok || !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("push %s to the sandbox registry: crane printed %q, not a digest reference", target, strings.TrimSpace(pushed))
	}
	return repo + "@" + digest, nil
}

// sandboxInput is what the Sandbox function was called with.
type sandboxInput struct {
	repo                   *dagger.Directory
	branch, commit         string
	secretsJson, credsJson *dagger.Secret
}

// sandboxSampleEnv is the app environment deployed when the caller gives
// none: no real secret, so the tour needs no credentials.
const sandboxSampleEnv = `{"ENVIRONMENT":"sandbox","OPENAI_API_KEY":"sk-sandbox-not-a-key","REDIS_URL":"redis://redis.invalid:6379/0"}`

// sandboxTargetOverrides keeps staging and production apart in the one
// throwaway cluster (both have a release named dv-pipecat) and points every
// target at the throwaway registry.
func sandboxTargetOverrides(t targets.Name) targets.Overrides {
	repo := sandboxRegistryAlias + ":" + strconv.Itoa(sandboxRegistryPort)
	if t == targets.Staging {
		return targets.Overrides{Namespace: "sandbox-staging", Image: repo + "/ringg-registry-stage/dv-pipecat"}
	}
	return targets.Overrides{Namespace: "sandbox-production", Image: repo + "/ringg-registry-prod/dv-pipecat"}
}

// sandbox runs the tour (or one replayed deploy) and returns its report.
func (m *RinggCi) sandbox(ctx context.Context, in sandboxInput) (string, error) {
	log := logger()
	var report strings.Builder
	step := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		log.Info(line)
		fmt.Fprintf(&report, "\n## %s\n\n", line)
	}

	step("smoke test: the built image answers /pc/v1/healthcheck")
	smoke, err := m.smoke(ctx)
	if err != nil {
		return report.String(), err
	}
	report.WriteString(smoke + "\n")

	step("start a throwaway registry and Kubernetes API server")
	registry, _, err := sandboxRegistry(ctx)
	if err != nil {
		return report.String(), err
	}
	_, kubeconfig, err := sandboxCluster(ctx, in.repo)
	if err != nil {
		return report.String(), err
	}
	cfg, err := kube.FromKubeconfig(kubeconfig, kube.KubeconfigOptions{})
	if err != nil {
		return report.String(), err
	}
	report.WriteString("Pods are made Ready by a fake node: no container really runs and no image is pulled.\n")
	clients := release.Clients{Config: cfg, Logger: log}

	appEnv := in.secretsJson
	if appEnv == nil && in.branch == "" {
		appEnv = dag.SetSecret("sandbox-sample-env", sandboxSampleEnv)
	}
	chartDir, cleanup, err := m.chartDir(ctx)
	if err != nil {
		return report.String(), err
	}
	defer cleanup()

	deploy := func(branch string) error {
		t, err := targets.ForBranch(branch)
		if err != nil {
			return err
		}
		o := sandboxTargetOverrides(t.Name)
		t = t.With(o)
		step("deploy %s (%s, %s) to the sandbox", branch, t.Name, strings.Join(t.Platforms, ", "))
		bundle, names, err := m.secretBundle(ctx, appEnv, in.credsJson, t.Namespace)
		if err != nil {
			return err
		}
		variants, err := m.variants(ctx, t.Platforms)
		if err != nil {
			return err
		}
		ref, err := sandboxPush(ctx, registry, variants, t.Image, tagFor(in.commit, time.Now()))
		if err != nil {
			return err
		}
		plan, err := pipeline.NewDeploy(pipeline.DeployInput{Branch: branch, Overrides: o, ChartDir: chartDir, Image: ref, NewSecrets: names, Holder: "ringg-ci sandbox"})
		if err != nil {
			return err
		}
		res, err := (&release.Deployer{Clients: clients, Plan: plan, Secrets: bundle, Options: progressOptions(log)}).Run(ctx)
		if err != nil {
			return err
		}
		report.WriteString(res.Summary())
		return nil
	}
	status := func(names ...targets.Name) error {
		o := sandboxTargetOverrides(names[0])
		plan, err := pipeline.NewStatus(names, o)
		if err != nil {
			return err
		}
		st, err := (&release.Statuser{Clients: clients, Plan: plan}).Run(ctx)
		if err != nil {
			return err
		}
		report.WriteString("\n```\n" + st.String() + "```\n")
		return nil
	}

	if in.branch != "" {
		if err := deploy(in.branch); err != nil {
			return report.String(), err
		}
		t, _ := targets.ForBranch(in.branch)
		return report.String(), status(t.Name)
	}
	for _, s := range []func() error{
		func() error { return deploy("dv-stage") },
		func() error { return status(targets.Staging) },
		func() error { return deploy("dv-main") },
		func() error { return status(targets.Canary, targets.Stable) },
		func() error {
			step("promote the canary to stable (60 replicas)")
			plan, err := pipeline.NewPromote(pipeline.PromoteInput{Overrides: sandboxTargetOverrides(targets.Stable), ChartDir: chartDir, Soak: 5 * time.Second, Holder: "ringg-ci sandbox"})
			if err != nil {
				return err
			}
			res, err := (&release.Promoter{Clients: clients, Plan: plan, Options: progressOptions(log)}).Run(ctx)
			if err != nil {
				return err
			}
			report.WriteString(res.Summary())
			return nil
		},
		func() error { return status(targets.Canary, targets.Stable) },
		func() error {
			step("roll the canary back to the image stable runs")
			plan, err := pipeline.NewRollback(pipeline.RollbackInput{Target: targets.Canary, Overrides: sandboxTargetOverrides(targets.Canary), ChartDir: chartDir, Holder: "ringg-ci sandbox"})
			if err != nil {
				return err
			}
			res, err := (&release.Rollbacker{Clients: clients, Plan: plan, Options: progressOptions(log)}).Run(ctx)
			if err != nil {
				return err
			}
			report.WriteString(res.Summary())
			return nil
		},
		func() error { return status(targets.Canary, targets.Stable) },
	} {
		if err := s(); err != nil {
			return report.String(), err
		}
	}
	return report.String(), nil
}
