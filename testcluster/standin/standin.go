// Package standin plays the stand-in chatbot (examples/chatbot) in the pods
// of fake nodes: the stand-in's own start-up code (server.Start) decides,
// from the environment the kubelet gives the container, whether it starts,
// crashes (and with which exit code and last lines) or never passes its
// readiness probe (its own health handler answers the probe's path). So a
// deploy of the stand-in whose secrets lack a key it requires fails on fake
// nodes as it fails on a cluster, in the app's own words.
package standin

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	corev1 "k8s.io/api/core/v1"

	"github.com/ringg/ringg-ci/examples/chatbot/server"
	"github.com/ringg/ringg-ci/testcluster/fakenode"
)

// DefaultProbePath is what the probe asks when the pod has no HTTP
// readiness probe: the chatbot contract's health check.
const DefaultProbePath = "/pc/v1/healthcheck"

// Play runs the stand-in's start-up with env and asks its readiness path,
// as fakenode.Play. Every pod is the stand-in's: an app that ignores its
// switches (REQUIRED_ENV, HEALTH_STATUS, CRASH_AT_START) starts Ready.
func Play(pod *corev1.Pod, env map[string]string) (fakenode.AppRun, bool) {
	if len(pod.Spec.Containers) == 0 {
		return fakenode.AppRun{}, false
	}
	var out bytes.Buffer
	s, _, code := server.Start(func(k string) string { return env[k] }, &out, time.Now)
	logs := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if code != 0 {
		return fakenode.AppRun{Behavior: fakenode.CrashLoop, ExitCode: int32(code), Logs: logs}, true
	}
	path := DefaultProbePath
	if p := pod.Spec.Containers[0].ReadinessProbe; p != nil && p.HTTPGet != nil && p.HTTPGet.Path != "" {
		path = p.HTTPGet.Path
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	// The kubelet's HTTP probe passes on 200-399.
	if rec.Code < 200 || rec.Code >= 400 {
		return fakenode.AppRun{Behavior: fakenode.NeverReady, Probe: fmt.Sprintf("HTTP probe failed with statuscode: %d", rec.Code), Logs: logs}, true
	}
	return fakenode.AppRun{Behavior: fakenode.Ready, Logs: logs}, true
}

// RegistryEnv reads the ENV of an image's config from its registry, as a
// kubelet starts a container with it, for images whose registry (host or
// host:port) allow accepts, over plain HTTP: a loopback registry, the
// sandbox's. An app image built to require a setting (ENV
// REQUIRED_ENV=REDIS_URL) then fails on fake nodes when the pod's secrets
// lack it, in the app's own words. Other images, and registries that do not
// answer within a few seconds, give no environment. Answers are kept by
// reference.
func RegistryEnv(allow func(registry string) bool) func(ctx context.Context, image string) (map[string]string, error) {
	var mu sync.Mutex
	seen := map[string]map[string]string{}
	return func(ctx context.Context, image string) (map[string]string, error) {
		ref, err := name.ParseReference(image, name.Insecure)
		if err != nil || !allow(ref.Context().RegistryStr()) {
			return nil, err
		}
		mu.Lock()
		env, ok := seen[image]
		mu.Unlock()
		if ok {
			return env, nil
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		img, err := imageOf(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("read image %s: %w", image, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("read the config of image %s: %w", image, err)
		}
		env = map[string]string{}
		for _, kv := range cfg.Config.Env {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		mu.Lock()
		seen[image] = env
		mu.Unlock()
		return env, nil
	}
}

// Loopback accepts a registry on this machine: localhost or 127.0.0.1, on
// any port.
func Loopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	return host == "localhost" || host == "127.0.0.1"
}

// imageOf reads an image, or from an index its variant for this machine's
// architecture, else its first: every variant has the same ENV.
func imageOf(ctx context.Context, ref name.Reference) (v1.Image, error) {
	desc, err := remote.Get(ref, remote.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return desc.Image()
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) == 0 {
		return nil, fmt.Errorf("image index %s lists no image", ref)
	}
	pick := m.Manifests[0]
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == runtime.GOARCH {
			pick = d
			break
		}
	}
	return idx.Image(pick.Digest)
}
