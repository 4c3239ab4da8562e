package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/command"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
	"github.com/ringg/ringg-ci/ci/targets"
)

// builderPlatformArg is the build argument our Dockerfiles use for builder
// stages. Dagger v0.21 sets $BUILDPLATFORM to the target platform inside
// DockerBuild, so `FROM --platform=$BUILDPLATFORM` would run under emulation;
// passing the engine's own platform here lets those stages run natively and
// cross-compile. Dockerfiles that ignore the argument build as before.
const builderPlatformArg = "BUILDER_PLATFORM"

// container builds the application image for one platform.
func (m *RinggCi) container(ctx context.Context, platform dagger.Platform) (*dagger.Container, error) {
	native, err := dag.DefaultPlatform(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the engine's platform: %w", err)
	}
	if platform == "" {
		platform = native
	}
	if platform != native {
		logf("warning: building %s on a %s engine: every RUN of a %s stage runs under emulation (QEMU), typically 5-20x slower "+
			"(the production image's native wheels took 20+ minutes); build on a %s runner instead (GitHub: ubuntu-24.04-arm for linux/arm64)",
			platform, native, platform, platform)
	}
	return m.Source.DockerBuild(dagger.DirectoryDockerBuildOpts{
		Dockerfile: m.Dockerfile,
		Platform:   platform,
		BuildArgs:  []dagger.BuildArg{{Name: builderPlatformArg, Value: string(native)}},
	}), nil
}

// variants builds the image for every platform of a target.
func (m *RinggCi) variants(ctx context.Context, platforms []string) ([]*dagger.Container, error) {
	out := make([]*dagger.Container, 0, len(platforms))
	for _, p := range platforms {
		c, err := m.container(ctx, dagger.Platform(p))
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// publish builds t's platforms and pushes them as one image (an index when
// there are several) to t's repository, tagged with the commit; it returns
// repository@sha256:… of what was pushed.
func (m *RinggCi) publish(ctx context.Context, t targets.Target, commit string) (string, error) {
	variants, err := m.variants(ctx, t.Platforms)
	if err != nil {
		return "", err
	}
	arHost, _ := targets.RegistryHost(t.Image)
	if label, _ := variants[0].Label(ctx, standInLabel); label == "true" && arHost != "" {
		return "", fmt.Errorf("the image is labelled %s=true: it is the stand-in chatbot, which never goes to %s; pass --source with the chatbot's own source", standInLabel, t.Image)
	}
	first, err := m.registryAuth(ctx, variants[0], t)
	if err != nil {
		return "", err
	}
	ref := t.Image + ":" + tagFor(commit, time.Now())
	logf("build and push %s for %s to %s", t.Name, strings.Join(t.Platforms, ", "), ref)
	pushed, err := push(ctx, append([]*dagger.Container{first}, variants[1:]...), ref, nil)
	if err != nil {
		return "", err
	}
	logf("pushed %s", pushed)
	return pushed, nil
}

// push publishes variants, one image or an index of several, to address
// (repository:tag) and returns repository@sha256:… of what was pushed.
// registry, when not nil, is the service that answers for the address's
// host. Every push of the module goes through here.
func push(ctx context.Context, variants []*dagger.Container, address string, registry *dagger.Service) (string, error) {
	if len(variants) == 0 {
		return "", fmt.Errorf("push %s: no image to push", address)
	}
	out, err := variants[0].Publish(ctx, address, dagger.ContainerPublishOpts{PlatformVariants: variants[1:], RegistryService: registry})
	if err != nil {
		return "", fmt.Errorf("push %s: %w", address, err)
	}
	_, digest, ok := strings.Cut(out, "@")
	if !ok || !strings.HasPrefix(digest, "sha256:") {
		return "", fmt.Errorf("push %s: the registry returned %q, not a digest reference", address, out)
	}
	return repository(address) + "@" + digest, nil
}

// repository is an image address without its tag.
func repository(address string) string {
	if i := strings.LastIndex(address, ":"); i > strings.LastIndex(address, "/") {
		return address[:i]
	}
	return address
}

// registryAuth logs c in to t's registry: with --registry-username and
// --registry-password when given, else with a Google access token for
// Artifact Registry (--access-token as it is, or one the runner gets from
// the other credentials), else not at all.
func (m *RinggCi) registryAuth(ctx context.Context, c *dagger.Container, t targets.Target) (*dagger.Container, error) {
	if c, given, err := m.withCredentials(c, registryHost(t.Image)); given || err != nil {
		return c, err
	}
	host, err := targets.RegistryHost(t.Image)
	if err != nil {
		return c, nil // not Artifact Registry: no Google token goes there
	}
	if m.AccessToken != nil {
		return c.WithRegistryAuth(host, registryUser, m.AccessToken), nil
	}
	password, err := m.registryLogin(ctx, t, host)
	if err != nil {
		return nil, err
	}
	return c.WithRegistryAuth(host, registryUser, password), nil
}

// registryUser is the user name Artifact Registry takes with an access token.
const registryUser = "oauth2accesstoken"

// withCredentials logs c in to host with --registry-username and
// --registry-password, and says whether they were given.
func (m *RinggCi) withCredentials(c *dagger.Container, host string) (*dagger.Container, bool, error) {
	switch {
	case m.RegistryPassword == nil:
		return c, false, nil
	case m.RegistryUsername == "":
		return nil, true, fmt.Errorf("--registry-password needs --registry-username: pass the user the password belongs to")
	}
	return c.WithRegistryAuth(host, m.RegistryUsername, m.RegistryPassword), true, nil
}

// registryLogin gets a Google access token for pushing to t's Artifact
// Registry repository, as a secret. The token travels through a file of the
// ringg-ci run, never through its output.
func (m *RinggCi) registryLogin(ctx context.Context, t targets.Target, host string) (*dagger.Secret, error) {
	const file = "/tmp/registry-password"
	ctr, err := m.exec(ctx, call{args: []string{command.RegistryLogin, command.Arg(command.TargetName), string(t.Name), command.Arg(command.PasswordFile), file}, google: true})
	if err != nil {
		return nil, err
	}
	password, err := ctr.File(file).Contents(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the registry password of %s: %w", host, err)
	}
	return dag.SetSecret("ringg-ci-registry-"+newScrubber().run, password), nil
}

// registryHost is the host of an image repository.
func registryHost(repo string) string {
	host, _, _ := strings.Cut(repo, "/")
	return host
}

// The stand-in chatbot (examples/chatbot) carries standInMarker in its
// source and standInLabel on its image; neither may reach a target's own
// repository (ci/pipeline.RefuseStandIn decides, the label check in publish
// backs it up).
const (
	standInMarker = ".ringg-ci-stand-in"
	standInLabel  = "ai.ringg.stand-in"
)

// tagFor is the image tag of a push: the commit when known, else a
// timestamp, so a manual push never moves another push's tag. Deploys use
// the digest either way.
func tagFor(commit string, now time.Time) string {
	if commit == "" {
		return now.UTC().Format("manual-20060102-150405")
	}
	return commit
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

// logf prints a progress line to the function's log, which Dagger shows live.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
