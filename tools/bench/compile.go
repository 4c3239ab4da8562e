package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// compiled is the cold build of one Go package main.
type compiled struct {
	Cold     time.Duration
	Packages int // non-standard packages package main depends on
	Std      int // standard-library packages
	Modules  int // modules those packages come from, the module itself included
}

// compileResult is the cold build of what a cold Dagger engine compiles:
// the module's face (ci/, with its committed generated code), paid on every
// first load, and the ringg-ci runner (cmd/ringg-ci), paid once per Dagger engine
// when no pinned runner image is there.
type compileResult struct {
	Face, Runner compiled
}

// coldCompile builds both from an empty build cache each (the module cache
// stays warm: a CI's Dagger engine keeps downloads in a cache volume, not compiled
// packages), and counts what they depend on.
func coldCompile(ctx context.Context, root string, log func(string, ...any)) (compileResult, error) {
	var res compileResult
	tmp, err := os.MkdirTemp("", "bench-compile-")
	if err != nil {
		return res, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	log("cold build of ci/ (the module's face) with an empty GOCACHE")
	if res.Face, err = coldBuild(ctx, filepath.Join(root, "ci"), filepath.Join(tmp, "gocache-face"), "."); err != nil {
		return res, err
	}
	log("cold build of cmd/ringg-ci (the runner) with an empty GOCACHE (minutes on 2 cores)")
	if res.Runner, err = coldBuild(ctx, root, filepath.Join(tmp, "gocache-runner"), "./cmd/ringg-ci"); err != nil {
		return res, err
	}
	return res, nil
}

// coldBuild builds pkg in dir with an empty GOCACHE and counts its imports.
func coldBuild(ctx context.Context, dir, cache, pkg string, flags ...string) (compiled, error) {
	var c compiled
	// Download first, so the timing holds compilation only.
	if _, err := goCmd(ctx, dir, nil, "mod", "download"); err != nil {
		return c, err
	}
	start := time.Now()
	if _, err := goCmd(ctx, dir, []string{"GOCACHE=" + cache}, append(append([]string{"build"}, flags...), "-o", os.DevNull, pkg)...); err != nil {
		return c, err
	}
	c.Cold = time.Since(start)
	out, err := goCmd(ctx, dir, nil, append(append([]string{"list"}, flags...), "-deps", "-f", "{{if .Standard}}std{{else}}{{with .Module}}{{.Path}}{{end}}{{end}}", pkg)...)
	if err != nil {
		return c, err
	}
	mods := map[string]bool{}
	for _, l := range strings.Fields(out) {
		if l == "std" {
			c.Std++
			continue
		}
		c.Packages++
		mods[l] = true
	}
	c.Modules = len(mods)
	return c, nil
}

func goCmd(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GOWORK=off"), env...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}
