package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
)

// The sandbox's throwaway services. Images are pinned to full tags.
const (
	// sandboxRegistryImage is the throwaway registry the sandbox pushes to.
	sandboxRegistryImage = "registry:2.8.3"

	// The control plane comes from the official images of the Kubernetes
	// release the test cluster builds (tools/testcluster/go.mod) and of the
	// etcd kubeadm pins for it (DefaultEtcdVersion); cmd/sandbox-cluster's
	// tests check that they agree. The service runs in the API server's
	// image, with the other two binaries copied in from theirs, at the path
	// all three images keep them.
	sandboxAPIServerImage         = "registry.k8s.io/kube-apiserver:v1.37.2"
	sandboxControllerManagerImage = "registry.k8s.io/kube-controller-manager:v1.37.2"
	sandboxEtcdImage              = "registry.k8s.io/etcd:3.7.0-0"
	sandboxBinDir                 = "/usr/local/bin"

	// sandboxClusterAlias is the host name the cluster's serving
	// certificate carries and its served kubeconfig names.
	sandboxClusterAlias = "kube"
	sandboxAPIPort      = 6443
	// sandboxReadyPort opens only once the API server is ready, the fake
	// nodes are registered and the namespaces exist: Dagger's health check
	// waits for it. It serves GET /kubeconfig.
	sandboxReadyPort = 6444

	// sandboxRegistryAlias:sandboxRegistryPort is the registry's name in
	// the image references the releases record; the fake nodes pull
	// nothing, so no pod resolves it.
	sandboxRegistryAlias = "registry"
	sandboxRegistryPort  = 5000

	// sandboxSoak is the canary soak of the tour's promote.
	sandboxSoak = "5s"
)

// sandboxNamespace keeps staging and production apart in the one throwaway
// cluster: both have a release named dv-pipecat.
func sandboxNamespace(branch string) string {
	if branch == "dv-stage" {
		return "sandbox-staging"
	}
	return "sandbox-production"
}

// sandboxRepository is the image repository of a branch's target in the
// throwaway registry.
func sandboxRepository(branch string) string {
	repo := sandboxRegistryAlias + ":" + strconv.Itoa(sandboxRegistryPort)
	if branch == "dv-stage" {
		return repo + "/ringg-registry-stage/dv-pipecat"
	}
	return repo + "/ringg-registry-prod/dv-pipecat"
}

// sandboxLauncherSource is what building cmd/sandbox-cluster needs from
// repo: the root module's go.mod and go.sum, ci/go.mod (the root module
// replaces the ci module by ./ci) and the launcher's packages, without
// tests. Edits anywhere else leave it, and so the build, unchanged.
func sandboxLauncherSource(repo *dagger.Directory) *dagger.Directory {
	noTests := dagger.DirectoryWithDirectoryOpts{Exclude: []string{"**/*_test.go", "**/testdata"}}
	src := dag.Directory().
		WithFile("go.mod", repo.File("go.mod")).
		WithFile("go.sum", repo.File("go.sum")).
		WithFile("ci/go.mod", repo.File("ci/go.mod"))
	for _, dir := range []string{"cmd/sandbox-cluster", "testcluster/fakenode", "testcluster/fakekubelet", "testcluster/standin", "tools/testcluster/controlplane"} {
		src = src.WithDirectory(dir, repo.Directory(dir), noTests)
	}
	// The fake nodes play the stand-in chatbot with its own start-up code.
	return src.
		WithFile("examples/chatbot/go.mod", repo.File("examples/chatbot/go.mod")).
		WithFile("examples/chatbot/go.sum", repo.File("examples/chatbot/go.sum")).
		WithDirectory("examples/chatbot/server", repo.Directory("examples/chatbot/server"), noTests)
}

// sandboxClusterImage is the sandbox cluster's container: the official
// kube-apiserver image with etcd and kube-controller-manager copied from
// theirs and cmd/sandbox-cluster, built static from repo, which starts and
// watches the three (see its package doc).
func sandboxClusterImage(repo *dagger.Directory) *dagger.Container {
	launcher := goBuilder().
		WithDirectory("/src", sandboxLauncherSource(repo)).
		WithWorkdir("/src").
		WithEnvVariable("GOWORK", "off").
		WithExec([]string{"go", "build", "-ldflags=-s -w", "-o", "/out/sandbox-cluster", "./cmd/sandbox-cluster"}).
		File("/out/sandbox-cluster")
	binary := func(image, name string) *dagger.File {
		return dag.Container().From(image).File(sandboxBinDir + "/" + name)
	}
	return dag.Container().From(sandboxAPIServerImage).
		WithFile(sandboxBinDir+"/etcd", binary(sandboxEtcdImage, "etcd")).
		WithFile(sandboxBinDir+"/kube-controller-manager", binary(sandboxControllerManagerImage, "kube-controller-manager")).
		WithFile(sandboxBinDir+"/sandbox-cluster", launcher)
}

// sandboxCluster starts the sandbox cluster as a service (etcd,
// kube-apiserver and kube-controller-manager from the official images, fake
// nodes that play the stand-in chatbot in each pod with its environment, the
// ENV of its image in registry included, a fake kubelet that answers their
// logs and port-forwards, and the sandbox's namespaces), and returns it with
// its admin kubeconfig as a secret: its server is https://kube:6443, the name
// the serving certificate carries.
func sandboxCluster(ctx context.Context, repo *dagger.Directory, registry *dagger.Service) (*dagger.Service, *dagger.Secret, error) {
	image := sandboxClusterImage(repo).WithServiceBinding(sandboxRegistryAlias, registry)
	launcher := sandboxBinDir + "/sandbox-cluster"
	// Every call gets its own cluster and credentials; the run id also keeps
	// Dagger from reusing a kubeconfig fetched from an earlier cluster.
	run := strings.ToLower(rand.Text())
	seed := dag.SetSecret("sandbox-pki-seed-"+run, rand.Text())
	args := []string{
		launcher, "serve",
		"--bin-dir", sandboxBinDir,
		"--bind-address", "0.0.0.0",
		"--api-port", strconv.Itoa(sandboxAPIPort),
		"--ready-port", strconv.Itoa(sandboxReadyPort),
		"--alias", sandboxClusterAlias,
		"--image-registry", sandboxRegistryAlias + ":" + strconv.Itoa(sandboxRegistryPort),
	}
	for _, branch := range []string{"dv-stage", "dv-main"} {
		args = append(args, "--namespace", sandboxNamespace(branch))
	}
	svc, err := image.
		WithEnvVariable("SANDBOX_RUN", run).
		// Every instance started from this definition derives the same CA
		// and admin key, so the kubeconfig fits whichever one answers.
		WithSecretVariable("SANDBOX_PKI_SEED", seed).
		WithExposedPort(sandboxAPIPort).
		WithExposedPort(sandboxReadyPort).
		AsService(dagger.ContainerAsServiceOpts{Args: args}).
		Start(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("start the sandbox cluster: %w; run with --progress plain to see its log", err)
	}
	const out = "/sandbox/kubeconfig"
	kubeconfig, err := image.
		WithServiceBinding(sandboxClusterAlias, svc).
		WithEnvVariable("SANDBOX_RUN", run).
		WithExec([]string{
			launcher, "kubeconfig",
			"--url", "http://" + sandboxClusterAlias + ":" + strconv.Itoa(sandboxReadyPort) + "/kubeconfig",
			"--out", out,
		}).
		File(out).
		Contents(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch the sandbox cluster's kubeconfig: %w", err)
	}
	return svc, dag.SetSecret("sandbox-kubeconfig-"+run, kubeconfig), nil
}

// sandboxRegistry starts a throwaway registry (registry:2, plain HTTP, no
// auth). The registry keeps images only while the service runs; the
// sandbox's fake nodes never pull them.
func sandboxRegistry(ctx context.Context) (*dagger.Service, error) {
	svc, err := dag.Container().From(sandboxRegistryImage).
		WithExposedPort(sandboxRegistryPort).
		AsService(dagger.ContainerAsServiceOpts{Args: []string{"/bin/registry", "serve", "/etc/docker/registry/config.yml"}}).
		Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("start the sandbox registry: %w", err)
	}
	return svc, nil
}

// sandboxPush publishes the variants (one image, or an index for several)
// to the sandbox registry as repo:tag and returns repo@sha256:… . repo is
// "<registry alias>:<port>/<path>", as the cluster names it. The engine
// pushes to the registry service itself, addressed as localhost:<port>: the
// one name it speaks plain HTTP to (registry:2 serves plain HTTP).
func sandboxPush(ctx context.Context, registry *dagger.Service, variants []*dagger.Container, repo, tag string) (string, error) {
	_, path, ok := strings.Cut(repo, "/")
	if !ok || path == "" || len(variants) == 0 {
		return "", fmt.Errorf("push %s to the sandbox registry: want <registry>/<path> and an image", repo)
	}
	pushed, err := push(ctx, variants, "localhost:"+strconv.Itoa(sandboxRegistryPort)+"/"+path+":"+tag, registry)
	if err != nil {
		return "", fmt.Errorf("the sandbox registry: %w", err)
	}
	_, digest, _ := strings.Cut(pushed, "@")
	return repo + "@" + digest, nil
}

// sandboxSampleEnv is the app environment deployed when the caller gives
// none: no real secret, so the tour needs no credentials. Its values are
// scrubbed from the runner's output like real ones: none of them is a word
// the output uses.
const sandboxSampleEnv = `{"ENVIRONMENT":"tour-env","OPENAI_API_KEY":"sk-not-a-real-key","REDIS_URL":"redis://redis.invalid:6379/0","MAX_CALLS":40}`

// sandboxStep is one step of the sandbox's run: a title, and what it does,
// which returns its part of the report. A step that may fail is noted as
// failed and the run goes on: a replay shows both the app and the deploy.
type sandboxStep struct {
	title   string
	run     func(context.Context) (string, error)
	mayFail bool
}

// sandboxTour is one run of the sandbox: what it was called with and the
// services it starts in the background. Its methods make the steps.
type sandboxTour struct {
	m      *RinggCi
	branch string
	appEnv *dagger.Secret
	creds  *dagger.Secret
	tag    string
	// registry and cluster start the services once, the first call
	// waiting, the others getting the same result.
	registry func() (*dagger.Service, error)
	cluster  func() (sandboxConn, error)
}

// sandboxConn is how the runner reaches the sandbox cluster.
type sandboxConn struct {
	svc        *dagger.Service
	kubeconfig *dagger.Secret
}

// on is the module as it deploys branch's target to the sandbox: the
// cluster is the sandbox's, the repository and namespace the sandbox's.
func (tr *sandboxTour) on(branch string) (*RinggCi, error) {
	conn, err := tr.cluster()
	if err != nil {
		return nil, err
	}
	m := *tr.m
	m.Kubeconfig, m.Cluster, m.ClusterPort = conn.kubeconfig, conn.svc, sandboxAPIPort
	m.ImageRepository, m.Namespace = sandboxRepository(branch), sandboxNamespace(branch)
	return &m, nil
}

// sandbox runs the tour (or one branch's deploy) and returns its report:
// one section per step with its result. When a step fails, the error carries
// the report up to and including that step.
func (m *RinggCi) sandbox(ctx context.Context, repo *dagger.Directory, branch string, appEnv, creds *dagger.Secret, commit string) (string, error) {
	tr := m.newTour(ctx, repo, branch, appEnv, creds, commit)
	steps := []sandboxStep{tr.smoke(), tr.start()}
	if branch != "" {
		target := branchTarget(branch)
		steps = append(steps,
			tr.deploy(branch, fmt.Sprintf("deploy %s to the sandbox", branch), tr.image(ctx, branch, "")),
			tr.status(branch, "status", nil, target),
			tr.health(branch, target),
			tr.logs(branch, target),
		)
		return runSandboxSteps(ctx, steps)
	}
	same, different := true, false
	steps = append(steps,
		tr.deploy("dv-stage", "deploy dv-stage (staging, linux/amd64) to the sandbox", tr.image(ctx, "dv-stage", "")),
		tr.status("dv-stage", "status of staging", nil, Staging),
		tr.deploy("dv-main", "deploy dv-main (the production canary, linux/arm64) to the sandbox", tr.image(ctx, "dv-main", "")),
		tr.status("dv-main", "status: the canary runs the new build, stable is not installed yet", nil, Canary, Stable),
		tr.promote(),
		tr.status("dv-main", "status: canary and stable run the same digest", &same, Canary, Stable),
		tr.deploy("dv-main", "deploy a new canary: the same build with one file more, so its digest differs",
			tr.image(ctx, "dv-main", "rebuilt by sandbox run "+rand.Text())),
		tr.status("dv-main", "status: the canary runs the new digest, stable the promoted one", &different, Canary, Stable),
		tr.rollback(),
		tr.status("dv-main", "status: canary and stable run the same digest again", &same, Canary, Stable),
		tr.health("dv-main", Canary, Stable),
		tr.logs("dv-main", Canary),
	)
	return runSandboxSteps(ctx, steps)
}

// branchTarget is the target a push of branch deploys, as the module names it.
func branchTarget(branch string) Target {
	if branch == "dv-main" {
		return Canary
	}
	return Staging
}

// newTour sets up one run of the sandbox and starts everything slow in the
// background: the registry, the cluster (which needs the registry: its fake
// nodes read the ENV of the images they run from it) and the runner; each
// image starts building when its step is made (see image). The steps wait
// for what they need.
func (m *RinggCi) newTour(ctx context.Context, repo *dagger.Directory, branch string, appEnv, creds *dagger.Secret, commit string) *sandboxTour {
	tr := &sandboxTour{m: m, branch: branch, appEnv: appEnv, creds: creds, tag: tagFor(commit, time.Now())}
	if tr.appEnv == nil && branch == "" {
		tr.appEnv = dag.SetSecret("sandbox-sample-env", sandboxSampleEnv)
	}
	tr.registry = sync.OnceValues(func() (*dagger.Service, error) { return sandboxRegistry(ctx) })
	tr.cluster = sync.OnceValues(func() (sandboxConn, error) {
		registry, err := tr.registry()
		if err != nil {
			return sandboxConn{}, err
		}
		svc, kubeconfig, err := sandboxCluster(ctx, repo, registry)
		return sandboxConn{svc, kubeconfig}, err
	})
	go func() { _, _ = tr.cluster() }()
	go func() {
		if r, err := m.runner(ctx); err == nil {
			_, _ = r.Sync(ctx)
		}
	}()
	return tr
}

// image starts building branch's image and pushing it once the registry is
// up, in the background, and returns what waits for the pushed reference.
// A mark adds a file holding it: the same build with a new digest, as a new
// commit gives.
func (tr *sandboxTour) image(ctx context.Context, branch, mark string) func() (string, error) {
	f := sync.OnceValues(func() (string, error) {
		registry, err := tr.registry()
		if err != nil {
			return "", err
		}
		platforms := []string{"linux/arm64"}
		if branch == "dv-stage" {
			platforms = []string{"linux/amd64"}
		}
		variants, err := tr.m.variants(ctx, platforms)
		if err != nil {
			return "", err
		}
		tag := tr.tag
		if mark != "" {
			tag += "-rebuilt"
			for i, v := range variants {
				variants[i] = v.WithNewFile("/etc/ringg-sandbox-rebuild", mark+"\n")
			}
		}
		return sandboxPush(ctx, registry, variants, sandboxRepository(branch), tag)
	})
	go func() { _, _ = f() }()
	return f
}

func (tr *sandboxTour) smoke() sandboxStep {
	return sandboxStep{title: "smoke test: the built image answers /pc/v1/healthcheck", run: tr.m.smoke}
}

func (tr *sandboxTour) start() sandboxStep {
	return sandboxStep{title: "start a throwaway registry and Kubernetes cluster", run: func(ctx context.Context) (string, error) {
		if _, err := tr.registry(); err != nil {
			return "", err
		}
		if _, err := tr.cluster(); err != nil {
			return "", err
		}
		return fmt.Sprintf("Kubernetes %s, %s and %s with fake nodes; namespaces %s and %s; registry %s\n",
			sandboxAPIServerImage, sandboxControllerManagerImage, sandboxEtcdImage,
			sandboxNamespace("dv-stage"), sandboxNamespace("dv-main"), sandboxRegistryImage), nil
	}}
}

// deploy deploys branch with the image pushed gives, as CI does.
func (tr *sandboxTour) deploy(branch, title string, pushed func() (string, error)) sandboxStep {
	return sandboxStep{title: title, run: func(ctx context.Context) (string, error) {
		ref, err := pushed()
		if err != nil {
			return "", err
		}
		m, err := tr.on(branch)
		if err != nil {
			return "", err
		}
		return m.Deploy(ctx, branch, "", ref, tr.appEnv, tr.creds, false, "", "ringg-ci sandbox", false, nil)
	}}
}

// status shows the targets of branch's cluster; with sameDigest set, it
// also fails unless the canary runs stable's digest (true) or another
// (false).
func (tr *sandboxTour) status(branch, title string, sameDigest *bool, target ...Target) sandboxStep {
	return sandboxStep{title: title, run: func(ctx context.Context) (string, error) {
		m, err := tr.on(branch)
		if err != nil {
			return "", err
		}
		args := []string{command.Status}
		for _, t := range target {
			args = append(args, command.Arg(command.TargetName), t.flag())
		}
		text, err := m.run(ctx, call{args: args, cluster: true})
		if err != nil {
			return "", err
		}
		out := "```\n" + text + "```\n"
		if sameDigest == nil {
			return out, nil
		}
		raw, err := m.run(ctx, call{args: append(args, command.Arg(command.JSON)), cluster: true})
		if err != nil {
			return out, err
		}
		var st struct {
			Promotions []struct {
				From, To   string
				SameDigest bool `json:"sameDigest"`
			} `json:"promotions"`
		}
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			return out, fmt.Errorf("read the status as JSON: %w", err)
		}
		for _, p := range st.Promotions {
			if p.SameDigest != *sameDigest {
				return out, fmt.Errorf("%s and %s: same digest %t, the tour expected %t; see the status above", p.From, p.To, p.SameDigest, *sameDigest)
			}
		}
		return out, nil
	}}
}

func (tr *sandboxTour) promote() sandboxStep {
	return sandboxStep{title: "promote the canary to stable (60 replicas)", run: func(ctx context.Context) (string, error) {
		m, err := tr.on("dv-main")
		if err != nil {
			return "", err
		}
		return m.Promote(ctx, "", sandboxSoak, false, "", "ringg-ci sandbox", false, false, nil, nil)
	}}
}

func (tr *sandboxTour) rollback() sandboxStep {
	return sandboxStep{title: "roll the canary back to the image stable runs", run: func(ctx context.Context) (string, error) {
		m, err := tr.on("dv-main")
		if err != nil {
			return "", err
		}
		return m.Rollback(ctx, Canary, 0, "", "ringg-ci sandbox", false)
	}}
}

// health checks every pod of the targets; a target with many pods, all
// healthy, shows its summary line only.
func (tr *sandboxTour) health(branch string, targets ...Target) sandboxStep {
	return sandboxStep{title: "check the health endpoint of every pod (port-forward through the API server)", run: func(ctx context.Context) (string, error) {
		m, err := tr.on(branch)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, t := range targets {
			table, err := m.Health(ctx, t, "10s", false)
			if err != nil {
				return b.String(), err
			}
			if lines := strings.Split(table, "\n"); len(lines) > 7 {
				table = lines[0] + "\n"
			}
			b.WriteString("```\n" + table + "```\n")
		}
		return b.String(), nil
	}}
}

func (tr *sandboxTour) logs(branch string, t Target) sandboxStep {
	return sandboxStep{title: fmt.Sprintf("read the last lines each %s pod logged (pods/log through the API server)", t.flag()), run: func(ctx context.Context) (string, error) {
		m, err := tr.on(branch)
		if err != nil {
			return "", err
		}
		out, err := m.run(ctx, call{args: []string{command.Logs, command.Arg(command.TargetName), t.flag(), command.Arg(command.Tail), "2"}, cluster: true})
		if err != nil {
			return "", err
		}
		return "```\n" + out + "```\n", nil
	}}
}

// runSandboxSteps runs the steps in order and returns the report: for each
// step a heading and its output. The first failure of a step that may not
// fail stops the run; the error carries the report so far, since a failed
// Dagger call shows only the error. Failures of the others are reported at
// the end.
func runSandboxSteps(ctx context.Context, steps []sandboxStep) (string, error) {
	var report strings.Builder
	report.WriteString("# Sandbox: the pipeline against throwaway services\n\n" +
		"Pods are played by fake nodes (the stand-in chatbot's own start-up with each pod's environment) and their logs and " +
		"port-forwards answered by a fake kubelet: no container runs in the cluster and no image is pulled.\n")
	var failed []string
	for i, s := range steps {
		logf("sandbox step %d/%d: %s", i+1, len(steps), s.title)
		fmt.Fprintf(&report, "\n## %d. %s\n\n", i+1, s.title)
		start := time.Now()
		out, err := s.run(ctx)
		report.WriteString(out)
		if err != nil {
			fmt.Fprintf(&report, "\nfailed after %s: %v\n", time.Since(start).Round(time.Millisecond), err)
			if !s.mayFail {
				return report.String(), fmt.Errorf("sandbox step %d (%s): %w\n\n%s", i+1, s.title, err, report.String())
			}
			failed = append(failed, fmt.Sprintf("step %d (%s)", i+1, s.title))
			continue
		}
		fmt.Fprintf(&report, "\n(done in %s)\n", time.Since(start).Round(time.Millisecond))
	}
	if len(failed) > 0 {
		return report.String(), fmt.Errorf("%s failed, as the run did; the report:\n\n%s", strings.Join(failed, " and "), report.String())
	}
	return report.String(), nil
}
