package testcluster

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// EnvBinary names a prebuilt testcluster binary to use instead of building one.
const EnvBinary = "RINGG_TESTCLUSTER_BIN"

// BuildOptions say where the helper's sources are and where to keep the binary.
type BuildOptions struct {
	// SourceDir is the tools/testcluster module; "" finds it by walking up
	// from the working directory.
	SourceDir string
	// CacheDir holds one directory per version and source hash; ""
	// means ${XDG_CACHE_HOME:-$HOME/.cache}/ringg-ci/testcluster.
	CacheDir string
	// Log receives progress and the compiler's output; nil means os.Stderr.
	Log io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

// Build returns the path of the testcluster binary: $RINGG_TESTCLUSTER_BIN
// when set, else a cached build for the current sources, built first if
// missing (about 10 minutes cold on 2 cores, seconds after that). Concurrent
// callers, such as test binaries of several packages, wait for one build.
func Build(ctx context.Context, opts BuildOptions) (string, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if bin := getenv(EnvBinary); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("use %s=%s: %w; unset it to build the helper", EnvBinary, bin, err)
		}
		return bin, nil
	}
	log := opts.Log
	if log == nil {
		log = os.Stderr
	}
	src := opts.SourceDir
	if src == "" {
		var err error
		if src, err = findSource(); err != nil {
			return "", err
		}
	}
	version, err := kubernetesVersion(filepath.Join(src, "go.mod"))
	if err != nil {
		return "", err
	}
	hash, err := sourceHash(src)
	if err != nil {
		return "", err
	}
	cache := opts.CacheDir
	if cache == "" {
		if cache, err = defaultCacheDir(getenv); err != nil {
			return "", err
		}
	}
	dir := filepath.Join(cache, version+"-"+hash)
	bin := filepath.Join(dir, "testcluster")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create build cache directory: %w", err)
	}
	unlock, err := lock(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // another process built it while we waited
	}
	fmt.Fprintf(log, "testcluster: building the helper for Kubernetes %s into %s (cold: ~10 min on 2 cores)\n", version, bin)
	start := time.Now()
	tmp := bin + ".tmp"
	major, minor := splitVersion(version)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", strings.Join([]string{
			"-X k8s.io/component-base/version.gitVersion=" + version,
			"-X k8s.io/component-base/version.gitMajor=" + major,
			"-X k8s.io/component-base/version.gitMinor=" + minor,
		}, " "),
		"-o", tmp, ".")
	cmd.Dir = src
	// The helper is its own module; a workspace must not pull it in.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build testcluster in %s: %w; see the compiler output above", src, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("install testcluster binary: %w", err)
	}
	fmt.Fprintf(log, "testcluster: built in %s\n", time.Since(start).Round(time.Second))
	prune(cache, filepath.Base(dir), version)
	return bin, nil
}

// prune removes binaries built from other sources for the same Kubernetes
// version (~200 MB each). A running helper keeps its deleted binary.
func prune(cache, keep, version string) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() != keep && strings.HasPrefix(e.Name(), version+"-") {
			_ = os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
}

// findSource walks up from the working directory to the directory holding
// tools/testcluster/go.mod.
func findSource() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find tools/testcluster: %w", err)
	}
	for {
		src := filepath.Join(dir, "tools", "testcluster")
		if _, err := os.Stat(filepath.Join(src, "go.mod")); err == nil {
			return src, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find tools/testcluster above the working directory: not found; run from the ringg-ci clone or set %s", EnvBinary)
		}
		dir = parent
	}
}

func defaultCacheDir(getenv func(string) string) (string, error) {
	base := getenv("XDG_CACHE_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("choose a cache directory for the testcluster binary: neither XDG_CACHE_HOME nor HOME is set; set one, or set " + EnvBinary)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "ringg-ci", "testcluster"), nil
}

// kubernetesVersion reads the k8s.io/kubernetes requirement from go.mod.
func kubernetesVersion(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", fmt.Errorf("read the helper's Kubernetes version: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" {
			return fields[1], nil
		}
		if len(fields) >= 3 && fields[0] == "require" && fields[1] == "k8s.io/kubernetes" {
			return fields[2], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read %s: %w", goMod, err)
	}
	return "", fmt.Errorf("read %s: no k8s.io/kubernetes requirement; the helper module must require it", goMod)
}

func splitVersion(v string) (major, minor string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

// sourceHash hashes the names and contents of the module's Go files, go.mod
// and go.sum: any change gives a new cache entry.
func sourceHash(src string) (string, error) {
	var files []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != src && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash testcluster sources: %w", err)
	}
	slices.Sort(files)
	h := sha256.New()
	for _, file := range files {
		rel, _ := filepath.Rel(src, file)
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("hash testcluster sources: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func lock(file string) (func(), error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock the testcluster build: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the testcluster build: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
