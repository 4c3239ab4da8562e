package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// helmVersion reads the helm.sh/helm/v3 requirement of tools/helmcli/go.mod.
func helmVersion(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", fmt.Errorf("read the helm CLI's version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "helm.sh/helm/v3" {
			return fields[1], nil
		}
		if len(fields) >= 3 && fields[0] == "require" && fields[1] == "helm.sh/helm/v3" {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("no helm.sh/helm/v3 requirement in %s: restore tools/helmcli/go.mod", goMod)
}

// buildHelm returns the helm CLI built from helm.sh/helm/v3/cmd/helm at the
// version tools/helmcli pins, cached by version under
// ${XDG_CACHE_HOME:-$HOME/.cache}/ringg-ci/helm (about 2 minutes cold on 2
// cores, nothing after that).
func buildHelm(ctx context.Context, root string, log func(string, ...any)) (bin, version string, err error) {
	src := filepath.Join(root, "tools", "helmcli")
	version, err = helmVersion(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", fmt.Errorf("choose a cache directory for the helm CLI: %w; set XDG_CACHE_HOME", err)
	}
	dir := filepath.Join(cache, "ringg-ci", "helm", version)
	bin = filepath.Join(dir, "helm")
	if _, err := os.Stat(bin); err == nil {
		return bin, version, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("create %s: %w", dir, err)
	}
	log("building the helm CLI %s into %s (cold: ~2-4 min on 2 cores)", version, bin)
	start := time.Now()
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-X helm.sh/helm/v3/internal/version.version="+version,
		"-o", tmp, "helm.sh/helm/v3/cmd/helm")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("build the helm CLI in %s: %w; see the compiler output above", src, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", "", fmt.Errorf("install the helm CLI: %w", err)
	}
	log("built the helm CLI in %s", time.Since(start).Round(time.Second))
	return bin, version, nil
}

// helmCLI runs the helm CLI against the cluster through the proxy, with its
// own empty configuration and cache directories.
type helmCLI struct {
	bin  string
	home string // holds kubeconfig and helm's directories
}

func newHelmCLI(bin, home string, kubeconfig []byte) (*helmCLI, error) {
	if err := os.WriteFile(filepath.Join(home, "kubeconfig"), kubeconfig, 0o600); err != nil {
		return nil, fmt.Errorf("write the helm CLI's kubeconfig: %w", err)
	}
	return &helmCLI{bin: bin, home: home}, nil
}

// upgrade is one `helm upgrade` of a release.
type upgrade struct {
	Release, Namespace, ChartDir string
	// ValuesFiles are absolute paths, applied in order.
	ValuesFiles []string
	Wait        bool
	// Timeout is --timeout with Wait; zero means 5m.
	Timeout    time.Duration
	Atomic     bool
	MaxHistory int
}

// cliRun is when one CLI process ran.
type cliRun struct {
	Start, End time.Time
}

// command returns the arguments and environment of u, and a clean-up.
func (h *helmCLI) command(u upgrade) (args, env []string, cleanup func(), err error) {
	args = []string{"upgrade", u.Release, u.ChartDir, "--namespace", u.Namespace, "--history-max", fmt.Sprint(u.MaxHistory)}
	for _, f := range u.ValuesFiles {
		args = append(args, "--values", f)
	}
	if u.Wait {
		timeout := u.Timeout
		if timeout <= 0 {
			timeout = 5 * time.Minute
		}
		args = append(args, "--wait", "--timeout", timeout.String())
	}
	if u.Atomic {
		args = append(args, "--atomic")
	}
	// A fresh discovery and HTTP cache per run, as in a CI container (and
	// never the user's ~/.kube/cache).
	kubeCache, err := os.MkdirTemp(h.home, "kubecache-")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("create the helm CLI's cache directory: %w", err)
	}
	env = []string{
		"KUBECACHEDIR=" + kubeCache,
		"KUBECONFIG=" + filepath.Join(h.home, "kubeconfig"),
		"HELM_CACHE_HOME=" + filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(h.home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(h.home, "data"),
	}
	return args, env, func() { os.RemoveAll(kubeCache) }, nil
}

func (h *helmCLI) run(ctx context.Context, u upgrade) (cliRun, error) {
	args, env, cleanup, err := h.command(u)
	if err != nil {
		return cliRun{}, err
	}
	defer cleanup()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	r := cliRun{Start: time.Now()}
	err = cmd.Run()
	r.End = time.Now()
	if err != nil {
		return r, fmt.Errorf("helm upgrade %s: %w: %s", u.Release, err, strings.TrimSpace(out.String()))
	}
	return r, nil
}

// rss runs u under the maxrss wrapper.
func (h *helmCLI) rss(ctx context.Context, t rssTools, u upgrade) (peakRSS, error) {
	args, env, cleanup, err := h.command(u)
	if err != nil {
		return peakRSS{}, err
	}
	defer cleanup()
	return t.run(ctx, env, h.bin, args...)
}
