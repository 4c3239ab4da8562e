package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ringg/ringg-ci/ci/gcpauth"
	"github.com/ringg/ringg-ci/ci/internal/dagger"
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

// publish pushes the variants as one image (an index when there are several)
// to repo:tag and returns repo@sha256:… of what was pushed.
func publish(ctx context.Context, variants []*dagger.Container, repo, tag string, auth *registryAuth) (string, error) {
	if len(variants) == 0 {
		return "", fmt.Errorf("publish %s: no platform to build", repo)
	}
	first := variants[0]
	if auth != nil && auth.password != nil {
		first = first.WithRegistryAuth(auth.host, auth.user, auth.password)
	}
	ref := repo + ":" + tag
	opts := dagger.ContainerPublishOpts{PlatformVariants: variants[1:]}
	if auth != nil && auth.service != nil {
		opts.RegistryService = auth.service
	}
	out, err := first.Publish(ctx, ref, opts)
	if err != nil {
		return "", fmt.Errorf("publish %s: %w", ref, err)
	}
	_, digest, ok := strings.Cut(out, "@")
	if !ok {
		return "", fmt.Errorf("publish %s: the registry returned %q without a digest", ref, out)
	}
	return repo + "@" + digest, nil
}

// registryAuth logs in to a registry for one push.
type registryAuth struct {
	host, user string
	password   *dagger.Secret
	// service, when set, is the registry itself (the sandbox's throwaway one).
	service *dagger.Service
}

// artifactRegistryAuth returns credentials for the registry of repo, with an
// access token registered as a Dagger secret so it is scrubbed from logs.
func (m *RinggCi) artifactRegistryAuth(ctx context.Context, repo string) (*registryAuth, error) {
	host, err := gcpauth.RegistryHost(repo)
	if err != nil {
		return nil, err
	}
	ts, err := m.tokenSource(ctx)
	if err != nil {
		return nil, err
	}
	user, password, err := gcpauth.RegistryCredentials(ts)
	if err != nil {
		return nil, err
	}
	return &registryAuth{host: host, user: user, password: dag.SetSecret("registry-access-token", password)}, nil
}

// tagFor is the image tag of a push: the commit when known, else a
// timestamp, so a manual push never moves another push's tag. Deploys use
// the digest either way.
func tagFor(commit string, now time.Time) string {
	if commit == "" {
		return now.UTC().Format("manual-20060102-150405")
	}
	return commit
}
