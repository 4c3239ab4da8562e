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

// compileResult is the cold build of the Dagger module's Go code.
type compileResult struct {
	Cold     time.Duration
	Packages int // non-standard packages package main depends on
	Std      int // standard-library packages
	Modules  int // modules those packages come from, the module itself included
}

// coldCompile builds ci/'s package main, with the daggerstub stand-ins for
// the generated code, from an empty build cache (the module cache stays
// warm: a CI engine keeps downloads in a cache volume, not compiled
// packages), and counts what it depends on.
func coldCompile(ctx context.Context, root string, log func(string, ...any)) (compileResult, error) {
	var res compileResult
	tmp, err := os.MkdirTemp("", "bench-compile-")
	if err != nil {
		return res, fmt.Errorf("create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	stub := filepath.Join(tmp, "stub")
	if _, err := goCmd(ctx, root, nil, "run", "./tools/daggerstub", "-ci", "ci", "-out", stub); err != nil {
		return res, err
	}
	overlay := filepath.Join(stub, "overlay.json")
	ci := filepath.Join(root, "ci")
	// Download first, so the timing holds compilation only.
	if _, err := goCmd(ctx, ci, nil, "mod", "download"); err != nil {
		return res, err
	}
	cache := filepath.Join(tmp, "gocache")
	log("cold build of ci/ with an empty GOCACHE (minutes on 2 cores)")
	start := time.Now()
	if _, err := goCmd(ctx, ci, []string{"GOCACHE=" + cache}, "build", "-overlay", overlay, "-o", os.DevNull, "."); err != nil {
		return res, err
	}
	res.Cold = time.Since(start)
	out, err := goCmd(ctx, ci, nil, "list", "-overlay", overlay, "-deps", "-f", "{{if .Standard}}std{{else}}{{with .Module}}{{.Path}}{{end}}{{end}}", ".")
	if err != nil {
		return res, err
	}
	mods := map[string]bool{}
	for _, l := range strings.Fields(out) {
		if l == "std" {
			res.Std++
			continue
		}
		res.Packages++
		mods[l] = true
	}
	res.Modules = len(mods)
	return res, nil
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
